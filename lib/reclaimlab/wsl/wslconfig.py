"""A `.wslconfig` checker: the pitfalls users keep hitting, each with the line and the fix.

    findings = check(Path("C:/Users/me/.wslconfig"))      # or check("[wsl2]\\nmemory=8gb\\n") or bytes
    print(format_findings(findings))                      # `reclaimlab wslconfig PATH` on the command line

Every rule follows WSL's own parser, so a finding says what WSL will actually do with the line.
Sources (read 2025-2026; quoted as they were):
- The documented keys, types and defaults: "Advanced settings configuration in WSL",
  https://learn.microsoft.com/windows/wsl/wsl-config (MicrosoftDocs/WSL WSL/wsl-config.md, commit
  3ca300195d56cb87750a7a9ddbe5bd69ca5662c9, ms.date 07/31/2025): [wsl2], [experimental] tables;
  `autoMemoryReclaim` = disabled | gradual | dropCache, default dropCache, "dropCache or an unknown
  value" reclaims immediately; size entries "default to B (bytes)", units appended like 8GB or 512MB;
  paths need escaped backslashes; [boot], [automount], [network], [interop], [user], [gpu], [time]
  are wsl.conf sections.
- The keys WSL accepts (documented or not) and their types: microsoft/WSL
  src/windows/common/WslCoreConfig.cpp + WslCoreConfig.h (commit 949b64f4cd1e), the `ConfigKey` list;
  the file is opened with `_wfopen(path, L"rt,ccs=UTF-8")` and parsed with CFG_SKIP_INVALID_LINES |
  CFG_SKIP_UNKNOWN_VALUES. Memory is raised to at least 256 MB and capped at host RAM; processors
  above the host's count are capped with a warning; swap defaults to 25 % of memory.
- The grammar: microsoft/WSL src/shared/configfile/configfile.cpp (same commit): a section name is a
  letter then letters/digits, closed by `]` at once; a key likewise, then `=`; `#` starts a comment
  (`;` does not); `\\` escapes only \\\\ \\" b n t and a line end; names match case-insensitively;
  for a duplicated key the FIRST value wins and later ones only warn; unknown keys warn and are
  ignored.
- Values: microsoft/WSL src/shared/inc/stringshared.h: ParseBool accepts 1/0/true/false (any case);
  ParseMemorySize accepts an integer with no unit or one of B K KB M MB G GB T TB, upper case, binary
  multiples (GB = 2^30); integers go through strtol(base 0), so 0x10 is 16 and a leading 0 means octal.
- Encodings: the Windows C runtime's fopen with ccs=UTF-8 lets a UTF-8 or UTF-16LE byte-order mark
  decide the encoding (MicrosoftDocs/cpp-docs, fopen-s-wfopen-s.md, the ccs table), so current WSL
  reads both; a UTF-16 file without a BOM, or big-endian, is read as UTF-8 and every line is garbage.
  Older WSL builds ignored UTF-16 files (MicrosoftDocs/WSL issue #1174, 2021).
- History: WSL build 19013 release notes (MicrosoftDocs/WSL WSL/release-notes.md) added
  `[wsl2] pageReporting = <bool>` and `idleThreshold = <integer>`; neither is in today's key list, so
  WSL reports them as unknown keys and they have no effect.
"""
from __future__ import annotations

import difflib
import ipaddress
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Union

from ..units import format_size, shown

SEVERITIES = ("error", "warning", "info")

# --- the keys WSL knows (WslCoreConfig.cpp), by section, with their value types ------------------
PATH, STRING, SIZE, INT, BOOL, ENUM, IP, PORTS, MAC = ("path", "string", "size", "integer", "boolean",
                                                     "enum", "ip", "ports", "mac")
