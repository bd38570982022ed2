"""sizes: what people type -> bytes, and bytes -> what we show."""
import pytest

from reclaimlab.units import GIB, KIB, MIB, PIB, SizeError, format_size, parse_size

GOOD = [
    ("3GB", 3_000_000_000),            # SI, as the seed's calloc(3000000000, 1)
    ("3 GB", 3_000_000_000),
    ("3gb", 3_000_000_000),
    ("3GiB", 3 * GIB),
    ("3 GiB", 3 * GIB),
    ("512MiB", 512 * MIB),
    ("1.5G", 3 * GIB // 2),            # bare letters are binary, like free -h and dd
    ("100M", 100 * MIB),
    ("4K", 4 * KIB),
    ("4kB", 4000),
    ("1TB", 10 ** 12),
    ("1P", PIB),                       # the largest accepted size
    ("1073741824", GIB),
    (" 1073741824 ", GIB),
    ("1024B", 1024),
    ("1e3", 1000),
    (1073741824, GIB),
    (1, 1),
]

BAD = ["3XB", "", "   ", "-1", "-3GB", "0", "0GB", "0.0001B", "NaN", "nan GB", "inf", "1.5.2G", "G", "3 G B",
       "2P", "1e400GB", "1025TiB", -5, 0, 2 * PIB, True, 3.5, None, b"3GB"]


@pytest.mark.parametrize("text,expected", GOOD)
def test_parse_good(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("text", BAD)
def test_parse_bad_names_input_and_shows_examples(text):
    with pytest.raises(SizeError) as err:
        parse_size(text)
    message = str(err.value)
    assert repr(text) in message and "3GB" in message and "\n" not in message
    assert isinstance(err.value, ValueError)


@pytest.mark.parametrize("n,text", [(0, "0 B"), (512, "512 B"), (1536, "1.50 KiB"), (3 * GIB, "3.00 GiB"),
                                    (3_000_000_000, "2.79 GiB"), (PIB, "1.00 PiB"), (100 * MIB, "100.00 MiB")])
def test_format(n, text):
    assert format_size(n) == text


def test_round_trip_binary():
    for n in (KIB, 5 * MIB, 3 * GIB):
        assert parse_size(format_size(n).replace(" ", "")) == n


def test_one_formatter_in_every_unit_and_style():
    from reclaimlab.units import format_kib
    assert format_kib(3 * 1024 * 1024) == "3.00 GiB"                        # KiB in, the unit in the name
    assert format_kib(1536 * 1024, "MiB", digits=0, grouping=True) == "1,536 MiB"
    assert format_kib(512 * 1024, digits={"GiB": 2, "MiB": 0}, smallest="MiB", largest="GiB") == "512 MiB"
    assert format_kib(2048, digits=None, smallest="KiB", largest="MiB") == "2 MiB"
    assert format_kib(128, digits=None, smallest="KiB", largest="MiB") == "128 KiB"
    assert format_size(5 * GIB // 2, digits=1, largest="GiB") == "2.5 GiB"
    assert format_size(None) == "?" and format_kib(float("nan"), missing="n/a") == "n/a"
    assert format_size(-5 * MIB) == "-5.00 MiB" and format_size(1023) == "1023 B"


@pytest.mark.parametrize("n,shown", [(100, "100 B"), (8000 << 20, "7.81 GiB"), (16 << 30, "16 GiB"),
                                     (1536 << 20, "1.5 GiB"), (123456, "121 KiB")])
def test_significant_digits_read_a_config_value_back(n, shown):
    from reclaimlab.units import format_size
    assert format_size(n, significant=3, largest="GiB") == shown


def test_a_small_negative_size_rounded_to_zero_has_no_sign():
    from reclaimlab.units import format_kib
    assert format_kib(-300, "MiB", digits=0, grouping=True) == "0 MiB"
    assert format_kib(-1536, "MiB", digits=0, grouping=True) == "-2 MiB"
