"""Hostile input at every boundary: a clear error naming the problem and the fix, never a traceback,
and bounded work (a size, a sample rate, a .wslconfig, a non-UTF-8 /proc file, record's --param)."""
from __future__ import annotations

import os
import socket
import threading

import pytest
from click.testing import CliRunner

from reclaimlab import units
from reclaimlab.cli.app import main
from reclaimlab.cli.watch import WatchError, parse_options
from reclaimlab.notebook.params import LabParameterError, check_hz, check_size
from reclaimlab.probe import sources
from reclaimlab.sampling.sampler import MIN_HZ, validate_hz
from reclaimlab.units import SizeError, parse_size
from reclaimlab.wsl import wslconfig as w

# --- sizes ----------------------------------------------------------------------------------------

HOSTILE_SIZES = [
    pytest.param("1e999999999", "more than 1.00 PiB", id="exponent-past-decimal-range"),
    pytest.param("1e999999", "more than 1.00 PiB", id="exponent-of-a-million"),
    pytest.param("1e99999999999999999999", "more than 1.00 PiB", id="exponent-of-twenty-digits"),
    pytest.param("9" * 5000, "longer than 100 characters", id="five-thousand-digits"),
    pytest.param("nan", "NaN and infinity are not sizes", id="nan"),
    pytest.param("inf GB", "NaN and infinity are not sizes", id="inf-with-unit"),
    pytest.param("-0", "cannot be negative", id="minus-zero"),
    pytest.param("1e-999999", "at least 1 byte", id="tiny-exponent"),
    pytest.param("1e-99999999999999999999", "at least 1 byte", id="tiny-exponent-past-decimal-range"),
    pytest.param("\u0663GB", "digit of another script", id="arabic-indic-digit"),
    pytest.param("\uff13GB", "digit of another script", id="fullwidth-digit"),
    pytest.param(True, "a bool is not a size", id="bool"),
    pytest.param(float("nan"), "got float", id="python-float-nan"),
    pytest.param(10 ** 5000, "more than 1.00 PiB", id="int-past-python-str-digit-limit"),
]


@pytest.mark.parametrize("value, why", HOSTILE_SIZES)
def test_hostile_size_is_a_size_error_naming_why(value, why):
    """hostile-inputs review, case 10: a size that overflows, is not finite, or is not ASCII is a SizeError."""
    with pytest.raises(SizeError) as err:
        parse_size(value)
    message = str(err.value)
    assert why in message and "valid sizes: e.g. 3GB" in message
    assert len(message) < 300  # a 5,000-character input is shown cut short, on one line


@pytest.mark.parametrize("text", ["1e999999", "1e999999999", "123456789e123456789"])
def test_a_huge_exponent_is_refused_before_any_arithmetic(text, monkeypatch):
    """hostile-inputs review, case 10: 1e999999 took 25 s of CPU expanding into an int before the 1 PiB check."""
    class NoArithmetic:
        def __init__(self, *args, **kwargs):
            raise AssertionError(f"{text} reached the arithmetic: its order of magnitude was not checked first")
    monkeypatch.setattr(units, "Context", NoArithmetic)
    with pytest.raises(SizeError, match="more than 1.00 PiB"):
        parse_size(text)


@pytest.mark.parametrize("text", [" 3GB\t", "\u00a03GB", "3\u2009GB", "3GB\n"], ids=["tab", "nbsp", "thin-space", "newline"])
def test_whitespace_around_a_size_is_read(text):
    """hostile-inputs review, case 10: unicode whitespace around a size is read as the size, not refused."""
    assert parse_size(text) == 3_000_000_000


def test_lab_size_parameter_overflowing_is_a_lab_parameter_error():
    """hostile-inputs review, case 10: a lab's size = "1e999999999" names the parameter (was decimal.Overflow)."""
    with pytest.raises(LabParameterError, match=r"parameter size: size '1e999999999': more than 1.00 PiB"):
        check_size("size", "1e999999999")


def test_record_size_overflowing_is_one_line_exit_2():
    """hostile-inputs review, case 10: `reclaimlab record --size 1e999999999` was a decimal.Overflow traceback."""
    result = CliRunner().invoke(main, ["record", "calloc-reclaim", "--mode", "recorded", "--size", "1e999999999"])
    assert result.exit_code == 2, result.output
    assert "size '1e999999999': more than 1.00 PiB" in result.output
    assert isinstance(result.exception, SystemExit)


# --- sample rates ---------------------------------------------------------------------------------