KNOWN_KEYS: dict[str, dict[str, str]] = {
    "wsl2": {
        "kernel": PATH, "kernelCommandLine": STRING, "kernelModules": PATH, "memory": SIZE,
        "processors": INT, "debugConsole": BOOL, "earlyBootLogging": BOOL, "swap": SIZE,
        "swapFile": PATH, "localhostForwarding": BOOL, "nestedVirtualization": BOOL, "virtio9p": BOOL,
        "virtiofs": BOOL, "kernelDebugPort": INT, "gpuSupport": BOOL, "guiApplications": BOOL,
        "systemDistro": PATH, "telemetry": BOOL, "vmIdleTimeout": INT, "debugConsoleLogFile": PATH,
        "kernelBootTimeout": INT, "distributionStartTimeout": INT, "virtio": BOOL,
        "hostFileSystemAccess": BOOL, "mountDeviceTimeout": INT, "hardwarePerformanceCounters": BOOL,
        "vmSwitch": STRING, "macAddress": MAC, "dhcp": BOOL, "dhcpTimeout": INT, "ipv6": BOOL,
        "dnsProxy": BOOL, "safeMode": BOOL, "defaultVhdSize": SIZE, "crashDumpFolder": PATH,
        "maxCrashDumpCount": INT, "loadDefaultKernelModules": BOOL, "loadKernelModules": STRING,
        "networkingMode": ENUM, "dnsTunneling": BOOL, "firewall": BOOL, "autoProxy": BOOL,
    },
    "experimental": {
        "autoMemoryReclaim": ENUM, "sparseVhd": BOOL, "bestEffortDnsParsing": BOOL,
        "dnsTunnelingIpAddress": IP, "initialAutoProxyTimeout": INT, "ignoredPorts": PORTS,
        "hostAddressLoopback": BOOL, "setVersionDebug": BOOL,
        # formerly experimental; "the old header is maintained for compatibility"
        "networkingMode": ENUM, "dnsTunneling": BOOL, "firewall": BOOL, "autoProxy": BOOL,
    },
    "general": {"distributionInstallPath": PATH, "instanceIdleTimeout": INT},
}
MOVED_TO_WSL2 = {"networkingmode", "dnstunneling", "firewall", "autoproxy"}   # [experimental] aliases
ENUM_VALUES = {
    "autoMemoryReclaim": ("disabled", "gradual", "dropCache"),
    "networkingMode": ("none", "nat", "bridged", "mirrored", "virtioproxy"),
}
ENUM_UNKNOWN_MEANS = {"autoMemoryReclaim": "dropCache (the default)", "networkingMode": "NAT"}
OBSOLETE = {  # build 19013, [wsl2]
    "pagereporting": "pageReporting (build 19013: turn free page reporting on/off)",
    "idlethreshold": "idleThreshold (build 19013: CPU idle threshold for memory compaction, 0 = off)",
}
WSL_CONF_SECTIONS = {"boot", "automount", "network", "interop", "user", "gpu", "time", "filesystem"}
WSL_CONF_KEYS = {"systemd": "boot", "command": "boot", "mountfstab": "automount", "root": "automount",
                 "appendwindowspath": "interop", "generatehosts": "network",
                 "generateresolvconf": "network", "hostname": "network", "default": "user",
                 "usewindowstimezone": "time", "protectbinfmt": "boot"}
MIN_MEMORY_BYTES = 256 * 1024 ** 2
SIZE_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "G": 1 << 30,
              "GB": 1 << 30, "T": 1 << 40, "TB": 1 << 40}
# WSL reads numbers into 64 bits (wcstoull): a longer one saturates at 2^64 - 1, and a size's unit
# multiplies past it. 2^64 - 1 has 20 digits.
MAX_WSL_NUMBER = (1 << 64) - 1
MAX_WSL_DIGITS = len(str(MAX_WSL_NUMBER))
# A real .wslconfig is a few hundred bytes; 1 MiB leaves room for any comment and bounds the work.
MAX_FILE_BYTES = 1 << 20
WHAT_IT_IS = "a .wslconfig is a small text file of WSL settings, usually %UserProfile%\\.wslconfig"
VALID_ESCAPES = set('\\"bnt')
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*")


@dataclass(frozen=True)
class Finding:
    severity: str          # "error": WSL will not apply what the line says; "warning": it applies, but
    line: int | None       # not as written or risky; "info": fine, worth knowing
    key: str | None        # "section.key", "[section]" or None (the whole file)
    message: str
    fix: str = ""


class WslConfigError(OSError):
    """The file could not be read at all (missing, no permission, not a regular file, over MAX_FILE_BYTES)."""


# ----------------------------------------------------------------------------- entry points

def check(source: Union[str, bytes, os.PathLike], *, host_memory_bytes: int | None = None,
          host_cpus: int | None = None) -> list[Finding]:
    """Findings for a .wslconfig given as a path, its bytes, or its text.

    A str is taken as a path when it names an existing file (or a FIFO or device, then refused by
    name) and has no newline, else as the text.
    `host_memory_bytes` / `host_cpus` (the Windows host's) enable the checks against the host.
    Raises WslConfigError when a path cannot be read.
    """
    if isinstance(source, os.PathLike) or _names_a_path(source):
        data = read_file(Path(source))
        return check_bytes(data, host_memory_bytes=host_memory_bytes, host_cpus=host_cpus)
    if isinstance(source, bytes):
        return check_bytes(source, host_memory_bytes=host_memory_bytes, host_cpus=host_cpus)
    if isinstance(source, str):
        return check_text(source, host_memory_bytes=host_memory_bytes, host_cpus=host_cpus)
    raise TypeError(f"check() takes a path, bytes or text, not {type(source).__name__}")


