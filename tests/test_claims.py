"""The claims core: verdicts at their thresholds' edges, sentence selection, the notebook payload."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from reclaimlab.present import claims
from reclaimlab.present.claims import THRESHOLDS, Claim, ClaimError


@pytest.mark.parametrize("ratio, verdict", [
    (THRESHOLDS["same_ratio"], "slower"),
    (THRESHOLDS["same_ratio"] * 0.999, "about_the_same"),
    (1.0, "about_the_same"),
    (1 / THRESHOLDS["same_ratio"] * 1.001, "about_the_same"),
    (1 / THRESHOLDS["same_ratio"], "faster"),
    (0.6, "faster"),
    (4.5, "slower"),
    (None, "not_measurable"),
    (math.nan, "not_measurable"),
    (0.0, "not_measurable"),
    (-1.0, "not_measurable"),
])
def test_ratio_verdict_edges(ratio, verdict):
    assert claims.ratio_verdict(ratio) == verdict


def test_ratio_verdict_custom_words():
    assert claims.ratio_verdict(2.0, more="bigger", less="smaller", same="same") == "bigger"
    assert claims.ratio_verdict(0.5, more="bigger", less="smaller", same="same") == "smaller"


@pytest.mark.parametrize("share, verdict", [
    (1.0, "nearly_all"),
    (THRESHOLDS["share_nearly_all"], "nearly_all"),
    (THRESHOLDS["share_nearly_all"] - 1e-9, "most"),
    (THRESHOLDS["share_most"], "most"),
    (THRESHOLDS["share_most"] - 1e-9, "some"),
    (THRESHOLDS["share_some"], "some"),
    (THRESHOLDS["share_some"] - 1e-9, "little"),
    (0.0, "little"),
    (None, "not_measurable"),
    (math.inf, "not_measurable"),
])
def test_share_verdict_edges(share, verdict):
    assert claims.share_verdict(share) == verdict


def test_negligible_edge():
    whole = 1000.0
    edge = THRESHOLDS["negligible_share"] * whole
    assert claims.negligible(edge * 0.99, whole)
    assert not claims.negligible(edge, whole)
    assert not claims.negligible(-edge * 1.5, whole)


def test_sentence_is_chosen_by_verdict_and_formatted():
    sentences = {"slower": "The cold touch was **{ratio:.1f}×** slower.", "about_the_same": "About as fast."}
    c = claims.claim("refault.cold_vs_hot", "slower", sentences, value=4.53, unit="ratio", ratio=4.53)
    assert c.sentence == "The cold touch was **4.5×** slower."
    assert c.to_json()["evidence"] == {"ratio": 4.53}


def test_missing_sentence_or_field_is_an_error():
    with pytest.raises(ClaimError, match="no sentence for verdict 'faster'"):
        claims.claim("k", "faster", {"slower": "x"})
    with pytest.raises(ClaimError, match="needs"):
        claims.claim("k", "slower", {"slower": "{missing}"})


def test_json_is_strict_json():
    c = Claim("k", "v", "s", value=np.float64("nan"), evidence={"n": np.int64(3), "x": np.float64(1.5),
                                                                 "l": [1, math.inf], "d": {"a": None}})
    text = json.dumps(c.to_json(), allow_nan=False)
    back = json.loads(text)
    assert back["value"] is None and back["evidence"] == {"n": 3, "x": 1.5, "l": [1, None], "d": {"a": None}}


def test_bundle_and_reading_back_from_a_notebook(tmp_path):
    c1 = Claim("a.one", "most", "Most came back.", value=0.7, unit="share")
    c2 = Claim("a.two", "slower", "It was slower.", value=2.0, unit="ratio")
    data = claims.bundle([c1, c2], intro="**What happened.**")
    assert data["text/markdown"] == "**What happened.**\n\nMost came back. It was slower."
    nb = {"cells": [{"cell_type": "markdown", "source": "x"},
                    {"cell_type": "code", "outputs": [{"output_type": "display_data", "data": data}]}]}
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps(nb))
    found = claims.from_notebook(path)
    assert [(f["key"], f["verdict"], f["cell"]) for f in found] == [("a.one", "most", 1), ("a.two", "slower", 1)]
    assert claims.by_key(found)["a.two"]["value"] == 2.0


def test_times():
    assert claims.times(4.53) == "4.5×"
    assert claims.times(12.4) == "12×"
