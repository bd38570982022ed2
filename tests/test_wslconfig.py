"""The .wslconfig checker against fixture files and small texts. Each rule mirrors WSL's parser."""
from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from reclaimlab.wsl import wslconfig as w
from reclaimlab.cli.app import main
from reclaimlab.wsl.wslconfig import Finding, check

FIXTURES = Path(__file__).parent / "fixtures" / "wslconfig"


def by_line(findings):
    return {f.line: f for f in findings}


def severities(findings):
    return sorted(f.severity for f in findings)


# ------------------------------------------------------------------ files and encodings

def test_the_good_file_has_no_findings():
    assert check(FIXTURES / "good.wslconfig") == []


def test_utf16_le_with_bom_is_read_but_warned_about():
    findings = check(FIXTURES / "utf16le_bom.wslconfig")
    assert [(f.severity, f.line) for f in findings] == [("warning", None)]
    assert "UTF-16 LE" in findings[0].message and "UTF-8 without a BOM" in findings[0].fix


def test_utf16_le_with_bom_content_is_still_checked():
    data = b"\xff\xfe" + "[wsl2]\r\nmemory=8gb\r\n".encode("utf-16-le")
    findings = check(data)
    assert [f.severity for f in findings] == ["warning", "error"]
    assert findings[1].line == 2 and findings[1].fix == "memory=8GB"


@pytest.mark.parametrize("name,phrase", [("utf16le_nobom.wslconfig", "without a byte-order mark"),
                                         ("utf16be_bom.wslconfig", "big-endian")])
def test_utf16_that_wsl_cannot_read_is_an_error(name, phrase):
    findings = check(FIXTURES / name)
    assert len(findings) == 1 and findings[0].severity == "error" and phrase in findings[0].message
    assert w.has_errors(findings)


def test_utf8_bom_is_a_note():
    findings = check(FIXTURES / "utf8_bom.wslconfig")
    assert [(f.severity, f.line) for f in findings] == [("info", None)]


def test_legacy_code_page_bytes_are_flagged_with_their_line():
    findings = check(b"[wsl2]\n# caf\xe9\nmemory=4GB\n")
    assert [(f.severity, f.line) for f in findings] == [("warning", 2)]


def test_empty_file():
    assert [f.severity for f in check(b"")] == ["info"]


def test_unreadable_paths_raise_a_clear_error(tmp_path):
    with pytest.raises(w.WslConfigError, match="no such file"):
        check(tmp_path / "missing")
    with pytest.raises(w.WslConfigError, match="directory"):
        check(tmp_path)


def test_a_str_is_a_path_when_it_names_a_file_and_text_otherwise():
    assert check(str(FIXTURES / "good.wslconfig")) == []
    assert check("[wsl2]\nmemory=4GB\n") == []


# ------------------------------------------------------------------ sections

def test_typos_fixture_flags_each_pitfall_on_its_line():
    f = by_line(check(FIXTURES / "typos.wslconfig"))
    assert f[1].severity == "error" and f[1].fix == "write [wsl2]"                # [wsl 2]
    assert f[2].severity == "error" and "before any [section]" in f[2].message     # key under no section
    assert f[3].severity == "info" and "case-insensitively" in f[3].message         # [WSL2] works
    assert f[4].fix == "memory=8GB"                                                 # 8gb
    assert f[5].fix == "processors=2"                                               # 2.5
    assert f[6].severity == "warning" and "bytes" in f[6].message                   # swap=512
    assert f[7].fix == "localhostForwarding=true"                                   # yes
    assert f[8].fix == "kernel=C:\\\\Users\\\\me\\\\bzImage"                        # single backslashes
    assert f[9].fix == "write it as autoMemoryReclaim=..."                          # auto-memory-reclaim
    assert "belongs in [experimental]" in f[10].message                             # wrong section
    assert f[11].fix.startswith("did you mean memory?")                             # memry
    assert f[12].fix == "write [experimental]"                                      # [experimantal]
    assert 13 not in f                                                              # its keys: reported once
    assert f[15].fix == "autoMemoryReclaim=dropCache" and "WSL uses dropCache" in f[15].message
    assert f[16].severity == "warning" and "'#'" in f[16].fix                       # ; comment


