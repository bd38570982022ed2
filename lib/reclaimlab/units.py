"""Sizes as people type them ("3GB", "3 GiB", "512MiB", "1.5G") and as we show them.

What the units mean (the same rules as GNU coreutils, e.g. `dd` and `df --block-size`):

    B                      bytes
    kB KB MB GB TB PB      SI, powers of 1000:  3GB  = 3_000_000_000 bytes
    KiB MiB GiB TiB PiB    binary, powers of 1024: 3GiB = 3 * 1024**3 = 3_221_225_472 bytes
    K M G T P (bare)       binary, like `free -h`, `dd bs=1M` and `ls -h`: 1.5G = 1.5 GiB

Unit letters are case-insensitive ("3gb" == "3GB"). The seed of this kit, the WSL blog's C
program, calls ``calloc(3000000000, 1)``: its "3 GB" is SI, 3 * 10**9 bytes (2.79 GiB), so
``parse_size("3GB")`` allocates exactly what the seed allocates.
"""
from __future__ import annotations

import operator
import re
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation, Overflow
from typing import Any, Mapping

KIB = 1024
MIB = 1024 ** 2
GIB = 1024 ** 3
TIB = 1024 ** 4
PIB = 1024 ** 5
KIB_PER_MIB = MIB // KIB  # /proc and the recordings count KiB
KIB_PER_GIB = GIB // KIB

# Larger than any machine this kit will meet; a bigger number is a typo, not a request.
MAX_BYTES = PIB
# "1.5 GiB" is 7 characters; a longer text is a paste gone wrong. Refusing it first bounds the work.
MAX_SIZE_CHARS = 100

_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4, "pb": 1000 ** 5,
    "kib": KIB, "mib": MIB, "gib": GIB, "tib": TIB, "pib": PIB,
    "k": KIB, "m": MIB, "g": GIB, "t": TIB, "p": PIB,
}
# [0-9], not \d: a digit of another script ('٣') is refused by name in _unreadable, not half-read.
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
_NOT_FINITE = re.compile(r"^\s*[+-]?(nan|snan|inf|infinity)\b", re.IGNORECASE)
_EXAMPLES = "e.g. 3GB (3*10^9), 3 GiB (3*2^30), 512MiB, 1.5G (= GiB), or bytes like 1073741824"


class SizeError(ValueError):
    """A size the user typed cannot be understood or makes no sense; str() says why and shows examples."""


