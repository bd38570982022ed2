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
from typing import Any, Mapping
import re
from decimal import Decimal, InvalidOperation

KIB = 1024
MIB = 1024 ** 2
GIB = 1024 ** 3
TIB = 1024 ** 4
PIB = 1024 ** 5

# Larger than any machine this kit will meet; a bigger number is a typo, not a request.
MAX_BYTES = PIB

_UNITS = {
    "": 1, "b": 1,
    "kb": 1000, "mb": 1000 ** 2, "gb": 1000 ** 3, "tb": 1000 ** 4, "pb": 1000 ** 5,
    "kib": KIB, "mib": MIB, "gib": GIB, "tib": TIB, "pib": PIB,
    "k": KIB, "m": MIB, "g": GIB, "t": TIB, "p": PIB,
}
_PATTERN = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][+-]?[0-9]+)?)\s*([A-Za-z]*)\s*$")
_EXAMPLES = "e.g. 3GB (3*10^9), 3 GiB (3*2^30), 512MiB, 1.5G (= GiB), or bytes like 1073741824"


class SizeError(ValueError):
    """A size the user typed cannot be understood or makes no sense; str() says why and shows examples."""


def _error(value: object, why: str) -> SizeError:
    return SizeError(f"size {value!r}: {why}; valid sizes: {_EXAMPLES}")


def parse_size(value: str | int) -> int:
    """'3GB', '3 GiB', '512MiB', '1.5G', '100M', 1073741824 or '1073741824' -> bytes (int).

    Fractions round to the nearest byte. Raises SizeError for anything else: an unknown unit,
    empty text, zero, a negative number, NaN/inf, or more than 1 PiB.
    """
    if isinstance(value, bool):  # bool is an int subclass; True bytes is never meant
        raise _error(value, "a bool is not a size")
    if isinstance(value, str):
        match = _PATTERN.match(value)
        if not match:
            if value.strip().startswith("-"):
                raise _error(value, "a size cannot be negative")
            raise _error(value, "not a number followed by an optional unit")
        number_text, unit = match.groups()
        factor = _UNITS.get(unit.lower())
        if factor is None:
            raise _error(value, f"unknown unit {unit!r}")
        try:
            number = Decimal(number_text)
        except InvalidOperation:  # the pattern makes this unreachable; kept as a boundary guard
            raise _error(value, "not a number") from None
        size_bytes = int((number * factor).to_integral_value())
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
    return f"{sign}{n / factor:{spec}} {unit}"


def format_kib(kib: int | float | None, unit: str | None = None, **how: Any) -> str:
    """KiB (as /proc/meminfo and the Recording's *_kib columns hold them) -> '3.00 GiB'; see format_size."""
    return format_size(None if kib is None else kib * KIB, unit, **how)