def test_wsl_conf_sections_and_keys_are_sent_to_wsl_conf():
    findings = check(FIXTURES / "wslconf_confusion.wslconfig")
    f = by_line(findings)
    assert set(f) == {1, 4, 9}
    assert "/etc/wsl.conf" in f[1].message and "/etc/wsl.conf" in f[4].message
    assert "[boot]" in f[9].fix


def test_section_names_follow_wsls_grammar():
    assert check("[wsl2]  # VM settings\nmemory=4GB\n") == []
    for bad in ("[ wsl2 ]", "[wsl_2]", "[wsl2]x", "[2wsl]"):
        assert [x.severity for x in check(f"{bad}\n")] == ["error"], bad


def test_keys_after_an_invalid_header_stay_in_the_previous_section():
    findings = check("[wsl2]\nmemory=4GB\n[experimental ]\nautoMemoryReclaim=gradual\n")
    f = by_line(findings)
    assert f[3].severity == "error"
    assert "belongs in [experimental]" in f[4].message      # WSL reads it as wsl2.autoMemoryReclaim


def test_general_section_is_known():
    assert check("[general]\ninstanceIdleTimeout=30000\n") == []


# ------------------------------------------------------------------ keys

def test_key_names_are_case_insensitive():
    assert check("[wsl2]\nMEMORY=4GB\nlocalhostforwarding=true\n") == []


def test_duplicates_keep_the_first_value():
    f = by_line(check(FIXTURES / "duplicates.wslconfig"))
    assert f[4].severity == "warning" and "FIRST" in f[4].message and "line 2" in f[4].message
    assert f[7].severity == "info"                          # networkingMode moved out of [experimental]
    assert f[9].severity == "warning" and "line 7" in f[9].message   # same setting under both headers


def test_19013_options_are_history():
    findings = check(FIXTURES / "history_19013.wslconfig")
    assert [(f.line, f.severity) for f in findings] == [(3, "warning"), (4, "warning")]
    assert all("autoMemoryReclaim" in f.fix for f in findings)
    assert "pageReporting" in findings[0].message and "idleThreshold" in findings[1].message


def test_unknown_key_suggests_the_nearest_known_one():
    (f,) = check("[experimental]\nautoMemoryReclaimMode=gradual\n")
    assert f.severity == "error" and "autoMemoryReclaim" in f.fix


def test_undocumented_but_accepted_keys_pass():
    assert check("[wsl2]\nvirtiofs=true\nkernelBootTimeout=30000\nipv6=false\n") == []


# ------------------------------------------------------------------ values

@pytest.mark.parametrize("value,bytes_", [("0", 0), ("8GB", 8 << 30), ("8G", 8 << 30), ("512MB", 512 << 20),
                                          ("1073741824", 1 << 30), ("1TB", 1 << 40), ("64K", 64 << 10)])
def test_sizes_wsl_accepts(value, bytes_):
    assert w.parse_size_bytes(value) == bytes_


@pytest.mark.parametrize("value,fix", [("8gb", "8GB"), ("8GiB", "8GB"), ("8 GB", "8GB"), ("1.5GB", "1536MB"),
                                       ("4g", "4G"), ("00", None)])
def test_sizes_wsl_rejects_with_a_fix(value, fix):
    assert w.parse_size_bytes(value) is None
    (f,) = check(f"[wsl2]\nmemory={value}\n")
    assert f.severity == "error"
    if fix:
        assert f.fix == f"memory={fix}"


def test_memory_below_256_mb_is_raised_by_wsl():
    (f,) = check("[wsl2]\nmemory=128MB\n")
    assert f.severity == "warning" and "256 MB" in f.message
    (f,) = check("[wsl2]\nmemory=8\n")
    assert "no unit means bytes" in f.message and f.fix == "memory=8GB"


def test_memory_zero_means_default():
    assert [x.severity for x in check("[wsl2]\nmemory=0\n")] == ["info"]


def test_host_limits_when_known():
    findings = check("[wsl2]\nmemory=64GB\nprocessors=32\n", host_memory_bytes=16 << 30, host_cpus=8)
    assert [(f.line, f.severity) for f in findings] == [(2, "warning"), (3, "warning")]
    assert findings[0].fix == "memory=16GB" and findings[1].fix == "processors=8"