def _names_a_path(source: object) -> bool:
    """A one-line str naming something that exists and is not a folder: a path, not a file's text."""
    return (isinstance(source, str) and bool(source) and "\n" not in source and os.path.exists(source)
            and not os.path.isdir(source))


def _not_a_file(mode: int) -> str | None:
    """What a path is when it is not a regular file ("a FIFO (named pipe)"), else None."""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), None if stat.S_ISREG(mode) else "not a regular file")


def _kind_of(path: Path) -> str | None:
    try:
        return _not_a_file(os.stat(path).st_mode)
    except OSError:
        return None


def read_file(path: Path) -> bytes:
    """The bytes of the .wslconfig at `path`: a regular file of at most MAX_FILE_BYTES, else WslConfigError.

    Opened without blocking (a FIFO with no writer would wait forever) and checked with fstat before
    anything is read, so /dev/zero, a pipe or a 50 MB file is refused at once, by name.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise WslConfigError(f"{path}: no such file") from None
    except PermissionError:
        raise WslConfigError(f"{path}: permission denied") from None
    except OSError as exc:  # e.g. a socket cannot be opened at all: say what it is where we can tell
        kind = _kind_of(path)
        raise WslConfigError(f"{path}: is {kind}, not a .wslconfig file ({WHAT_IT_IS})" if kind
                             else f"{path}: cannot read ({exc.strerror})") from None
    try:
        kind = _not_a_file(os.fstat(fd).st_mode)
        data = b"" if kind else _read_at_most(fd, MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise WslConfigError(f"{path}: cannot read ({exc.strerror})") from None
    finally:
        os.close(fd)
    if kind is not None:
        raise WslConfigError(f"{path}: is {kind}, not a .wslconfig file ({WHAT_IT_IS})")
    if len(data) > MAX_FILE_BYTES:
        raise WslConfigError(f"{path}: larger than {format_size(MAX_FILE_BYTES)}, too large to be a .wslconfig "
                             f"({WHAT_IT_IS}); check that it is the file you meant")
    return data


def _read_at_most(fd: int, limit: int) -> bytes:
    """Up to `limit` bytes from `fd`, to its end if it is shorter."""
    chunks, got = [], 0
    while got < limit:
        chunk = os.read(fd, limit - got)
        if not chunk:
            break
        chunks.append(chunk)
        got += len(chunk)
    return b"".join(chunks)


def check_bytes(data: bytes, **host) -> list[Finding]:
    text, findings = decode(data)
    if text is None:
        return findings
    return findings + check_text(text, **host)


def decode(data: bytes) -> tuple[str | None, list[Finding]]:
    """The text WSL would read, and the encoding findings. None: WSL can make nothing of it."""
    keep_utf8 = "save it as UTF-8 without a BOM (Notepad: Save as > Encoding: UTF-8; VS Code: 'Save with Encoding' > UTF-8)"
    if data.startswith(b"\xff\xfe"):
        return data[2:].decode("utf-16-le", errors="replace"), [Finding(
            "warning", None, None,
            "the file is UTF-16 LE with a byte-order mark. Current WSL reads it (it opens the file with "
            "ccs=UTF-8 and the C runtime lets the BOM decide), but older WSL builds ignored UTF-16 files "
            "(MicrosoftDocs/WSL#1174), and many editors and scripts will not read it",
            keep_utf8)]
    if data.startswith(b"\xfe\xff"):
        return None, [Finding(
            "error", None, None,
            "the file is UTF-16 big-endian: the C runtime WSL opens it with knows only the UTF-8 and "
            "UTF-16 LE byte-order marks, so every line reads as garbage and no setting applies",
            keep_utf8)]
    if len(data) >= 4 and (data[1::2][:8].count(0) >= 2 or data[0::2][:8].count(0) >= 2) and b"\x00" in data[:16]:
        return None, [Finding(
            "error", None, None,
            "the file looks like UTF-16 without a byte-order mark (NUL bytes between the letters): WSL "
            "reads it as UTF-8, so every line is invalid and no setting applies",
            keep_utf8)]
    findings: list[Finding] = []
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
        findings.append(Finding(
            "info", None, None,
            "the file starts with a UTF-8 byte-order mark; current WSL skips it (the C runtime reads the "
            "BOM), but some tools and older builds do not", keep_utf8))
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        findings.append(Finding(
            "warning", line, None,
            f"byte 0x{data[exc.start]:02x} is not UTF-8 (a legacy code page such as Windows-1252?); WSL "
            "reads the file as UTF-8, so that text arrives mangled", keep_utf8))
        text = data.decode("utf-8", errors="replace")
    return text, findings


def check_text(text: str, *, host_memory_bytes: int | None = None, host_cpus: int | None = None) -> list[Finding]:
    """Findings for the decoded text of a .wslconfig, line by line as WSL's parser reads it."""
    findings: list[Finding] = []
    if text.startswith("\ufeff"):
        text = text[1:]
    if not text.strip():
        return [Finding("info", None, None, "the file is empty: WSL uses its defaults for everything")]
    section: str | None = None          # canonical lower-case name of the current valid section
    section_ok = True                   # False inside a section WSL does not know: its keys are reported once
    seen: dict[str, int] = {}           # canonical key -> first line (WSL keeps the first value)
    for lineno, raw in _logical_lines(text):
        stripped = raw.strip(" \t")
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.startswith("["):
            new_section, section_findings = _section(stripped, lineno)
            findings += section_findings
            if new_section is None:      # invalid header: WSL skips it and stays in the previous section
                continue
            section = new_section.lower()
            section_ok = section in KNOWN_KEYS
            continue
        if stripped.startswith(";"):
            findings.append(Finding("warning", lineno, None,
                                    "';' does not start a comment in .wslconfig: WSL reports an invalid line "
                                    "and skips it", "start comments with '#'"))
            continue
        m = _NAME.match(stripped)
        if not m:
            findings.append(Finding("error", lineno, None,
                                    f"{stripped[:40]!r} is not 'key = value': a key starts with a letter; WSL "
                                    "skips the line", "write it as key=value under the right [section]"))
            continue
        name, rest = m.group(0), stripped[m.end():].lstrip(" \t")
        if not rest.startswith("="):
            attempted = stripped.split("=")[0].strip()
            hint = (f"{attempted!r}: key names are letters and digits only (no '-', '_', '.' or spaces)"
                    if "=" in stripped else f"no '=' after {name!r}")
            findings.append(Finding("error", lineno, attempted, f"{hint}; WSL skips the line", _name_fix(attempted)))
            continue
        value, value_findings = _value(rest[1:], lineno, f"{section}.{name}" if section else name)
        findings += value_findings
        if value is None:
            continue
        if not section_ok:
            continue   # reported once with its section
        findings += _key(section, name, value, lineno, seen, host_memory_bytes, host_cpus)
    return sorted(findings, key=lambda f: (f.line or 0, SEVERITIES.index(f.severity)))


