"""The drop's parts and the face verdict, from made-up scores: each part is the difference it claims to be,
and the verdict follows the tests (a drop, equivalence to none, or neither)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reidlib.analyses import decomposition
from reidlib.pages import evaluation as page


def scores(face_cost: float, reencode_cost: float, noise: float = 0.3, seeds: int = 6) -> pd.DataFrame:
    """Scores of `seeds` runs of one model on the originals and the test copies, parts as given."""
    rng = np.random.default_rng(0)
    rows = []
    for s in range(seeds):
        orig = 50 + rng.normal(0, 2)
        face = face_cost + rng.normal(0, noise)
        reenc = reencode_cost + rng.normal(0, noise)
        for copy, v in {"orig": orig, "reencode": orig - reenc, "face": orig - face,
                        "face_truth": orig - face - 0.1, "protocol": orig - reenc - face}.items():
            rows.append({"model": "HACNN", "seed": s, "copy": copy, "mAP": v, "rank1": v + 10})
    return pd.DataFrame(rows)


def test_the_parts_add_up_and_each_is_its_own_difference():
    d = decomposition.drops(scores(2.0, 1.0))
    w = d[d.metric == "mAP"].pivot_table(index="seed", columns="part", values="drop")
    assert np.allclose(w.protocol, w["re-encoding"] + w.face + w.interaction)
    assert np.allclose(w.interaction, 0, atol=1e-9)  # made additive above
    assert np.allclose(w.boxes, -0.1)  # true boxes cost 0.1 more than the detected ones
    assert w.face.mean() == pytest.approx(2.0, abs=0.5)


@pytest.mark.parametrize(("face_cost", "verdict"), [(3.0, "drop"), (0.0, "equivalent")])
def test_the_face_verdict_follows_the_tests(face_cost, verdict):
    s = decomposition.summary(decomposition.drops(scores(face_cost, 1.5, noise=0.2)), margins=(1.0,))
    v = decomposition.face_verdict(s, "mAP")
    assert v["verdict"] == verdict
    assert v["runs"] == 6 and v["reencoding"] == pytest.approx(1.5, abs=0.3)
    text = page.decomposition_text(v)
    assert ("costs" in text) and ("re-encoding the whole image (nothing anonymized) costs 1." in text)
    assert "need not add up" in text  # parts measured alone overlap: no shares that sum past the whole
    assert ("equivalent" in text) == (verdict == "equivalent")


def test_a_noisy_small_face_part_is_inconclusive_and_one_run_is_not_tested():
    s = decomposition.summary(decomposition.drops(scores(0.8, 0.0, noise=2.0, seeds=3)), margins=(0.5,))
    assert decomposition.face_verdict(s)["verdict"] == "inconclusive"
    assert "the one-sided t-test does not show a drop (p = " in page.decomposition_text(decomposition.face_verdict(s))
    one = decomposition.summary(decomposition.drops(scores(2.0, 1.0, seeds=1)))
    v = decomposition.face_verdict(one)
    assert v["verdict"] == "not tested" and v["why"]
    assert page.decomposition_text(v).startswith("The face part is not tested")


def test_the_floor_sentences_follow_the_results():
    res = pd.DataFrame({"model": ["A", "A", "B", "B"], "seed": [0, 1, 0, 0], "protocol": ["orig_orig"] * 3 + ["orig_anon"],
                        "mAP": [40.0, 42.0, 9.0, 5.0], "rank1": [60.0, 62.0, 10.0, 8.0], "rank5": [80.0, 82.0, 20.0, 15.0]})
    assert page.floor_ratios(res, 8.0) == "A 5.1x; B 1.1x"
    assert page.floor_text(res, 8.0).startswith("B stays near")
    assert page.protocol_numbers(res)["map_orig_orig"] == "41.0 ± 1.4"
    assert page.rank5_text(res) == "A 81.0 ± 1.4; B 20.0"