@pytest.mark.parametrize("hz, why", [
    pytest.param("1e-300", "below the minimum of one sample an hour", id="1e-300"),
    pytest.param("5e-324", "below the minimum of one sample an hour", id="smallest-float"),
    pytest.param("0.0001", "below the minimum of one sample an hour", id="one-in-3-hours"),
    pytest.param("nan", "is not a number", id="nan"),
    pytest.param("inf", "above the maximum", id="inf"),
    pytest.param("1e999", "above the maximum", id="overflows-to-inf"),
    pytest.param("0", "must be above 0", id="zero"),
    pytest.param("-10", "must be above 0", id="negative"),
])
def test_watch_hz_out_of_range_is_a_watch_error(hz, why):
    """hostile-inputs review, case 13: `watch --hz 1e-300` was an OverflowError; every rate outside the range is named."""
    with pytest.raises(WatchError, match="--hz") as err:
        parse_options(hz, None, None)
    assert why in str(err.value)


def test_the_lowest_rate_is_accepted_and_just_below_it_is_not():
    """hostile-inputs review, case 13: the lower bound is one sample an hour, the same for every caller."""
    assert validate_hz(MIN_HZ) == MIN_HZ
    with pytest.raises(ValueError, match="one sample an hour"):
        validate_hz(MIN_HZ / 2)


def test_lab_sample_hz_below_the_bound_is_a_lab_parameter_error():
    """hostile-inputs review, case 13: a lab's sample_hz = 1e-300 is refused by the sampler's own rule."""
    with pytest.raises(LabParameterError, match=r"sample_hz=1e-300 .*one sample an hour"):
        check_hz(1e-300)


def test_watch_command_hz_1e_300_is_one_line_exit_2():
    """hostile-inputs review, case 13: the watch command itself says what is wrong with --hz 1e-300."""
    result = CliRunner().invoke(main, ["watch", "--hz", "1e-300", "--duration", "1"])
    assert result.exit_code == 2
    assert result.output.strip().startswith("reclaimlab watch: --hz: sample rate 1e-300 is below the minimum")


# --- .wslconfig -----------------------------------------------------------------------------------

@pytest.mark.parametrize("line", [
    pytest.param("memory=" + "1" * 5000, id="memory-5000-digits"),
    pytest.param("memory=" + "1" * 5000 + "GB", id="memory-5000-digits-GB"),
    pytest.param("memory=" + "1" * 5000 + ".5GB", id="memory-5000-digits-decimal"),
    pytest.param("swap=" + "9" * 21, id="swap-21-digits"),
    pytest.param("processors=0" + "1" * 5000, id="processors-octal-5000-digits"),
    pytest.param("processors=" + "9" * 400 + ".5", id="processors-400-digit-decimal"),
    pytest.param("kernelDebugPort=" + "1" * 5000, id="integer-5000-digits"),
])
def test_a_number_past_64_bits_is_an_error_finding(line):
    """hostile-inputs review, case 12: memory= with 4,301+ digits was a ValueError (Python's int digit limit)."""
    findings = w.check("[wsl2]\n" + line + "\n")
    assert [f.severity for f in findings] == ["error"]
    assert "more than WSL reads into 64 bits" in findings[0].message
    assert len(findings[0].message) < 300


def test_a_size_whose_unit_carries_it_past_64_bits_is_an_error_finding():
    """hostile-inputs review, case 12: 99999999999TB fits 20 digits but not 64 bits once multiplied by its unit."""
    findings = w.check("[wsl2]\nmemory=99999999999TB\n")
    assert [f.severity for f in findings] == ["error"] and "64 bits" in findings[0].message


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    """hostile-inputs review, case 12: a FIFO given as the .wslconfig hung forever."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    outcome: list[BaseException | None] = []

    def read() -> None:
        try:
            w.check(fifo)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001  handed to the test's thread
            outcome.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive(), "reading a FIFO blocked"
    assert isinstance(outcome[0], w.WslConfigError)
    assert str(outcome[0]).startswith(f"{fifo}: is a FIFO (named pipe), not a .wslconfig file")


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused_by_name(device):
    """hostile-inputs review, case 12: /dev/zero as the .wslconfig was a MemoryError."""
    with pytest.raises(w.WslConfigError, match=f"{device}: is a character device, not a .wslconfig file"):
        w.check(device)


def test_a_socket_is_refused_by_name(tmp_path):
    """hostile-inputs review, case 12: a socket is not a .wslconfig and says so."""
    path = tmp_path / "sock"
    server = socket.socket(socket.AF_UNIX)
    try:
        server.bind(str(path))
        with pytest.raises(w.WslConfigError, match="is a socket, not a .wslconfig file"):
            w.check(path)
    finally:
        server.close()


def test_a_50_mb_file_is_refused_after_reading_at_most_1_mib(tmp_path, monkeypatch):
    """hostile-inputs review, case 12: a 50 MB file took 91 s and 5.8 GB; now at most 1 MiB is read."""
    big = tmp_path / "big.wslconfig"
    with open(big, "wb") as f:
        f.truncate(50 * 10 ** 6)  # sparse: no disk used
    read_bytes: list[int] = []
    real_read = os.read

    def counting_read(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        read_bytes.append(len(data))
        return data
    monkeypatch.setattr(os, "read", counting_read)
    with pytest.raises(w.WslConfigError, match=r"larger than 1.00 MiB, too large to be a .wslconfig"):
        w.check(big)
    assert sum(read_bytes) <= w.MAX_FILE_BYTES + 1


def test_a_file_of_exactly_1_mib_is_still_checked(tmp_path):
    """hostile-inputs review, case 12: the cap refuses only what is larger than 1 MiB."""
    text = b"[wsl2]\nmemory=8GB\n"
    path = tmp_path / ".wslconfig"
    path.write_bytes(text + b"#" * (w.MAX_FILE_BYTES - len(text)))
    assert w.check(path) == []


def test_wslconfig_command_on_a_fifo_is_exit_2_with_what_a_wslconfig_is(tmp_path):
    """hostile-inputs review, case 12: the command names the path, what it is, and what a .wslconfig is."""
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    result = CliRunner().invoke(main, ["wslconfig", str(fifo)])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"Error: {fifo}: is a FIFO (named pipe), not a .wslconfig file (a .wslconfig is a small text file of "
        "WSL settings, usually %UserProfile%\\.wslconfig)"]


def test_wslconfig_host_memory_of_5000_digits_is_a_bad_parameter():
    """hostile-inputs review, case 12: --host-memory goes through parse_size's bounds, not int() alone."""
    result = CliRunner().invoke(main, ["wslconfig", "--host-memory", "1" * 5000, "x"])
    assert result.exit_code == 2 and "Invalid value for --host-memory" in result.output
    assert "longer than 100 characters" in result.output


