"""Self-check questions: the answers printed with letters, letter buttons and a Check button with feedback.

The answers are HTML with letters and the buttons pick a letter, so an executed copy (papermill)
reads well without a kernel too.
"""
from __future__ import annotations

from typing import Any, Sequence

from . import output
from .output import box as _box, escape as _e

LETTERS = "abcdefghijklmnopqrstuvwxyz"


def choice_list(choices: Sequence[str]) -> str:
    """The answers as an HTML list, each with its letter: (a), (b), ..."""
    items = "".join(f"<li>({LETTERS[i]}) {_e(c)}</li>" for i, c in enumerate(choices))
    return f"<ul style='list-style:none;margin:4px 0;padding-left:8px'>{items}</ul>"


def letter_buttons(w: Any, n: int) -> Any:
    """RadioButtons (a)..: the answers are printed above (readable without a kernel too); the buttons pick a letter."""
    return w.RadioButtons(options=[(f"({LETTERS[i]})", i) for i in range(n)], value=None,
                          layout=w.Layout(width="auto"))


def _validate_question(options: Sequence[str], answer_index: int) -> None:
    if isinstance(options, str) or len(options) < 2:
        raise ValueError("question(): options must be a list of at least two answers")
    if not isinstance(answer_index, int) or not 0 <= answer_index < len(options):
        raise ValueError(f"question(): answer_index must be 0..{len(options) - 1}, got {answer_index!r}")


def check_answer(options: Sequence[str], answer_index: int, chosen: str | int | None,
                 explanation: str) -> tuple[bool | None, str]:
    """The feedback for a chosen answer (an option's text or index): (correct, HTML).

    correct is None when nothing was chosen yet.
    """
    if chosen is None:
        return None, "Pick an answer first."
    index = chosen if isinstance(chosen, int) else list(options).index(chosen)
    if index == answer_index:
        return True, f"<span style='color:#2e7d32'><b>✔ Correct.</b></span> {_e(explanation)}"
    return False, (f"<span style='color:#c62828'><b>✘ Not quite</b></span>: ({LETTERS[index]}) "
                   f"“{_e(options[index])}” is not it. Look at the chart and the numbers again, and try another answer.")


def question_html(prompt: str, options: Sequence[str]) -> str:
    return _box("question", f"<b>Check yourself.</b> {_e(prompt)}{choice_list(options)}")


def question(prompt: str, options: Sequence[str], answer_index: int, explanation: str) -> None:
    """A self-check: the question and its answers as HTML, letter buttons and a Check button with
    immediate feedback (the explanation comes with a correct answer).

    Without ipywidgets the question is shown alone; the solution cell below has the answer.
    """
    _validate_question(options, answer_index)
    output.display_html(question_html(prompt, options))
    w = output.widgets()
    if w is None:
        print("(ipywidgets is not installed: the answer is in the collapsed solution cell below.)")
        return
    from IPython.display import HTML, display
    radio = letter_buttons(w, len(options))
    button = w.Button(description="Check", button_style="info")
    out = w.Output()

    def on_click(_button: Any) -> None:
        _correct, feedback = check_answer(options, answer_index, radio.value, explanation)
        out.clear_output()
        with out:
            display(HTML(feedback))

    button.on_click(on_click)
    display(w.VBox([radio, button, out]))