def settings(source: Union[str, bytes, os.PathLike]) -> dict[str, str]:
    """What WSL applies from a .wslconfig: {"section.key": value} for every line it accepts (the first of
    duplicates; none from a line the checker marks as an error, an obsolete key or a wrong section).
    The value is the text as WSL parsed it; `check()` says what WSL does with the rest."""
    if isinstance(source, (bytes, os.PathLike)) or _names_a_path(source):
        data = source if isinstance(source, bytes) else read_file(Path(source))
        text, _ = decode(data)
        if text is None:
            return {}
    else:
        text = source
    text = text[1:] if text.startswith("\ufeff") else text
    rejected = {f.line for f in check_text(text) if f.severity == "error" and f.line}
    out: dict[str, str] = {}
    slots: set[str] = set()
    section: str | None = None
    for lineno, raw in _logical_lines(text):
        stripped = raw.strip(" \t")
        if stripped.startswith("["):
            name, _ = _section(stripped, lineno)
            section = name.lower() if name is not None else section
            continue
        m = _NAME.match(stripped)
        if not m or lineno in rejected or section not in KNOWN_KEYS:
            continue
        rest = stripped[m.end():].lstrip(" \t")
        low = m.group(0).lower()
        canon = next((k for k in KNOWN_KEYS[section] if k.lower() == low), None)
        if not rest.startswith("=") or canon is None:
            continue
        value, _ = _value(rest[1:], lineno, f"{section}.{canon}")
        slot = low if low in MOVED_TO_WSL2 else f"{section}.{low}"
        if value is None or slot in slots:
            continue
        slots.add(slot)
        out[f"{section}.{canon}"] = value
    return out


# ----------------------------------------------------------------------------- line rules

