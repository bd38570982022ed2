"""The lab's guest report and `reclaimlab doctor` give every experiment the same verdict (the probe's one)."""
from __future__ import annotations

import importlib

import pytest

from reclaimlab.notebook import guest_report, lab
from reclaimlab.experiments import verdicts
from reclaimlab.probe import consent, guest

from conftest import TREES, tree_roots

doctor = importlib.import_module("reclaimlab.cli.doctor")  # the module: reclaimlab.cli.doctor is also the command

TREE_NAMES = sorted(p.name for p in TREES.iterdir() if (p / "proc").is_dir())


def _doctor_verdicts(info: guest.GuestInfo) -> dict[str, str]:
    """{experiment: verdict} read back from the doctor's printed rows."""
    words = {text: v for v, text in doctor.VERDICT_TEXT.items()}
    out = {}
    for line in doctor._experiment_rows(info)[1:]:
        label, value = line[2:2 + doctor.KEY_WIDTH].strip(), line[3 + doctor.KEY_WIDTH:].strip()
        # the value column is VALUE_WIDTH wide; the longest verdict word wins ("live, with consent" over "live")
        out[label.split(" (lab ")[0]] = next(v for text, v in sorted(words.items(), key=lambda kv: -len(kv[0]))
                                             if value.startswith(text))
    return out


@pytest.mark.parametrize("env", [{}, {consent.ALLOW_ENV: "1"}, {consent.ALLOW_ENV: "1", consent.SHARED_ENV: "1"}],
                         ids=["no-consent", "consent", "shared"])
@pytest.mark.parametrize("tree", TREE_NAMES)
def test_lab_and_doctor_agree_on_every_verdict(tree, env):
    info = verdicts.probe(tree_roots(tree), env=env)
    from_doctor = _doctor_verdicts(info)
    here = {v: k for k, v in guest_report.LIVE_HERE.items()}
    from_lab = {name: here[answer] for name, answer, _why in lab.live_rows(info)}
    assert from_lab == from_doctor
    assert from_lab == {name: guest.verdict(s, info.consent_given) for name, s in info.live_support.items()}


def test_an_older_probe_dict_is_judged_by_the_same_verdict():
    # Schema 1: "live" meant "consent aside"; the verdict now weighs the consent the dict records.
    old = {"schema_version": 1, "live_support": {
        "page-cache": {"live": True, "reason": "drop_caches writable", "needs_consent": True},
        "calloc-reclaim": {"live": True, "reason": "up to 20 GiB", "needs_consent": False},
        "compaction": (False, "not root")}}
    assert lab.live_rows({**old, "consent_given": False}) == [
        ("page-cache", "yes, with consent", "drop_caches writable"), ("calloc-reclaim", "yes", "up to 20 GiB"),
        ("compaction", "no", "not root")]
    assert lab.live_rows({**old, "consent_given": True})[0] == ("page-cache", "yes", "drop_caches writable")