@pytest.mark.parametrize("text,ok", [("1", True), ("0", True), ("TRUE", True), ("False", True),
                                     ("yes", False), ("on", False), ("enabled", False)])
def test_booleans(text, ok):
    assert (w.parse_bool(text) is not None) == ok
    assert (check(f"[wsl2]\nguiApplications={text}\n") == []) == ok


def test_integers_follow_strtol_base_0():
    assert w.parse_int("0x10") == 16 and w.parse_int("010") == 8 and w.parse_int("08") is None
    (f,) = check("[wsl2]\nprocessors=08\n")
    assert f.severity == "error" and "octal" in f.message and f.fix == "processors=8"
    (f,) = check("[wsl2]\nprocessors=010\n")
    assert f.severity == "warning" and "octal" in f.message


def test_processors_zero_means_all():
    assert [x.severity for x in check("[wsl2]\nprocessors=0\n")] == ["info"]


@pytest.mark.parametrize("value", ["disabled", "gradual", "dropCache", "dropcache", "GRADUAL"])
def test_auto_memory_reclaim_values(value):
    assert check(f"[experimental]\nautoMemoryReclaim={value}\n") == []


def test_semicolon_is_not_a_comment_in_a_value():
    (f,) = check("[wsl2]\nswap=2GB ; two gigabytes\n")
    assert f.severity == "error" and "';' does not start a comment" in f.message


def test_hash_comment_after_a_value_and_quotes_are_fine():
    assert check('[wsl2]\nmemory=4GB # four\nkernelCommandLine="quiet splash"\n') == []


def test_unclosed_quote():
    (f,) = check('[wsl2]\nkernelCommandLine="quiet\n')
    assert f.severity == "error" and "quote" in f.message


def test_bridged_networking_is_deprecated_and_bad_mode_falls_back_to_nat():
    assert [x.severity for x in check("[wsl2]\nnetworkingMode=bridged\n")] == ["warning"]
    (f,) = check("[wsl2]\nnetworkingMode=mirror\n")
    assert "NAT" in f.message and f.fix == "networkingMode=mirrored"


def test_relative_kernel_path_and_bad_ports_and_ip():
    assert [x.severity for x in check("[wsl2]\nkernel=kernels\\\\bzImage\n")] == ["warning"]
    assert [x.severity for x in check("[experimental]\nignoredPorts=3000,http\n")] == ["error"]
    assert [x.severity for x in check("[experimental]\ndnsTunnelingIpAddress=10.255.255\n")] == ["error"]


def test_line_continuation_joins_lines():
    assert check("[wsl2]\nkernelCommandLine = quiet \\\n  splash\nmemory=4GB\n") == []


# ------------------------------------------------------------------ output and the command

def test_format_findings_names_file_line_key_and_fix():
    text = w.format_findings([Finding("error", 4, "wsl2.memory", "bad size", "memory=8GB")], "x/.wslconfig")
    assert text.splitlines() == ["x/.wslconfig:4: error [wsl2.memory]: bad size", "    fix: memory=8GB",
                                 "1 error, 0 warnings, 0 infos"]
    assert w.format_findings([], "f") == "f: no problems found"


def test_command_exit_codes(tmp_path):
    runner = CliRunner()
    ok = runner.invoke(main, ["wslconfig", str(FIXTURES / "good.wslconfig")])
    assert ok.exit_code == 0 and "no problems" in ok.output
    bad = runner.invoke(main, ["wslconfig", str(FIXTURES / "typos.wslconfig")])
    assert bad.exit_code == 1 and "typos.wslconfig:4: error" in bad.output
    warn_only = runner.invoke(main, ["wslconfig", str(FIXTURES / "history_19013.wslconfig")])
    assert warn_only.exit_code == 0
    missing = runner.invoke(main, ["wslconfig", str(tmp_path / "nope")])
    assert missing.exit_code == 2
    assert missing.output.strip().splitlines() == [f"Error: {tmp_path / 'nope'}: no such file"]
    hosts = runner.invoke(main, ["wslconfig", "--host-cpus", "2", str(FIXTURES / "good.wslconfig")])
    assert hosts.exit_code == 0 and "processors=2" in hosts.output