def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, text) of each logical line: a value ending in an unescaped backslash continues on the next."""
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        lineno, raw = i + 1, lines[i]
        i += 1
        while _continues(raw) and i < len(lines):
            raw = raw[:-1] + lines[i]
            i += 1
        yield lineno, raw


def _continues(line: str) -> bool:
    stripped = line.rstrip("\r")
    return stripped.endswith("\\") and not stripped.endswith("\\\\") and "=" in stripped


def _section(stripped: str, lineno: int) -> tuple[str | None, list[Finding]]:
    """[name] -> (name, findings); name None where WSL rejects the header."""
    m = re.match(r"\[([A-Za-z][A-Za-z0-9]*)\]\s*(#.*)?$", stripped)
    if not m:
        inner = stripped[1:].split("]")[0]
        squashed = re.sub(r"[^A-Za-z0-9]", "", inner)
        guess = _nearest(squashed, [*KNOWN_KEYS, *WSL_CONF_SECTIONS]) or squashed or "wsl2"
        return None, [Finding(
            "error", lineno, f"[{inner}]",
            f"section header {stripped!r} is not valid: WSL wants a letter, then letters or digits, then ']' "
            "(no spaces, '-' or '_'). It skips this line, so the keys below stay in the previous section "
            "(or in none) and are reported as unknown",
            f"write [{guess}]")]
    name = m.group(1)
    low = name.lower()
    findings: list[Finding] = []
    if low in KNOWN_KEYS:
        if name != low:
            findings.append(Finding("info", lineno, f"[{name}]",
                                    f"[{name}] works (WSL matches names case-insensitively) but the documented "
                                    f"spelling is [{low}]", f"write [{low}]"))
    elif low in WSL_CONF_SECTIONS:
        findings.append(Finding(
            "error", lineno, f"[{name}]",
            f"[{name}] is a section of /etc/wsl.conf (per distribution, inside Linux), not of .wslconfig "
            "(%UserProfile%\\.wslconfig, for the whole VM): WSL reports its keys as unknown and ignores them",
            "move this section to /etc/wsl.conf inside the distribution (sudo nano /etc/wsl.conf), then "
            "wsl --shutdown"))
    else:
        guess = _nearest(low, list(KNOWN_KEYS))
        findings.append(Finding(
            "error", lineno, f"[{name}]",
            f"WSL has no section [{name}]: every key under it is reported as unknown and ignored",
            f"write [{guess}]" if guess else "use [wsl2], [experimental] or [general]"))
    return name, findings


def _value(text: str, lineno: int, key: str) -> tuple[str | None, list[Finding]]:
    """The value as WSL parses it (quotes removed, escapes applied, '#' comments cut)."""
    name = key.rsplit(".", 1)[-1]
    out: list[str] = []
    in_quote = False
    j = 0
    text = text.rstrip("\r")
    while j < len(text):
        ch = text[j]
        if ch == '"':
            in_quote = not in_quote
        elif ch == "\\":
            nxt = text[j + 1] if j + 1 < len(text) else ""
            if nxt not in VALID_ESCAPES:
                return None, [Finding(
                    "error", lineno, key,
                    f"'\\{nxt}' is not an escape WSL knows (only \\\\ \\\" \\b \\n \\t): it reports an "
                    "invalid escape and skips the whole line. Windows paths need doubled backslashes",
                    f"{name}={_double_backslashes(text.strip())}")]
            out.append({"b": "\b", "n": "\n", "t": "\t"}.get(nxt, nxt))
            j += 1
        elif ch == "#" and not in_quote:
            break
        else:
            out.append(ch)
        j += 1
    if in_quote:
        return None, [Finding("error", lineno, key, "a quote is not closed: WSL skips the line",
                              f"close the quote: {name}=\"{''.join(out).strip()}\"")]
    return "".join(out).strip(" \t"), []


def _double_backslashes(value: str) -> str:
    return re.sub(r"(?<!\\)\\(?!\\)", r"\\\\", value)


def _key(section: str | None, name: str, value: str, lineno: int, seen: dict[str, int],
         host_memory_bytes: int | None, host_cpus: int | None) -> list[Finding]:
    low = name.lower()
    where = f"under [{section}]" if section else "before any [section]"
    if low in OBSOLETE:
        return [Finding(
            "warning", lineno, f"{section or ''}.{name}".lstrip("."),
            f"{OBSOLETE[low]} is history: today's WSL does not know it (it is not in WslCoreConfig.cpp's key "
            "list), reports an unknown key and ignores it. Freed memory is returned by free page reporting "
            "and compaction without a setting; cached memory by [experimental] autoMemoryReclaim",
            "delete the line; to choose how cache is given back, set autoMemoryReclaim=disabled|gradual|"
            "dropCache under [experimental]")]
    home = _home_sections(low)
    if section is None or low not in {k.lower() for k in KNOWN_KEYS.get(section, {})}:
        return [_misplaced(section, name, low, home, lineno, where)]
    canon = next(k for k in KNOWN_KEYS[section] if k.lower() == low)
    full = f"{section}.{canon}"
    # [wsl2]/[experimental] aliases of one setting share one slot: the second is a duplicate.
    slot = canon.lower() if low in MOVED_TO_WSL2 else full.lower()
    findings: list[Finding] = []
    if slot in seen:
        return [Finding("warning", lineno, full,
                        f"{canon} is set again (first on line {seen[slot]}): WSL keeps the FIRST value and "
                        "ignores this one (with a warning)",
                        f"delete one of the two; if this value is the one you want, move it to line {seen[slot]}")]
    seen[slot] = lineno
    if section == "experimental" and low in MOVED_TO_WSL2:
        findings.append(Finding("info", lineno, full,
                                f"{canon} is no longer experimental; [experimental] still accepts it for "
                                "compatibility, [wsl2] is its documented place", f"move {canon} to [wsl2]"))
    return findings + _check_value(full, canon, KNOWN_KEYS[section][canon], value, lineno,
                                   host_memory_bytes, host_cpus)


def _home_sections(low: str) -> list[str]:
    return [s for s, keys in KNOWN_KEYS.items() if low in {k.lower() for k in keys}]


def _misplaced(section, name, low, home, lineno, where) -> Finding:
    key = f"{section}.{name}" if section else name
    if home:
        canon = next(k for k in KNOWN_KEYS[home[0]] if k.lower() == low)
        return Finding("error", lineno, key,
                       f"{canon} belongs in [{home[0]}]; {where}, WSL reports an unknown key and ignores it",
                       f"move {canon}=... under [{home[0]}]")
    if low in WSL_CONF_KEYS:
        return Finding("error", lineno, key,
                       f"{name} is a /etc/wsl.conf setting ([{WSL_CONF_KEYS[low]}] there), not a .wslconfig one: "
                       "WSL reports an unknown key and ignores it",
                       f"put it under [{WSL_CONF_KEYS[low]}] in /etc/wsl.conf inside the distribution")
    candidates = {k: s for s, keys in KNOWN_KEYS.items() for k in keys}
    in_section = list(KNOWN_KEYS.get(section, {})) if section else []
    guess = _nearest(name, in_section) or _nearest(name, list(candidates))
    fix = f"did you mean {guess}? (under [{candidates[guess]}])" if guess else \
        "see the key tables at https://learn.microsoft.com/windows/wsl/wsl-config"
    return Finding("error", lineno, key, f"WSL has no key {name!r} {where}: it reports an unknown key and "
                   "ignores it", fix)


# ----------------------------------------------------------------------------- values

def parse_size_bytes(text: str) -> int | None:
    """WSL's ParseMemorySize: digits, then nothing or B K KB M MB G GB T TB (upper case, binary)."""
    m = re.fullmatch(r"([0-9]+)([A-Z]{0,2})", text)   # [0-9]: wcstoull reads no other script's digits
    if not m or m.group(2) not in SIZE_UNITS:
        return None
    digits = m.group(1)
    if len(digits) > MAX_WSL_DIGITS:   # past 64 bits (see _beyond_64_bits); also past int()'s digit limit
        return None
    if int(digits) == 0 and digits != "0":   # strtoull reads "00" as 0 but stops early: rejected
        return None
    return int(digits) * SIZE_UNITS[m.group(2)]


