import numpy as np
import pandas as pd
import pytest
from scipy import stats

from reidlib.core import boxes
from reidlib.stages import recall


def test_iou_matrix_known_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(boxes.iou_matrix(a, b), [[1.0, 50 / 150, 0.0]])


def test_matching_is_one_to_one_and_thresholded():
    truth = pd.DataFrame({"image": ["a", "a", "b"], "x0": [0, 20, 0], "y0": [0, 0, 0],
                          "x1": [10, 30, 10], "y1": [10, 10, 10]})
    dets = pd.DataFrame({"image": ["a", "a", "b"], "x0": [0, 1, 6], "y0": [0, 0, 0],
                         "x1": [10, 11, 16], "y1": [10, 10, 10], "score": [0.9, 0.8, 0.9]})
    m = recall.match(truth, dets, 0.5)
    # two detections on the first face count once; the second face is missed; b's box is off (IoU 0.25)
    assert m.matched.tolist() == [True, False, False]
    res = recall.evaluate(truth, dets, 0.5)
    assert (res["recall"]["k"], res["recall"]["n"]) == (1, 3)
    assert (res["precision"]["k"], res["precision"]["n"]) == (1, 3)


def test_wilson_and_clopper_pearson_intervals():
    r = recall.rate(980, 1000)
    z = stats.norm.ppf(0.975)
    p, n = 0.98, 1000
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    np.testing.assert_allclose(r.wilson, (centre - half, centre + half), rtol=1e-6)
    np.testing.assert_allclose(r.clopper_pearson, (stats.beta.ppf(0.025, 980, 21), stats.beta.ppf(0.975, 981, 20)),
                               rtol=1e-6)
    assert r.wilson[0] < 0.98 < r.wilson[1]


def test_empty_rate_is_nan():
    assert np.isnan(recall.rate(0, 0).value)


def test_paper_estimates_have_intervals():
    t = recall.paper_estimates()
    cuhk = t.iloc[0]
    assert cuhk.recall == pytest.approx(0.98)
    assert cuhk.wilson_low < 0.98 < cuhk.wilson_high
    assert (t.cp_low < t.recall).all() and (t.recall < t.cp_high).all()


def test_inspection_sample_template_and_recall(tiny_root):
    from reidlib.stages import datasets

    recs = datasets.read_market(tiny_root)
    sample = recall.inspection_sample(recs, 30, seed=3)
    assert len(sample) == 30 and not sample.image.duplicated().any()
    share = recs.camid.value_counts(normalize=True)
    got = sample.camid.value_counts()
    assert all(abs(got[c] - 30 * share[c]) < 1 for c in share.index)  # stratified by camera
    assert sample.equals(recall.inspection_sample(recs, 30, seed=3))
    dets = pd.DataFrame({"image": [sample.image.iloc[0]] * 2, "x0": 0, "y0": 0, "x1": 1, "y1": 1})
    sheet = recall.inspection_template(sample, dets)
    assert list(sheet.columns) == recall.INSPECTION_COLUMNS and sheet.detections.iloc[0] == 2
    assert (sheet.face_visible == "").all()
    sheet["face_visible"] = ["y"] * 20 + ["n"] * 10
    sheet["detected_correctly"] = ["y"] * 18 + ["n"] * 2 + [""] * 10
    r = recall.recall_from_inspection(sheet)
    assert (r.k, r.n) == (18, 20) and r.wilson[0] < 0.9 < r.wilson[1]
    sheet.loc[4, "face_visible"] = "maybe"
    with pytest.raises(ValueError, match=r"face_visible.*\[5\]"):
        recall.recall_from_inspection(sheet)
