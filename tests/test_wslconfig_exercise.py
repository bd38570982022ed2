"""Lab 04's exercise: what WSL applies from a .wslconfig (wslconfig.settings) and the feedback on a
learner's file (notebook.exercises.wslconfig_feedback); the shipped solution passes its own checker."""
import pytest

from reclaimlab import paths
from reclaimlab.notebook import exercises as ex
from reclaimlab.wsl import wslconfig


def test_settings_are_what_wsl_applies():
    assert wslconfig.settings("[wsl2]\nmemory=8GB\nswap=4GB\nswap=0\n[experimental]\nautoMemoryReclaim=gradual\n") == {
        "wsl2.memory": "8GB", "wsl2.swap": "4GB", "experimental.autoMemoryReclaim": "gradual"}  # first duplicate wins
    # a bad header leaves its keys in no section; a misplaced key, a bad size and an obsolete key apply nothing
    assert wslconfig.settings("[wsl 2]\nmemory=8GB\n[wsl2]\nautoMemoryReclaim=gradual\nmemory=8gb\npageReporting=false\n") == {}
    assert wslconfig.settings(b"\xff\xfe" + "[WSL2]\r\nmemory=8GB # cap\r\n".encode("utf-16-le")) == {"wsl2.memory": "8GB"}


@pytest.mark.parametrize("text", [
    "[wsl2]\nmemory=8GB\n[experimental]\nautoMemoryReclaim=gradual\n",
    "[WSL2]\nmemory = 8G\n[Experimental]\nautomemoryreclaim = Gradual # steps\n",
    "[wsl2]\nmemory=8192MB\nprocessors=4\n[experimental]\nautoMemoryReclaim=gradual\n",
])
def test_files_that_meet_the_need(text):
    fb = ex.wslconfig_feedback(text)
    assert fb.correct is True and "WSL applies it" in fb.markdown


@pytest.mark.parametrize("text, says", [
    ("[wsl2]\nmemory=8gb\n[experimental]\nautoMemoryReclaim=gradual\n", "memory=8GB"),
    ("[wsl2]\nmemory=8GB\nautoMemoryReclaim=gradual\n", "belongs in [experimental]"),
    ("[wsl2]\nmemory=8000MB\n[experimental]\nautoMemoryReclaim=gradual\n", "7.81 GiB, not 8 GiB"),
    ("[wsl2]\nmemory=8GB\n[experimental]\nautoMemoryReclaim=dropCache\n", "whole cache back at once"),
    ("[wsl2]\nmemory=8GB\n", "no `autoMemoryReclaim=` line"),
    ("[wsl2]\nmemory=8GB\n[boot]\nsystemd=true\n[experimental]\nautoMemoryReclaim=gradual\n", "wsl.conf"),
    ("[wsl2]\nmemory=16GB\nmemory=8GB\n[experimental]\nautoMemoryReclaim=gradual\n", "16 GiB, not 8 GiB"),
])
def test_files_that_miss_say_why(text, says):
    fb = ex.wslconfig_feedback(text)
    assert fb.correct is False and says in fb.markdown and "Traceback" not in fb.markdown


@pytest.mark.parametrize("answer", [..., None, "", "   ", 8, b"[wsl2]"])
def test_no_answer_or_not_text(answer):
    fb = ex.wslconfig_feedback(answer)
    assert fb.correct is None and ("No answer yet" in fb.markdown or "not the text of a file" in fb.markdown)


def test_the_shipped_solution_passes(capsys):
    code = (paths.labs_dir() / "solutions" / "04_wslconfig.py").read_text()
    ns = {"exercises": ex}
    exec(code, ns)
    assert ex.wslconfig_feedback(ns["my_wslconfig"]).correct is True
    assert "WSL applies it" in capsys.readouterr().out


def test_lab04_states_outcomes_answers_them_and_checks_the_exercise():
    import re

    import nbformat
    nb = nbformat.read(paths.labs_dir() / "04_wsl_autoreclaim.ipynb", as_version=4)
    markdown = "\n".join(c.source for c in nb.cells if c.cell_type == "markdown")
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    outcomes = re.search(r"^## By the end you will be able to\n\n((?:\d\. .*\n(?:   .*\n)*)+)", markdown, re.M)
    keypoints = re.search(r"\*\*Keypoints\*\*.*?\n\n((?:\d\. .*\n(?:   .*\n)*)+)", markdown, re.S)
    assert outcomes and keypoints
    n = len(re.findall(r"^\d\. ", outcomes.group(1), re.M))
    assert 3 <= n <= 5 and len(re.findall(r"^\d\. ", keypoints.group(1), re.M)) == n
    assert "exercises.check_wslconfig(my_wslconfig)" in code and "my_wslconfig = ...\n" in code
    for load in re.findall(r"%load (solutions/\S+)", code):
        assert (paths.labs_dir() / load).exists()