def parse_int(text: str) -> int | None:
    """strtol(value, &end, 0): decimal, 0x hex, leading-0 octal; the whole text must be consumed."""
    try:
        return int(text, 0) if not re.fullmatch(r"[+-]?0\d+", text) else int(text, 8)
    except ValueError:
        return None


def parse_bool(text: str) -> bool | None:
    low = text.lower()
    return True if low in ("1", "true") else False if low in ("0", "false") else None


def _size_fix(value: str) -> str | None:
    """A corrected spelling for a size WSL rejects, where one is obvious."""
    v = value.strip().replace(" ", "")
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([A-Za-z]*)", v)
    if not m:
        return None
    number, unit = m.group(1), m.group(2).upper()
    unit = {"GIB": "GB", "MIB": "MB", "KIB": "KB", "TIB": "TB", "GIGS": "GB", "GBS": "GB",
            "MBS": "MB", "BYTES": "B"}.get(unit, unit)
    if unit not in SIZE_UNITS:
        return None
    if "." in number:
        order = ["B", "KB", "MB", "GB", "TB"]
        base = unit if unit in order else {"K": "KB", "M": "MB", "G": "GB", "T": "TB", "": "B"}[unit]
        k = order.index(base)
        n = float(number)
        while k > 0 and n != int(n):
            n *= 1024
            k -= 1
        return f"{int(n)}{order[k]}"
    return f"{int(number)}{unit}"


