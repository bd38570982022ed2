"""Predictions: a prompt before a run, then `echo()` sets the learner's answer against the run's claim."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

from ..present import claims
from . import output
from .output import box as _box, escape as _e
from .questions import LETTERS, choice_list, letter_buttons


def predict_html(prompt: str, choices: Sequence[str] | None = None) -> str:
    inner = f"<b>Predict first.</b> {_e(prompt)}"
    if choices:
        inner += choice_list(choices)
    inner += ("<i>Pick or write your answer before you run the next cell; it is not graded, and after the run "
              "the lab sets it against what the run shows.</i>")
    return _box("predict", inner)


def predict(prompt: str, choices: Sequence[str] | None = None) -> "Prediction":
    """A prediction prompt before a run: the prompt as HTML, then letter buttons (with choices) or a text box.

    Returns a `Prediction` to hand to `echo()` after the run (`p = lab.predict(...)`). As a cell's last
    expression it shows nothing more: the prompt is already on the page.
    """
    output.display_html(predict_html(prompt, choices))
    handle = Prediction(prompt, tuple(choices or ()))
    w = output.widgets()
    if w is None:
        return handle
    from IPython.display import display
    if choices:
        handle.widget = letter_buttons(w, len(choices))
    else:
        handle.widget = w.Textarea(placeholder="My prediction…", layout=w.Layout(width="90%", height="4em"))
    display(handle.widget)
    return handle


@dataclass(eq=False)
class Prediction:
    """What `predict()` asked and what the learner picked: the widget's value, or `choose()`'s.

    `value` is the chosen option's index (choices) or the text written (no choices); None if nothing
    was chosen (no widgets, an executed copy, or the learner skipped it).
    """

    prompt: str
    choices: tuple[str, ...] = ()
    widget: Any = None
    chosen: int | str | None = None

    def choose(self, answer: int | str) -> "Prediction":
        """Record a prediction in code: an option's letter ("b"), its index (1), or, without choices, text."""
        self.chosen = _option_index(answer, self.choices) if self.choices else str(answer)
        if self.widget is not None:
            self.widget.value = self.chosen
        return self

    @property
    def value(self) -> int | str | None:
        if self.widget is not None and self.widget.value not in (None, ""):
            return self.widget.value
        return self.chosen

    def _ipython_display_(self) -> None:
        """Nothing: predict() has shown the prompt and its buttons already."""


def _option_index(answer: Any, choices: Sequence[str]) -> int:
    """An option's index from its letter ("b", "(b)") or index; ValueError naming the valid answers."""
    n = len(choices)
    valid = ", ".join(f"'{LETTERS[i]}'" for i in range(n))
    if isinstance(answer, bool):
        raise ValueError(f"prediction {answer!r} is not an option; use a letter ({valid}) or an index 0..{n - 1}")
    if isinstance(answer, int):
        if 0 <= answer < n:
            return answer
        raise ValueError(f"prediction {answer} is not an option; use an index 0..{n - 1} or a letter ({valid})")
    if isinstance(answer, str):
        letter = answer.strip().strip("()").lower()
        if len(letter) == 1 and letter in LETTERS[:n]:
            return LETTERS.index(letter)
    raise ValueError(f"prediction {answer!r} is not an option; use a letter ({valid}) or an index 0..{n - 1}")


def _supported(claim: Any, right: Mapping[str, int] | Callable[[Any], int | None]) -> int | None:
    """The option the run supports: right[verdict] (or right(claim)); None where the run does not decide."""
    index = right(claim) if callable(right) else right.get(claim.verdict)
    return index


def echo_bundle(prediction: "Prediction | int | str | None", claim: Any,
                right: Mapping[str, int] | Callable[[Any], int | None],
                why_wrong: Mapping[int, str] | None = None, choices: Sequence[str] | None = None) -> dict[str, Any]:
    """The display bundle of `echo()` (Markdown and the claim as JSON), for tests and other front ends."""
    free_text = isinstance(prediction, Prediction) and not prediction.choices
    if isinstance(prediction, Prediction):
        choices = prediction.choices if choices is None else choices
        chosen = prediction.value
    else:
        chosen = prediction
    choices = tuple(choices or ())
    if choices and chosen not in (None, "") and not free_text:
        chosen = _option_index(chosen, choices)
    supported = _supported(claim, right)
    if supported is not None and not (isinstance(supported, int) and 0 <= supported < len(choices)):
        raise ValueError(f"echo(): right maps verdict {claim.verdict!r} to {supported!r}, not an option "
                         f"(0..{len(choices) - 1})")
    why_wrong = dict(why_wrong or {})
    bad = [k for k in why_wrong if not (isinstance(k, int) and 0 <= k < len(choices))]
    if bad:
        raise ValueError(f"echo(): why_wrong has keys {bad} that are not options (0..{len(choices) - 1})")

    def option(i: int) -> str:
        return f"({LETTERS[i]}) “{choices[i]}”"

    if chosen is None or chosen == "":
        intro = "**No prediction was picked above.** The run shows:"
    elif isinstance(chosen, int):
        intro = f"**You predicted {option(chosen)}.** The run shows:"
    else:
        intro = f"**You predicted:** “{chosen}”. The run shows:"
    if supported is None:
        outro = ("**This run does not decide between the options** (its verdict is "
                 f"`{claim.verdict}`): the sentence above says why. Compare with the recording, or run it again.")
        correct = None
    else:
        head = ("✔ **That is what this run supports.**" if chosen == supported else
                f"✘ **The run supports {option(supported)}**, not {option(chosen)}." if isinstance(chosen, int) else
                f"**The run supports {option(supported)}.**")
        correct = (chosen == supported) if isinstance(chosen, int) else None
        wrong = [i for i in range(len(choices)) if i != supported and i in why_wrong]
        if isinstance(chosen, int) and chosen in wrong:  # the learner's own option first
            wrong.remove(chosen)
            wrong.insert(0, chosen)
        lines = [f"- What {option(i)} gets wrong: {why_wrong[i]}" for i in wrong]
        outro = "\n".join([head] + ([""] + lines if lines else []))
        if chosen is None or chosen == "":
            intro = f"**No prediction was picked above.** **The run supports {option(supported)}**:"
            outro = "\n".join(lines) + ("\n\n" if lines else "") + "_Pick an answer above and run this cell again to compare._"
    data = claims.bundle(claim, intro=intro, outro=outro)
    data[claims.MIME]["echo"] = {"key": claim.key, "verdict": claim.verdict,
                                 "predicted": chosen if chosen != "" else None, "supported": supported,
                                 "correct": correct}
    return data


def echo(prediction: "Prediction | int | str | None", claim: Any,
         right: Mapping[str, int] | Callable[[Any], int | None],
         why_wrong: Mapping[int, str] | None = None, choices: Sequence[str] | None = None) -> None:
    """Close the loop after a run: the learner's prediction against what the claim's verdict supports.

    prediction: what `predict()` returned (or a letter/index, or None).
    claim: the `reclaimlab.present.claims.Claim` that judges the run; its sentence is shown.
    right: verdict -> the index of the option that verdict supports (or a function of the claim); a
        verdict it does not map (e.g. "not_measurable") decides nothing, and the lab says so.
    why_wrong: option index -> what that option gets wrong, as documented (true whatever the run);
        shown for every option the run does not support, the learner's first.
    Without a choice (no widgets, an executed copy) it states the answer. The output carries the claim
    as JSON (like `claims.show`), with the echo's own verdict beside it.
    """
    claims.display_bundle(echo_bundle(prediction, claim, right, why_wrong, choices))
