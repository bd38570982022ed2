"""Lab 04's exercise: the learner writes a .wslconfig for a stated need; the checker
(`reclaimlab.wslconfig`) reads it as WSL's parser does and says whether WSL would apply what the need asks.

    wslconfig_exercise.check(my_wslconfig)                      # shows feedback (Markdown in a notebook)
    fb = wslconfig_exercise.feedback(my_wslconfig, "gradual_8gb")  # pure: Feedback(correct, markdown)

An answer left as `...` is no answer yet; anything that is not text gets a message naming the fix.
The solution is labs/solutions/04_wslconfig.py, loaded on request with `%load`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping, NamedTuple

from . import wslconfig

GIB = 1 << 30


class Feedback(NamedTuple):
    correct: bool | None      # None: no answer yet, or not text
    markdown: str


@dataclass(frozen=True)
class Need:
    ask: str                           # the need, in the learner's words
    memory_bytes: int | None           # [wsl2] memory, None: not asked
    auto_memory_reclaim: str | None    # [experimental] autoMemoryReclaim, None: not asked


NEEDS: Mapping[str, Need] = {
    "gradual_8gb": Need("give cached memory back to Windows gradually while the VM is idle, and never let the "
                        "VM use more than 8 GB", memory_bytes=8 * GIB, auto_memory_reclaim="gradual"),
}


def _size(n: int) -> str:
    return f"{n / GIB:g} GiB" if n % (GIB // 4) == 0 else f"{n / GIB:.2f} GiB"


def _findings_for(findings: list[wslconfig.Finding], name: str) -> list[wslconfig.Finding]:
    low = name.lower()
    return [f for f in findings if f.key and f.key.lower().split(".")[-1] == low and f.severity != "info"]


def _why_missing(findings: list[wslconfig.Finding], name: str, home: str) -> str:
    mine = _findings_for(findings, name)
    if mine:
        f = mine[0]
        return _line(f)
    return f"there is no `{name}=` line under `[{home}]`."


def _line(f: wslconfig.Finding) -> str:
    return f"line {f.line}: {f.message}." + (f" Fix: `{f.fix}`." if f.fix else "")


def feedback(answer: Any, need: str | Need = "gradual_8gb") -> Feedback:
    """Would WSL apply `answer` (the text of a .wslconfig) as `need` asks? With the reason for each miss."""
    want = NEEDS[need] if isinstance(need, str) else need
    if answer is Ellipsis or answer is None or (isinstance(answer, str) and not answer.strip()):
        return Feedback(None, "No answer yet: write your `.wslconfig` between the triple quotes (sections in "
                              "`[brackets]`, then `key=value` lines), then run the cell again.")
    if not isinstance(answer, str):
        return Feedback(None, f"Your answer is of type {type(answer).__name__}, not the text of a file: write it as a "
                              "string, e.g. `my_wslconfig = \"\"\"[wsl2]\\nmemory=...\"\"\"`.")
    findings = wslconfig.check_text(answer)
    applied = wslconfig.settings(answer)
    misses: list[str] = []
    got: list[str] = []
    if want.memory_bytes is not None:
        value = applied.get("wsl2.memory")
        size = wslconfig.parse_size_bytes(value) if value is not None else None
        if value is None:
            misses.append(f"**memory** is not applied, so WSL uses its default, half of Windows' memory: "
                          f"{_why_missing(findings, 'memory', 'wsl2')}")
        elif size != want.memory_bytes:
            misses.append(f"**memory={value}** is {_size(size or 0)}, not {_size(want.memory_bytes)}: WSL's units are "
                          "binary (`GB` = 1024³ bytes) and upper case; write `memory=8GB`.")
        else:
            got.append(f"`memory={value}` ({_size(size)})")
    if want.auto_memory_reclaim is not None:
        value = applied.get("experimental.autoMemoryReclaim")
        if value is None:
            misses.append("**autoMemoryReclaim** is not applied, so WSL uses today's default, `dropCache` (the whole "
                          f"cache at once): {_why_missing(findings, 'autoMemoryReclaim', 'experimental')}")
        elif value.lower() != want.auto_memory_reclaim.lower():
            misses.append(f"**autoMemoryReclaim={value}** is not what the need asks: `dropCache` gives the whole "
                          "cache back at once, `disabled` gives nothing back; `gradual` gives it back in steps "
                          "while the VM is idle.")
        else:
            got.append(f"`autoMemoryReclaim={value}` under `[experimental]`")
    others = [f for f in findings if f.severity == "error"
              and not _findings_for([f], "memory") and not _findings_for([f], "autoMemoryReclaim")]
    for f in others:
        text = _line(f)
        misses.append(("Also " + text) if misses else text[0].upper() + text[1:])
    if misses:
        return Feedback(False, "✘ **Not yet.**\n\n" + "\n".join(f"- {m}" for m in misses)
                        + ("\n\nWhat WSL does apply as asked: " + ", ".join(got) + "." if got else "")
                        + "\n\nFix it and run the cell again, or load the solution.")
    return Feedback(True, "✔ **WSL applies it:** " + ", ".join(got) + ". It takes effect after `wsl --shutdown` (or "
                          "once the VM has stopped, 60 s after its last process by default). Inside the VM, "
                          "`gradual` needs cgroup v2 `memory.reclaim`; without it WSL falls back to `dropCache`.")


def _say(markdown: str) -> None:
    """Markdown in a notebook, plain text elsewhere."""
    try:
        from IPython import get_ipython
        from IPython.display import Markdown, display
    except ImportError:
        print(markdown)
        return
    if get_ipython() is None:
        print(markdown)
        return
    display(Markdown(markdown))


def check(answer: Any, need: str | Need = "gradual_8gb") -> None:
    """Show feedback on the learner's .wslconfig for `need`, and the checker's own findings."""
    fb = feedback(answer, need)
    _say(fb.markdown)
    if isinstance(answer, str) and answer.strip():
        print(wslconfig.format_findings(wslconfig.check_text(answer), "your .wslconfig"))
