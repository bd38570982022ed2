"""lab.predict's handle and lab.echo: the learner's prediction against the claim's verdict."""
from __future__ import annotations

import pytest

from reclaimlab.present import claims
from reclaimlab.notebook import lab, output

CHOICES = ["By about 3 GB", "By almost nothing", "By about half"]
RIGHT = {"next_to_nothing": 1, "committed": 0}
WHY = {0: "a fresh mapping already reads as zeros", 2: "the kernel does not pre-allocate"}
SENTENCES = {"next_to_nothing": "calloc committed {value} KiB.", "committed": "calloc committed {value} KiB at once.",
             "not_measurable": "No figure of the allocator's own memory."}


def _claim(verdict="next_to_nothing", value=256):
    return claims.claim("calloc_reclaim.calloc", verdict, SENTENCES, value=value if verdict != "not_measurable" else None)


def _echo(prediction, verdict="next_to_nothing"):
    data = lab.echo_bundle(prediction, _claim(verdict), RIGHT, WHY, choices=CHOICES)
    return data["text/markdown"], data[claims.MIME]


def test_right_prediction_says_so_with_the_runs_sentence():
    text, payload = _echo("b")
    assert "You predicted (b) “By almost nothing”" in text and "✔" in text
    assert "calloc committed 256 KiB." in text
    assert payload["echo"] == {"key": "calloc_reclaim.calloc", "verdict": "next_to_nothing", "predicted": 1,
                               "supported": 1, "correct": True}
    assert payload["claims"][0]["verdict"] == "next_to_nothing"      # the claim travels as JSON, like claims.show
    assert text.index("a fresh mapping") < text.index("does not pre-allocate")  # every wrong option explained


def test_wrong_prediction_names_the_supported_option_and_what_the_pick_gets_wrong_first():
    text, payload = _echo(2)
    assert "You predicted (c)" in text and "✘ **The run supports (b) “By almost nothing”**" in text
    assert text.index("What (c)") < text.index("What (a)")
    assert payload["echo"]["correct"] is False and payload["echo"]["supported"] == 1


def test_the_verdict_chooses_the_answer_not_the_lab():
    text, payload = _echo("b", verdict="committed")
    assert "✘ **The run supports (a)" in text and payload["echo"]["correct"] is False
    assert "What (a)" not in text       # never says what the supported option gets wrong


def test_no_choice_states_the_answer():
    text, payload = _echo(None)
    assert text.startswith("**No prediction was picked above.**")
    assert "**The run supports (b) “By almost nothing”**" in text and "run this cell again" in text
    assert payload["echo"]["predicted"] is None and payload["echo"]["correct"] is None


def test_a_verdict_that_decides_nothing_says_so():
    text, payload = _echo("a", verdict="not_measurable")
    assert "does not decide between the options" in text and "No figure" in text
    assert payload["echo"]["supported"] is None and payload["echo"]["correct"] is None
    assert "✔" not in text and "✘" not in text


def test_handle_without_widgets_takes_a_choice_in_code(monkeypatch):
    monkeypatch.setattr(output, "widgets", lambda: None)
    monkeypatch.setattr(output, "display_html", lambda text: None)
    p = lab.predict("How much will AnonPages rise?", CHOICES)
    assert p.value is None and p.widget is None
    text = lab.echo_bundle(p, _claim(), RIGHT, WHY)["text/markdown"]
    assert "The run supports (b)" in text
    p.choose("(c)")
    assert p.value == 2
    assert "You predicted (c)" in lab.echo_bundle(p, _claim(), RIGHT, WHY)["text/markdown"]


def test_handle_reads_the_widget(monkeypatch):
    pytest.importorskip("ipywidgets")
    import IPython.display
    monkeypatch.setattr(output, "display_html", lambda text: None)
    monkeypatch.setattr(IPython.display, "display", lambda *objs, **kw: None)
    p = lab.predict("How much?", CHOICES)
    assert p.widget is not None and p.value is None
    p.widget.value = 1
    assert "✔" in lab.echo_bundle(p, _claim(), RIGHT, WHY)["text/markdown"]


def test_free_text_prediction_is_quoted():
    p = lab.Prediction("What happens?").choose("it falls in steps")
    text = lab.echo_bundle(p, _claim(), {"next_to_nothing": 1}, choices=CHOICES)["text/markdown"]
    assert "You predicted:** “it falls in steps”" in text and "The run supports (b)" in text


@pytest.mark.parametrize("answer", ["d", 3, -1, True, "bb", 1.0])
def test_bad_predictions_name_the_valid_answers(answer):
    with pytest.raises(ValueError, match=r"'a', 'b', 'c'"):
        lab.Prediction("?", tuple(CHOICES)).choose(answer)


def test_bad_mappings_are_refused():
    with pytest.raises(ValueError, match="not an option"):
        lab.echo_bundle("a", _claim(), {"next_to_nothing": 5}, choices=CHOICES)
    with pytest.raises(ValueError, match="why_wrong"):
        lab.echo_bundle("a", _claim(), RIGHT, {7: "x"}, choices=CHOICES)


def test_echo_prints_outside_a_kernel(capsys):
    lab.echo("b", _claim(), RIGHT, WHY, choices=CHOICES)
    assert "You predicted (b)" in capsys.readouterr().out


def test_handle_shows_nothing_as_a_cells_last_expression():
    assert lab.Prediction("?")._ipython_display_() is None