def _beyond_64_bits(kind: str, value: str) -> str | None:
    """Why a number in `value` is past WSL's 64-bit reader ("holds a number of 5,000 digits"), or None.

    Checked before any int() of it: Python refuses to convert more than 4,300 digits."""
    if kind not in (SIZE, INT, PORTS):
        return None
    longest = max((len(run) for run in re.findall(r"[0-9]+", value)), default=0)
    if longest > MAX_WSL_DIGITS:
        return f"holds a number of {longest:,} digits"
    size = parse_size_bytes(value) if kind == SIZE else None
    if size is not None and size > MAX_WSL_NUMBER:
        return f"is {size:,} bytes"
    return None


def _check_value(full: str, canon: str, kind: str, value: str, lineno: int,
                 host_memory_bytes: int | None, host_cpus: int | None) -> list[Finding]:
    semicolon = " (';' does not start a comment here: use '#')" if ";" in value else ""
    if value == "" and kind not in (STRING, PATH):
        return [Finding("error", lineno, full, f"{canon} has no value: WSL reports an invalid value and keeps "
                        "its default", "give it a value or delete the line")]
    too_long = _beyond_64_bits(kind, value)
    if too_long:
        example = f"{canon}=8GB (for example)" if kind == SIZE else f"{canon}=<whole number>"
        return [Finding("error", lineno, full, f"{shown(value)} {too_long}: more than WSL reads into 64 bits (at "
                        f"most {MAX_WSL_NUMBER:,}), so it cannot apply what the line says", example)]
    if kind == SIZE:
        size = parse_size_bytes(value)
        if size is None:
            fixed = _size_fix(value.split(";")[0])
            why = ("WSL's units are upper case B, K(B), M(B), G(B), T(B), binary (GB = 1024^3), with no space, "
                   "no decimals and no 'iB'")
            return [Finding("error", lineno, full,
                            f"{value!r} is not a size WSL understands{semicolon}: {why}; it warns and keeps the "
                            f"default", f"{canon}={fixed}" if fixed else f"{canon}=8GB (for example)")]
        return _size_range(full, canon, size, value, lineno, host_memory_bytes)
    if kind == INT:
        number = parse_int(value)
        if number is None:
            octal = " (a leading 0 means octal to WSL, so 8 and 9 are not digits)" if re.fullmatch(r"0\d+", value) else ""
            fix = f"{canon}={int(float(value))}" if re.fullmatch(r"\d+\.\d+", value) else f"{canon}=<whole number>"
            if octal:
                fix = f"{canon}={int(value)}"
            return [Finding("error", lineno, full, f"{value!r} is not an integer WSL accepts{octal}{semicolon}: it "
                            "warns and keeps the default", fix)]
        if canon == "processors":
            if number <= 0:
                return [Finding("info", lineno, full, f"processors={value} means the default: all of the host's "
                                "logical processors")]
            if host_cpus is not None and number > host_cpus:
                return [Finding("warning", lineno, full, f"processors={number} is more than this host's "
                                f"{host_cpus} logical processors: WSL warns and uses {host_cpus}",
                                f"processors={host_cpus}")]
        if re.fullmatch(r"0\d+", value) and number != int(value):
            return [Finding("warning", lineno, full, f"{value!r} has a leading 0, so WSL reads it as octal: {number}",
                            f"{canon}={int(value)}")]
        return []
    if kind == BOOL:
        if parse_bool(value) is None:
            guess = {"yes": "true", "on": "true", "enabled": "true", "enable": "true", "no": "false",
                     "off": "false", "disabled": "false", "disable": "false"}.get(value.lower())
            return [Finding("error", lineno, full, f"{value!r} is not a boolean WSL accepts (true, false, 1 or 0)"
                            f"{semicolon}: it warns and keeps the default",
                            f"{canon}={guess}" if guess else f"{canon}=true or {canon}=false")]
        return []
    if kind == ENUM:
        allowed = ENUM_VALUES[canon]
        match = next((a for a in allowed if a.lower() == value.lower()), None)
        if match is None:
            guess = _nearest(value, list(allowed)) or ("dropCache" if value.lower().startswith("drop") else None)
            return [Finding("error", lineno, full,
                            f"{value!r} is not one of {', '.join(allowed)}{semicolon}: WSL uses "
                            f"{ENUM_UNKNOWN_MEANS[canon]}",
                            f"{canon}={guess}" if guess else f"{canon}={allowed[0]}")]
        if canon == "networkingMode" and match == "bridged":
            return [Finding("warning", lineno, full, "networkingMode=bridged is deprecated (since WSL 2.4.5)",
                            "networkingMode=mirrored or nat")]
        return []
    if kind == PATH:
        if value and not re.match(r"^([A-Za-z]:[\\/]|\\\\|//)", value):
            return [Finding("warning", lineno, full, f"{value!r} is not an absolute Windows path",
                            f"{canon}=C:\\\\path\\\\to\\\\file (backslashes doubled)")]
        return []
    if kind == IP:
        try:
            ipaddress.IPv4Address(value)
        except ValueError:
            return [Finding("error", lineno, full, f"{value!r} is not an IPv4 address: WSL warns and turns DNS "
                            "tunneling off", f"{canon}=10.255.255.254 (the default)")]
        return []
    if kind == PORTS:
        bad = [p for p in value.split(",") if not (p.strip().isdigit() and 0 < int(p) <= 65535)]
        if bad:
            return [Finding("error", lineno, full, f"{', '.join(map(repr, bad))} not a port number (1-65535): "
                            "WSL warns and skips it", f"{canon}=3000,9000 (comma-separated ports)")]
        return []
    if kind == MAC:
        if not re.fullmatch(r"[0-9A-Fa-f]{2}([-:])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}", value):
            return [Finding("error", lineno, full, f"{value!r} is not a MAC address: WSL stops with an invalid-MAC error",
                            f"{canon}=00:15:5d:01:02:03 (six hex pairs)")]
        return []
    return []