# --- /proc files that are not UTF-8 ---------------------------------------------------------------

def test_doctor_on_a_non_utf8_meminfo_names_the_file_and_line(tree_copy):
    """hostile-inputs review, case 13: doctor on a /proc/meminfo with bytes that are not UTF-8 was a UnicodeDecodeError."""
    roots = tree_copy("firecracker-vm")
    meminfo = roots.proc / "meminfo"
    lines = meminfo.read_bytes().splitlines(keepends=True)
    lines[1] = b"MemFree:  \xff\xfe 100 kB\n"
    meminfo.write_bytes(b"".join(lines))
    result = CliRunner().invoke(main, ["doctor", "--proc-root", str(roots.proc), "--sys-root", str(roots.sys)])
    assert result.exit_code == 2 and result.output.count("\n") == 1
    assert f"{meminfo}: line 2" in result.output
    assert isinstance(result.exception, SystemExit)


def test_read_optional_of_a_non_utf8_file_gives_its_text(tmp_path):
    """hostile-inputs review, case 13: an optional kernel file with stray bytes is read, not a crash."""
    path = tmp_path / "version"
    path.write_bytes(b"Linux version 6.18 \xff\n")
    assert sources.read_optional(path) == "Linux version 6.18 \ufffd\n"


# --- record's --param, found in passing -----------------------------------------------------------

@pytest.mark.parametrize("param, message", [
    pytest.param("size=1e999999999", "size '1e999999999': more than 1.00 PiB", id="size-overflow"),
    pytest.param("observe_s=nan", "observe_s must be a number >= 0 (default 25.0), not 'nan'", id="seconds-nan"),
    pytest.param("observe_s=1e999", "not '1e999'", id="seconds-overflow-to-inf"),
    pytest.param("hold_s=-1", "hold_s must be a number >= 0", id="seconds-negative"),
    pytest.param("hold_s=1e308", "hold_s=1e+308 is more than a day", id="seconds-beyond-a-day"),
    pytest.param("sample_hz=1e-300", "one sample an hour", id="hz-tiny"),
])
def test_record_param_out_of_range_is_one_line_exit_2(param, message):
    """Hostile input beyond the review: `record --param` values that overflow or are not finite are named as typed."""
    result = CliRunner().invoke(main, ["record", "calloc-reclaim", "--mode", "recorded", "--param", param])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert isinstance(result.exception, SystemExit)


# --- a lab's parameters cell, found in passing ----------------------------------------------------

@pytest.mark.parametrize("folder", [3, None, ["~/runs"]], ids=["int", "none", "list"])
def test_lab_recordings_folder_of_the_wrong_type_is_a_lab_parameter_error(folder):
    """Hostile input beyond the review: recordings = {"page-cache": 3} named a TypeError, not the parameter."""
    from reclaimlab.notebook.params import check_recordings
    with pytest.raises(LabParameterError, match=r"recordings\['page-cache'\]=.* is not a folder; give its path as text"):
        check_recordings({"page-cache": folder})