def shown(value: object) -> str:
    """The input as an error shows it: its repr, cut short, so a pasted page or a 5,000-digit number
    stays one readable line (and an int beyond Python's 4,300-digit str limit can be named at all)."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 128:  # 39+ digits
        return f"<an integer of about {int(value.bit_length() * 0.30103) + 1:,} digits>"
    if isinstance(value, str) and len(value) > 40:
        return f"{value[:40]!r}... ({len(value):,} characters)"
    return repr(value)


def _error(value: object, why: str) -> SizeError:
    return SizeError(f"size {shown(value)}: {why}; valid sizes: {_EXAMPLES}")


def _unreadable(text: str) -> str:
    """Why text that does not match _PATTERN is not a size, as specifically as we can tell."""
    foreign = next((c for c in text if ord(c) > 127 and not c.isspace()), None)
    if foreign is not None and foreign.isdigit():
        return f"{foreign!r} is a digit of another script; write sizes with the digits 0-9"
    if foreign is not None:
        return f"{foreign!r} is not part of a size; write a number with the digits 0-9, then an optional unit"
    if _NOT_FINITE.match(text):
        return "NaN and infinity are not sizes"
    if text.strip().startswith("-"):
        return "a size cannot be negative (nor carry a minus sign)"
    return "not a number followed by an optional unit"


def _parse_text(value: str) -> int:
    """'1.5 GiB' -> bytes, rounded to the nearest byte (not yet checked against 1 B .. MAX_BYTES)."""
    if len(value) > MAX_SIZE_CHARS:
        raise _error(value, f"longer than {MAX_SIZE_CHARS} characters; a size is a number and a unit")
    match = _PATTERN.match(value)
    if not match:
        raise _error(value, _unreadable(value))
    number_text, unit = match.groups()
    factor = _UNITS.get(unit.lower())
    if factor is None:
        raise _error(value, f"unknown unit {unit!r}")
    too_big = f"more than {format_size(MAX_BYTES)} is surely a typo"
    try:
        number = Decimal(number_text)
    except InvalidOperation:  # an exponent beyond even Decimal's range, e.g. 1e99999999999999999999
        raise _error(value, too_big if "-" not in number_text else "a size must be at least 1 byte") from None
    # Compare orders of magnitude before anything is expanded: int(Decimal("1e999999")) alone
    # takes ~25 s of CPU. 10**17 exceeds MAX_BYTES whatever the unit's factor.
    if number.adjusted() >= 17:
        raise _error(value, too_big)
    # A fresh context, not the thread's (which a caller may have changed); an exponent far below
    # zero underflows to 0 bytes, refused below.
    exact = Context(prec=60, traps=[InvalidOperation, Overflow]).multiply(number, Decimal(factor))
    return int(exact.to_integral_value(rounding=ROUND_HALF_EVEN))


def parse_size(value: str | int) -> int:
    """'3GB', '3 GiB', '512MiB', '1.5G', '100M', 1073741824 or '1073741824' -> bytes (int).

    Fractions round to the nearest byte. Raises SizeError for anything else: an unknown unit,
    empty text, zero, a negative number, NaN/inf, a digit other than 0-9, text longer than
    MAX_SIZE_CHARS, or more than 1 PiB. The work is bounded whatever the input.
    """
    if isinstance(value, bool):  # bool is an int subclass; True bytes is never meant
        raise _error(value, "a bool is not a size")
    if isinstance(value, str):
        size_bytes = _parse_text(value)
    else:
        try:
            size_bytes = operator.index(value)  # int, numpy integers; not float
        except TypeError:
            raise _error(value, f"expected text or an integer number of bytes, got {type(value).__name__}") from None
    if size_bytes < 0:
        raise _error(value, "a size cannot be negative")
    if size_bytes == 0:
        raise _error(value, "a size must be at least 1 byte")
    if size_bytes > MAX_BYTES:
        raise _error(value, f"more than {format_size(MAX_BYTES)} is surely a typo")
    return size_bytes


UNITS = (("PiB", PIB), ("TiB", TIB), ("GiB", GIB), ("MiB", MIB), ("KiB", KIB), ("B", 1))


def format_size(size_bytes: int | float | None, unit: str | None = None, *, digits: int | None | Mapping[str, int | None] = 2,
                smallest: str = "B", largest: str = "PiB", grouping: bool = False, missing: str = "?",
                significant: int | None = None) -> str:
    """Bytes -> '3.00 GiB': the one size formatter (binary units); every other one calls it.

    unit: show in this unit ("MiB"); None: the largest from `largest` down to `smallest` that
    the size reaches (the smallest below that). digits: decimals, per unit if a mapping (None:
    the shortest form, '2 MiB', '0.5 MiB'); whole bytes have none. grouping: 1,536 MiB.
    missing: what None or NaN shows. significant: that many significant digits instead of
    `digits` ('7.81 GiB', '512 MiB'), as a value typed into a config file is read back.
    """
    if size_bytes is None or size_bytes != size_bytes:  # NaN is not equal to itself
        return missing
    n = float(size_bytes)
    sign = "-" if n < 0 else ""
    n = abs(n)
    names = [u for u, _ in UNITS]
    if unit is None:
        choices = UNITS[names.index(largest):names.index(smallest) + 1]
        unit, factor = next(((u, f) for u, f in choices if n >= f), choices[-1])
    else:
        factor = dict(UNITS)[unit]
    places = digits.get(unit) if isinstance(digits, Mapping) else digits
    if unit == "B":
        places = 0
    if significant is not None:
        places_spec = f".{significant}g"
    else:
        places_spec = "g" if places is None else f".{places}f"
    spec = ("," if grouping else "") + places_spec
    text = f"{n / factor:{spec}}"
    if not any(c in "123456789" for c in text):  # -0.3 MiB shown in whole MiB is "0 MiB", not "-0 MiB"
        sign = ""
    return f"{sign}{text} {unit}"


def format_kib(kib: int | float | None, unit: str | None = None, **how: Any) -> str:
    """KiB (as /proc/meminfo and the Recording's *_kib columns hold them) -> '3.00 GiB'; see format_size."""
    return format_size(None if kib is None else kib * KIB, unit, **how)