def _size_range(full: str, canon: str, size: int, value: str, lineno: int,
                host_memory_bytes: int | None) -> list[Finding]:
    if canon == "memory":
        if size == 0:
            return [Finding("info", lineno, full, "memory=0 means the default: 50 % of the host's memory")]
        if size < MIN_MEMORY_BYTES:
            unitless = " (no unit means bytes!)" if value.isdigit() else ""
            return [Finding("warning", lineno, full, f"memory={value} is {_human(size)}{unitless}: WSL raises it "
                            "to its minimum, 256 MB", f"memory={value}GB" if value.isdigit() and int(value) < 1024
                            else "memory=4GB (for example)")]
        if host_memory_bytes is not None and size > host_memory_bytes:
            return [Finding("warning", lineno, full, f"memory={value} is more than the host's "
                            f"{_human(host_memory_bytes)}: WSL caps it there", f"memory={host_memory_bytes >> 30}GB")]
    if canon == "swap" and 0 < size < 1 << 20:
        unit = "MB" if value.isdigit() and int(value) >= 64 else "GB"
        return [Finding("warning", lineno, full, f"swap={value} is {_human(size)} (no unit means bytes!)",
                        f"swap={value}{unit} (with the unit you meant), or swap=0 for no swap file")]
    return []


# ----------------------------------------------------------------------------- helpers and output

def _nearest(word: str, choices: list[str]) -> str | None:
    low = {c.lower(): c for c in choices}
    hit = difflib.get_close_matches(word.lower(), list(low), n=1, cutoff=0.6)
    return low[hit[0]] if hit else None


def _name_fix(name: str) -> str:
    squashed = re.sub(r"[^A-Za-z0-9]", "", name)
    candidates = [k for keys in KNOWN_KEYS.values() for k in keys]
    guess = _nearest(squashed, candidates)
    return f"write it as {guess}=..." if guess else "use letters and digits only in key names"


def _human(n: int) -> str:
    return format_size(n, significant=3, largest="GiB")


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "error" for f in findings)


def format_findings(findings: list[Finding], path: str | None = None) -> str:
    """Findings as lines for a terminal: 'PATH:LINE: severity [key] message' then '  fix: ...'."""
    where = path or ".wslconfig"
    if not findings:
        return f"{where}: no problems found"
    out = []
    for f in findings:
        loc = f"{where}:{f.line}" if f.line else where
        key = f" [{f.key}]" if f.key and not f.key.startswith("[") else (f" {f.key}" if f.key else "")
        out.append(f"{loc}: {f.severity}{key}: {f.message}")
        if f.fix:
            out.append(f"    fix: {f.fix}")
    counts = {s: sum(f.severity == s for f in findings) for s in SEVERITIES}
    out.append(", ".join(f"{n} {s}{'s' if n != 1 else ''}" for s, n in counts.items()))
    return "\n".join(out)
