"""Which .wslconfig files WSL applies exactly as written (lab 04, section 5), from the checker's
findings (pure): a file is applied as written when it has no error and no warning tied to a line."""
from __future__ import annotations

from typing import Iterable, Mapping

from ..claims import Claim, claim

_APPLIED = {
    "some": "**Applied as written:** {names} ({n} of {total}); every other file has an error, or a warning on one "
            "of its lines, that makes WSL skip, ignore or change what it says.",
    "none": "**Applied as written:** none of the {total} files; each has an error, or a warning on one of its "
            "lines, that makes WSL skip, ignore or change what it says.",
}


def applied_as_written(found: Mapping[str, Iterable]) -> Claim:
    """found: file name -> the checker's findings (wslconfig.check)."""
    ok = [name for name, fs in found.items()
          if not any(f.severity == "error" or (f.severity == "warning" and f.line) for f in fs)]
    names = ", ".join(f"'{n}'" for n in ok)
    return claim("wslconfig.applied_as_written", "some" if ok else "none", _APPLIED, value=len(ok), unit="files",
                 names=names, n=len(ok), total=len(found), applied=ok)
