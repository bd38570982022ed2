"""The guest probe on every fixture tree and on this live guest, and `reclaimlab doctor`."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from reclaimlab.probe import guest, consent
from reclaimlab.experiments import verdicts
from reclaimlab.cli.app import main
from reclaimlab.probe.procfs import ProcParseError
from reclaimlab.probe.sources import Roots, SourceError

from conftest import FILES, tree_roots

MIB = 1024 ** 2
GIB = 1024 ** 3
LIVE_PARAMS = Path("/sys/module/page_reporting/parameters")

STABLE_KEYS = {
    "schema_version", "kind", "kind_reason", "hypervisor", "hypervisor_evidence", "container",
    "kernel_release", "is_root", "virtio_balloon", "balloon_driver", "free_page_reporting",
    "free_page_reporting_reason", "page_reporting_order", "page_reporting_params", "host_views",
    "host_view_notes", "knobs", "cgroup_limit_writable", "shared_reason", "consent_given", "memory",
    "scratch_dir", "scratch_free_bytes", "kvm_usable", "qemu_path", "live_support", "proc_root",
    "sys_root", "problems", "glossary", "kit_vm", "refusal", "uptime_s",
}
MEMORY_KEYS = {"mem_total_bytes", "mem_available_bytes", "mem_free_bytes", "cgroup_version", "cgroup_path",
               "cgroup_limit_bytes", "cgroup_usage_bytes", "memory_budget_bytes", "buddy_free_bytes",
               "buddy_below_order_bytes"}


def probe_tree(name: str, env: dict | None = None, **kw) -> guest.GuestInfo:
    return verdicts.probe(tree_roots(name), env=env or {}, **kw)


# --- the budget rule ---------------------------------------------------------------------------

def test_budget_keeps_back_ten_percent_and_256_mib():
    assert guest.safe_budget_bytes(4 * GIB) == 4 * GIB - int(0.4 * GIB) - 256 * MIB


def test_budget_cgroup_headroom_binds_when_smaller():
    assert guest.safe_budget_bytes(24 * GIB, 2 * GIB, 512 * MIB) == guest.safe_budget_bytes(1536 * MIB)
    assert guest.safe_budget_bytes(1 * GIB, 8 * GIB, 0) == guest.safe_budget_bytes(1 * GIB)


def test_budget_never_negative():
    assert guest.safe_budget_bytes(100 * MIB) == 0
    assert guest.safe_budget_bytes(8 * GIB, 2 * GIB, 3 * GIB) == 0  # usage above the limit


# --- the probe on each tree --------------------------------------------------------------------

def test_firecracker_tree():
    info = probe_tree("firecracker-vm")
    assert info.kind == "vm" and info.container is None
    assert info.hypervisor == "Firecracker (KVM)"
    assert "CPU flag 'hypervisor'" in info.hypervisor_evidence
    assert info.kernel_release == "6.18.44-fc-v669"
    assert info.virtio_balloon and info.balloon_driver == "virtio_balloon"
    assert info.free_page_reporting is True and info.page_reporting_order == 9
    assert [v.column for v in info.host_views] == ["host_reported_kib"]
    m = info.memory
    assert (m.cgroup_version, m.cgroup_limit_bytes, m.cgroup_usage_bytes) == (1, None, 20250624)
    assert m.mem_available_bytes == 24099748 * 1024
    assert m.memory_budget_bytes == guest.safe_budget_bytes(24099748 * 1024, None, 20250624)
    assert info.live_support["calloc-reclaim"].live
    assert not info.live_support["vm"].live and "qemu-system-x86_64 not on PATH" in info.live_support["vm"].reason
    assert info.problems == ()


def test_to_dict_keys_are_stable_and_json():
    d = json.loads(json.dumps(probe_tree("firecracker-vm").to_dict()))
    assert set(d) == STABLE_KEYS
    assert set(d["memory"]) == MEMORY_KEYS
    assert set(d["live_support"]) == set(verdicts.labs())
    assert all(set(v) == {"verdict", "live", "reason", "needs_consent", "labs"} for v in d["live_support"].values())
    assert "since boot" in d["glossary"]["reported_kib"]
    assert set(d["knobs"]) == {"drop_caches", "compact_memory", "compaction_proactiveness", "memory.reclaim"}
    assert d["host_views"] == [{"name": "reported_kib", "column": "host_reported_kib",
                                "source": str(tree_roots("firecracker-vm").sys / "module/page_reporting/parameters/reported_kib")}]


def test_balloon_without_reporting_feature(tree_copy):
    roots = tree_copy("firecracker-vm")
    features = roots.sys / "bus/virtio/devices/virtio0/features"
    bits = features.read_text()
    features.write_text(bits[:guest.VIRTIO_BALLOON_F_REPORTING] + "0" + bits[guest.VIRTIO_BALLOON_F_REPORTING + 1:])
    info = verdicts.probe(roots, env={})
    assert info.virtio_balloon and info.free_page_reporting is False
    assert "did not offer" in info.free_page_reporting_reason


def test_wsl2_tree_with_fake_interop():
    info = probe_tree("wsl2")
    assert info.kind == "wsl2" and info.hypervisor == "Hyper-V (WSL 2)"
    assert info.balloon_driver == "hv_balloon" and not info.virtio_balloon
    assert info.free_page_reporting is None  # the guest cannot see whether Hyper-V takes them
    assert [(v.name, Path(v.source).name) for v in info.host_views] == [("wsl_vmmem", "tasklist.exe")]
    assert info.memory.cgroup_version == 2 and info.memory.cgroup_limit_bytes is None
    assert info.knobs["memory.reclaim"].writable
    auto = info.live_support["auto-reclaim"]
    assert auto.live and "memory.reclaim" in auto.reason and "consent" in auto.reason
    assert info.to_dict()["live_support"]["auto-reclaim"]["needs_consent"] is True


def test_wsl2_consent_given_is_reported():
    info = probe_tree("wsl2", env={consent.ALLOW_ENV: "1"})
    assert info.consent_given
    assert "consent given" in info.live_support["compaction"].reason


def test_wsl2_powershell_when_tasklist_missing(tree_copy):
    roots = tree_copy("wsl2")
    (roots.proc.parent / "mnt/c/Windows/System32/tasklist.exe").unlink()
    info = verdicts.probe(roots, env={})
    assert [Path(v.source).name for v in info.host_views] == ["powershell.exe"]


def test_wsl2_from_environment_alone():
    info = verdicts.probe(tree_roots("bare-metal"), env={"WSL_DISTRO_NAME": "Ubuntu"})
    assert info.kind == "wsl2" and "WSL_DISTRO_NAME" in info.kind_reason


def test_container_wins_but_keeps_the_hypervisor(tree_copy):
    roots = tree_copy("wsl2")
    ns = roots.proc / "self/ns/pid"
    ns.unlink()
    ns.symlink_to("pid:[4026532999]")
    info = verdicts.probe(roots, env={})
    assert info.kind == "container" and info.hypervisor == "Hyper-V (WSL 2)"
    assert not info.live_support["page-cache"].live


def test_container_v1_old_binder():
    info = probe_tree("container-v1")
    assert info.kind == "container" and "PID namespace" in info.container
    assert info.hypervisor == "Google Compute Engine (KVM)"
    m = info.memory
    assert (m.cgroup_version, m.cgroup_limit_bytes, m.cgroup_usage_bytes) == (1, 2 * GIB, 512 * MIB)
    assert m.memory_budget_bytes == guest.safe_budget_bytes(m.mem_available_bytes, 2 * GIB, 512 * MIB)
    assert m.memory_budget_bytes < 2 * GIB < m.mem_available_bytes  # the host's MemAvailable is not ours
    assert info.host_views == () and info.free_page_reporting is False
    assert info.live_support["calloc-reclaim"].live
    for name in ("page-cache", "compaction", "auto-reclaim"):
        support = info.live_support[name]
        assert not support.live and "system-wide knobs stay off" in support.reason


def test_container_v2_binder_no_root(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    info = probe_tree("container-v2", env={"BINDER_LAUNCH_HOST": "https://mybinder.org/"})
    assert info.kind == "container" and info.container == "Binder (BINDER_* set)"
    assert not info.is_root
    assert info.hypervisor == "Amazon EC2 (Nitro)"
    m = info.memory
    assert (m.cgroup_version, m.cgroup_limit_bytes, m.cgroup_usage_bytes) == (2, 2 * GIB, 314572800)
    assert "Binder" in info.shared_reason
    assert not info.live_support["compaction"].live


def test_bare_metal():
    info = probe_tree("bare-metal")
    assert info.kind == "bare-metal" and info.hypervisor is None
    assert info.balloon_driver is None and info.free_page_reporting is False
    assert info.page_reporting_order == 9  # built into the kernel, but nothing receives the reports
    assert info.host_views == ()
    assert "only the guest's side shows" in info.live_support["calloc-reclaim"].reason


def test_unknown_hypervisor_rather_than_a_guess(tree_copy):
    roots = tree_copy("bare-metal")
    cpuinfo = roots.proc / "cpuinfo"
    cpuinfo.write_text(cpuinfo.read_text().replace("flags\t\t: fpu", "flags\t\t: hypervisor fpu"))
    info = verdicts.probe(roots, env={})
    assert info.kind == "vm" and info.hypervisor == "unknown"


def test_small_budget_refuses_allocation_experiments(tree_copy):
    roots = tree_copy("container-v2")
    (roots.sys / "fs/cgroup/memory.current").write_text(f"{2 * GIB - 300 * MIB}\n")
    info = verdicts.probe(roots, env={})
    assert info.memory.memory_budget_bytes == guest.safe_budget_bytes(300 * MIB) < guest.MIN_LIVE_BUDGET_BYTES
    for name in ("calloc-reclaim", "refault"):
        assert not info.live_support[name].live and "needs 256 MiB" in info.live_support[name].reason


def test_no_scratch_space_refuses_page_cache(tmp_path):
    info = probe_tree("firecracker-vm", scratch_dir=tmp_path / "missing")
    assert info.scratch_free_bytes is None
    assert not info.live_support["page-cache"].live


def test_vm_support_reports_kvm_or_tcg(tree_copy, tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    qemu = bin_dir / guest.QEMU_BINARY
    qemu.write_text("#!/bin/sh\n")
    qemu.chmod(0o755)
    roots = tree_copy("firecracker-vm")
    tcg = verdicts.probe(roots, env={"PATH": str(bin_dir)}).live_support["vm"]
    assert tcg.live and "TCG" in tcg.reason
    kvm = roots.proc.parent / "dev/kvm"
    kvm.parent.mkdir()
    kvm.write_text("")  # a tree stands the device in with a file
    assert "KVM acceleration" in verdicts.probe(roots, env={"PATH": str(bin_dir)}).live_support["vm"].reason


# --- old kernels and broken trees --------------------------------------------------------------

def test_old_kernel_without_memavailable_budgets_from_memfree(tree_copy):
    roots = tree_copy("firecracker-vm")
    shutil.copy(FILES / "meminfo-2.6.32", roots.proc / "meminfo")
    info = verdicts.probe(roots, env={})
    assert info.memory.mem_available_bytes is None
    assert info.memory.memory_budget_bytes == guest.safe_budget_bytes(910444 * 1024, None, 20250624)
    assert any("no MemAvailable" in p for p in info.problems)


def test_corrupt_meminfo_is_fatal_and_named(tree_copy):
    roots = tree_copy("firecracker-vm")
    shutil.copy(FILES / "meminfo-corrupt-value", roots.proc / "meminfo")
    with pytest.raises(ProcParseError, match=r"meminfo: line 2"):
        verdicts.probe(roots, env={})


def test_missing_meminfo_is_fatal(tmp_path):
    with pytest.raises(SourceError, match="meminfo: not found"):
        verdicts.probe(Roots(tmp_path, tmp_path), env={})


def test_other_broken_files_become_problems(tree_copy):
    roots = tree_copy("container-v2")
    (roots.proc / "sys/kernel/osrelease").unlink()
    (roots.sys / "fs/cgroup/memory.max").write_text("lots\n")
    info = verdicts.probe(roots, env={})
    assert info.kernel_release is None
    assert any("osrelease" in p for p in info.problems)
    assert any("memory.max: 'lots'" in p for p in info.problems)
    assert info.memory.cgroup_limit_bytes is None


# --- no permissions ------------------------------------------------------------------------------

def test_not_root_on_the_live_guest(monkeypatch):
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    info = verdicts.probe(Roots(), env={})
    assert not info.is_root
    for name in ("drop_caches", "compact_memory"):
        knob = info.knobs[name]
        if knob.path is not None:
            assert not knob.writable and "needs root" in knob.reason
    assert not info.live_support["compaction"].live


def _setpriv_nobody() -> list[str]:
    setpriv = shutil.which("setpriv")
    if setpriv is None or os.geteuid() != 0:
        pytest.skip("needs root and setpriv to run a probe as nobody")
    return [setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_probe_as_nobody_in_a_real_subprocess():
    code = "import json; from reclaimlab.experiments import verdicts; print(json.dumps(verdicts.probe(env={}).to_dict()))"
    run = subprocess.run([*_setpriv_nobody(), sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, cwd="/")
    if run.returncode != 0 and "Permission denied" in run.stderr:
        pytest.skip(f"nobody cannot run this interpreter: {run.stderr.strip()[:200]}")
    assert run.returncode == 0, run.stderr
    d = json.loads(run.stdout)
    assert d["is_root"] is False
    assert d["knobs"]["drop_caches"]["writable"] is False
    assert "needs root" in d["knobs"]["drop_caches"]["reason"]
    assert d["live_support"]["page-cache"]["live"] is False


# --- the live guest ----------------------------------------------------------------------------------

def test_live_probe_on_this_guest():
    if not (LIVE_PARAMS / "reported_kib").exists():
        pytest.skip(f"{LIVE_PARAMS}/reported_kib absent: not this project's kind of guest")
    info = verdicts.probe(env={})
    assert info.kind == "vm" and info.virtio_balloon and info.free_page_reporting is True
    assert info.page_reporting_order == int((LIVE_PARAMS / "page_reporting_order").read_text())
    assert "host_reported_kib" in [v.column for v in info.host_views]
    assert info.memory.mem_total_bytes > 0 and info.memory.memory_budget_bytes > 0


# --- reclaimlab doctor -------------------------------------------------------------------------------

def tree_args(name: str) -> list[str]:
    roots = tree_roots(name)
    return ["--proc-root", str(roots.proc), "--sys-root", str(roots.sys)]


@pytest.mark.parametrize("name", ["firecracker-vm", "wsl2", "wsl1", "container-v1", "container-v2", "bare-metal"])
def test_doctor_table_on_each_tree(name):
    result = CliRunner().invoke(main, ["doctor", *tree_args(name)])
    assert result.exit_code == 0, result.output
    kind_row = next(line for line in result.output.splitlines() if line.startswith("  kind "))
    assert kind_row.split()[1] == probe_tree(name, env=dict(os.environ)).kind
    for section in ("Guest", "Memory", "Giving memory back", "Host views", "Knobs", "Experiments"):
        assert f"\n{section}" in result.output
    for experiment in verdicts.labs():
        assert f"  {experiment} " in result.output


def test_doctor_wsl_tree_asks_the_fake_tasklist():
    result = CliRunner().invoke(main, ["doctor", *tree_args("wsl2")])
    line = next(l for l in result.output.splitlines() if l.strip().startswith("wsl_vmmem"))
    assert "1.2 GiB" in line and "tasklist.exe answered in" in line


def test_doctor_json_has_the_stable_keys():
    result = CliRunner().invoke(main, ["doctor", "--json", *tree_args("container-v1")])
    assert result.exit_code == 0
    d = json.loads(result.output)
    assert set(d) == STABLE_KEYS and d["kind"] == "container"
    assert d["memory"]["cgroup_limit_bytes"] == 2 * GIB


@pytest.mark.parametrize("args, message", [
    (["--proc-root", "/no/such/dir"], "--proc-root /no/such/dir: not a directory"),
    (["--sys-root", "/no/such/dir"], "--sys-root /no/such/dir: not a directory"),
    (["--proc-root", str(FILES)], "meminfo: not found"),
])
def test_doctor_bad_roots_one_line_exit_2(args, message):
    result = CliRunner().invoke(main, ["doctor", *args])
    assert result.exit_code == 2
    assert result.output.count("\n") == 1 and message in result.output
    assert "Traceback" not in result.output


def test_doctor_corrupt_meminfo_one_line_exit_2(tree_copy):
    roots = tree_copy("firecracker-vm")
    shutil.copy(FILES / "meminfo-corrupt-colon", roots.proc / "meminfo")
    result = CliRunner().invoke(main, ["doctor", "--proc-root", str(roots.proc), "--sys-root", str(roots.sys)])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert "meminfo: line 3" in result.output


def test_doctor_live_subprocess_on_this_guest():
    if not (LIVE_PARAMS / "reported_kib").exists():
        pytest.skip(f"{LIVE_PARAMS}/reported_kib absent: this kernel does not expose reported_kib")
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECLAIMLAB_")}
    script = Path(sys.executable).with_name("reclaimlab")  # the console script, as a user runs it
    command = [str(script)] if script.exists() else [sys.executable, "-c", "from reclaimlab.cli.app import main; main()"]
    run = subprocess.run([*command, "doctor", "--json"], capture_output=True, text=True, timeout=60, env=env)
    assert run.returncode == 0, run.stderr
    d = json.loads(run.stdout)
    assert d["page_reporting_order"] == 9
    assert "reported_kib" in d["page_reporting_params"]
    assert [v["column"] for v in d["host_views"]] == ["host_reported_kib"]
    table = subprocess.run([*command, "doctor"], capture_output=True, text=True, timeout=60, env=env)
    assert table.returncode == 0 and "page_reporting_order     9 (2.0 MiB blocks)" in table.stdout


# --- WSL 1 is not a VM --------------------------------------------------------------------------------

@pytest.mark.parametrize("env", [{}, {"WSL_DISTRO_NAME": "Ubuntu"}])  # WSL 1 sets WSL_DISTRO_NAME too
def test_wsl1_tree_is_neither_a_vm_nor_wsl2(env):
    info = probe_tree("wsl1", env=env)
    assert info.kind == "wsl1" and info.hypervisor is None
    assert "4.4.0-19041-Microsoft is WSL 1's" in info.kind_reason
    assert info.memory.mem_available_bytes is None
    assert any("WSL 1 lack it" in p for p in info.problems)
    distro = env.get("WSL_DISTRO_NAME", "<distro>")
    for name, support in info.live_support.items():
        assert not support.live and f"wsl --set-version {distro} 2" in support.reason, name
    d = info.to_dict()
    assert {v["verdict"] for v in d["live_support"].values()} == {"recorded"}


def test_wsl2_kernels_are_not_taken_for_wsl1():
    from reclaimlab.probe import hostviews as host
    assert host.wsl1_reason("5.15.167.4-microsoft-standard-WSL2") is None
    assert host.wsl1_reason("4.19.128-microsoft-standard") is None
    assert host.wsl1_reason("4.4.0-22621-Microsoft")
    assert host.wsl_reason("4.4.0-19041-Microsoft", {"WSL_DISTRO_NAME": "Ubuntu"}) is None


def test_doctor_on_wsl1_says_what_it_means_and_offers_nothing_live():
    result = CliRunner().invoke(main, ["doctor", *tree_args("wsl1")])
    assert result.exit_code == 0, result.output
    kind_row = next(line for line in result.output.splitlines() if line.startswith("  kind "))
    assert kind_row.split()[1] == "wsl1" and "no guest kernel" in kind_row and "wsl --set-version" in kind_row
    hypervisor_row = next(line for line in result.output.splitlines() if line.startswith("  hypervisor "))
    assert hypervisor_row.split()[1] == "none" and "Hyper-V" not in hypervisor_row
    rows = result.output.split("\nExperiments")[1].split("\n\n")[0].splitlines()[1:]
    assert len(rows) == len(verdicts.labs()) and all(" recorded " in r for r in rows)


def test_on_wsl1_labs_show_their_recordings_with_the_reason(monkeypatch):
    from reclaimlab.experiments import ExperimentRefused, run
    monkeypatch.setenv("RECLAIMLAB_PROC_ROOT", str(tree_roots("wsl1").proc))
    monkeypatch.setenv("RECLAIMLAB_SYS_ROOT", str(tree_roots("wsl1").sys))
    rec = run("calloc-reclaim", "auto", quiet=True)
    assert rec.is_recorded and "WSL 1 has no Linux kernel" in rec.why_shown
    vm_rec = run("calloc-reclaim", "auto", guest="vm", quiet=True)
    assert vm_rec.is_recorded and "wsl --set-version" in vm_rec.why_shown
    with pytest.raises(ExperimentRefused, match="WSL 1"):
        run("refault", "live", quiet=True)


# --- the doctor agrees with what auto mode does ---------------------------------------------------------

def test_json_verdict_is_live_with_consent_where_consent_was_not_given():
    d = probe_tree("firecracker-vm", env={}).to_dict()["live_support"]
    assert d["page-cache"]["verdict"] == "live_with_consent" and d["page-cache"]["live"] is False
    assert d["calloc-reclaim"]["verdict"] == "live" and d["calloc-reclaim"]["live"] is True
    given = probe_tree("firecracker-vm", env={consent.ALLOW_ENV: "1"}).to_dict()["live_support"]
    assert given["page-cache"]["verdict"] == "live" and given["page-cache"]["live"] is True
    shared = probe_tree("firecracker-vm", env={consent.SHARED_ENV: "1", consent.ALLOW_ENV: "1"}).to_dict()
    assert shared["live_support"]["compaction"]["verdict"] == "recorded"


def test_doctor_text_and_json_say_the_same_verdicts(monkeypatch):
    monkeypatch.delenv(consent.ALLOW_ENV, raising=False)
    monkeypatch.delenv(consent.SHARED_ENV, raising=False)
    text = CliRunner().invoke(main, ["doctor", *tree_args("wsl2")]).output
    d = json.loads(CliRunner().invoke(main, ["doctor", "--json", *tree_args("wsl2")]).output)
    words = {"live": "live", "live_with_consent": "live, with consent", "recorded": "recorded"}
    for name, v in d["live_support"].items():
        row = next(line for line in text.splitlines() if line.startswith(f"  {name} (lab "))
        assert row[len("  ") + 24:].lstrip().startswith(words[v["verdict"]] + "  "), row
    assert d["live_support"]["auto-reclaim"]["verdict"] == "live_with_consent"


def test_json_verdict_matches_what_auto_mode_does_here(monkeypatch):
    # The probe's verdict and experiments.live_blocker (what auto mode asks) agree on this guest.
    from reclaimlab.experiments import harness as experiments
    monkeypatch.delenv(consent.ALLOW_ENV, raising=False)
    info = verdicts.probe()
    for name in ("calloc-reclaim", "refault", "page-cache", "compaction", "auto-reclaim"):
        blocker = experiments.live_blocker(experiments.get(name), "local", None)
        assert (info.to_dict()["live_support"][name]["verdict"] == "live") == (blocker is None), (name, blocker)


def _experiment_runs(notebook: Path) -> set[str]:
    """The experiments a notebook's code runs: `…run("name", …)` calls, "vm" where guest="vm" (in the call, or in
    the lab's `setup(guest="vm")`, which puts all its runs there)."""
    import ast
    import json
    found = set()
    cells = json.loads(notebook.read_text())["cells"]
    vm_lab = any('setup(' in "".join(c["source"]) and 'guest="vm"' in "".join(c["source"])
                 for c in cells if c["cell_type"] == "code")
    if vm_lab:
        found.add("vm")
    for cell in cells:
        if cell["cell_type"] != "code":
            continue
        source = "".join(cell["source"])
        try:
            tree = ast.parse(source)
        except SyntaxError:  # IPython magics: not a run() call
            continue
        for node in ast.walk(tree):
            if (isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", None)) == "run"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                in_vm = any(k.arg == "guest" and isinstance(k.value, ast.Constant) and k.value.value == "vm"
                            for k in node.keywords)
                # run(name, "recorded", guest="vm") shows a kit's-VM recording: it boots nothing (lab 03's order run)
                recorded = len(node.args) > 1 and isinstance(node.args[1], ast.Constant) and node.args[1].value == "recorded"
                found.add(node.args[0].value if recorded and not vm_lab else "vm" if in_vm or vm_lab
                          else node.args[0].value)
    return found


def test_labs_named_for_each_experiment_are_the_notebooks_that_run_it():
    labs_dir = Path(__file__).resolve().parent.parent / "labs"
    runs = {nb.stem: _experiment_runs(nb) for nb in labs_dir.glob("0[1-5]_*.ipynb")}
    for name, labs in verdicts.labs().items():
        for lab in labs:
            assert name in runs[lab], (name, lab, runs[lab])
    for stem, names in runs.items():
        for name in names & set(verdicts.labs()):
            assert stem in verdicts.labs()[name], (stem, name)