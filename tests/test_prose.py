"""The book's count-dependent sentences read right for 0, 1 and many."""
import pandas as pd
import pytest

from reidlib.book import prose
from reidlib.core import config


@pytest.mark.parametrize("n, text", [(0, "no faces"), (1, "1 face"), (3, "3 faces")])
def test_count(n, text):
    assert prose.count(n, "face") == text


@pytest.mark.parametrize("points, text", [(1.24, "lowers mAP by 1.2 points"), (-3.92, "raises mAP by 3.9 points"),
                                          (0.04, "leaves mAP unchanged"), (-0.01, "leaves mAP unchanged")])
def test_lowers_names_the_direction(points, text):
    assert prose.lowers(points, "mAP") == text


def test_drops_names_the_direction():
    assert prose.drops(0.234, 2) == "drops by 0.23 points" and prose.drops(-0.234, 2) == "rises by 0.23 points"
    assert prose.drops(0.004, 2) == "is unchanged" and prose.drops(-1.25) == "rises by 1.2 points"


def test_listing():
    assert [prose.listing(x) for x in (["A"], ["A", "B"], ["A", "B", "C"])] == ["A", "A and B", "A, B and C"]


def recall_result(k, n, dets):
    rate = lambda k, n: {"k": k, "n": n, "value": k / n if n else float("nan"), "wilson": [0.1, 0.9]}  # noqa: E731
    return {"recall": rate(k, n), "precision": rate(min(k, dets), dets), "iou_threshold": 0.5}


@pytest.mark.parametrize("k, n, dets, expect", [
    (0, 0, 0, "no visible true faces"),
    (0, 1, 0, "Of 1 true face, none was found"),
    (1, 1, 1, "Of 1 true face, all of them were found"),
    (5, 7, 6, "Of 7 true faces, 5 were found"),
])
def test_recall_sentence(k, n, dets, expect):
    text = prose.recall_sentence(recall_result(k, n, dets))
    assert expect in text and "0 true" not in text and "1 true faces" not in text


@pytest.mark.parametrize("crops, expect", [(0, "sample is empty"), (1, "1 crop, numbered"), (40, "40 crops")])
def test_inspection_sentence(crops, expect):
    assert expect in prose.inspection_sentence(crops, 0.5)


@pytest.mark.parametrize("floor, expect", [([], "Every model"), (["BoT"], "BoT stays"),
                                           (["BoT", "HACNN"], "BoT and HACNN stay")])
def test_floor_sentence(floor, expect):
    assert prose.floor_sentence(floor).startswith(expect)


@pytest.mark.parametrize("epochs, expect", [(1, "1 epoch per"), (6, "6 epochs per")])
def test_training_summary(epochs, expect):
    logs = pd.DataFrame({"model": "hacnn", "variant": ["orig", "anon"], "accuracy": [0.5, 0.25],
                         "images_per_s": [10.0, 12.0]})
    text = prose.training_summary(logs, {"hacnn": config.TrainingConfig(epochs=epochs)})
    assert expect in text and "50.0% (original) and 25.0% (anonymized)" in text
    assert text.startswith("- **HACNN**") and "at 160x64 pixels" in text  # its display name, its fixed input size
    assert prose.training_summary(logs.iloc[:0], {}) == "No model was trained in this run."


def test_training_summary_gives_the_seed_spread_of_the_last_epoch():
    logs = pd.DataFrame({"model": "hacnn", "variant": ["orig"] * 4, "seed": [0, 0, 1, 1], "epoch": [1, 2, 1, 2],
                         "accuracy": [0.1, 0.4, 0.1, 0.6], "images_per_s": 10.0})
    text = prose.training_summary(logs, {"hacnn": config.TrainingConfig(epochs=2)})
    assert "(2 seeds)" in text and "50.0% ± 14.1 (original)" in text and "mean ± SD over seeds" in text


def test_camera_sentence_names_a_model_that_ranks_by_camera():
    text = prose.camera_sentence({"HACNN": (40.0, 26.0), "BoT": (79.0, 26.0)})
    assert "HACNN 40%, BoT 79%" in text and "about 26%" in text
    assert "BoT ranks by camera" in text and "HACNN ranks" not in text
    assert "ranks by camera" not in prose.camera_sentence({"HACNN": (30.0, 26.0)})
    assert prose.camera_sentence({}) == ""


def test_twin_sentence_says_whether_the_twins_were_learned():
    confused = pd.DataFrame({"face_identity_share": [0.0, 1.0, 1.0], "seed": [0, 0, 1],
                             "accuracy": [90.0, 52.0, 54.0], "twin_ceiling": [100.0, 50.0, 50.0]})
    text = prose.twin_sentence(confused, 20.0)
    assert "At share 1 the last epoch's training accuracy is 53.0% (mean over 2 seeds)" in text
    assert "against 50% for" in text and "never learned the faces" in text
    learned = confused.assign(accuracy=[90.0, 95.0, 97.0])
    assert "tells twins apart" in prose.twin_sentence(learned, 20.0)
    two = pd.concat([confused.assign(model="HACNN"), learned.assign(model="BoT")])
    text = prose.twin_sentence(two, 20.0)
    assert "HACNN's last epoch's training accuracy is 53.0%" in text and "BoT's last epoch's training accuracy is 96.0%" in text
    assert "never learned the faces" in text.split("BoT's")[0] and "tells twins apart" in text.split("BoT's")[1]
    short = prose.twin_sentence(confused.assign(accuracy=[90.0, 60.0, 63.0]), 20.0)  # above the ceiling, short of 20
    assert "tells some twins apart, 11.5 points above that ceiling, short of the 20" in short
    assert "must use their faces" not in short and "never learned" not in short
    assert "must use their faces" in prose.twin_sentence(confused.assign(accuracy=[90.0, 60.0, 63.0]), 10.0)


@pytest.mark.parametrize("n, expect", [(0, "missed no true face"), (1, "This face stays"),
                                       (5, "Each of these 5 faces stays")])
def test_missed_sentence_agrees_with_its_count(n, expect):
    assert expect in prose.missed_sentence(n)


def test_size_sentence_does_not_claim_a_failure_the_data_do_not_show():
    flat = pd.DataFrame({"face_width": ["8-11", "12-15"], "recall": [1.0, 1.0], "faces": [10, 20]})
    assert "finds faces of every width, 30 of them" in prose.size_sentence(flat)
    dip = flat.assign(recall=[0.6, 1.0])
    assert "lowest, 60%, at width 8-11 (10 faces)" in prose.size_sentence(dip)
    assert "no recall by face size" in prose.size_sentence(pd.DataFrame())


def test_condition_sentence_pairs_each_hard_condition_with_its_easy_one():
    rows = pd.DataFrame({"condition": ["frontal", "profile", "uncovered", "partly covered"],
                         "recall": [0.9, 0.5, 0.95, 1.0], "faces": [40, 1, 30, 11]})
    s = prose.condition_sentence(rows)
    assert "50% of 1 profile face against 90% of the frontal ones" in s
    assert "100% of 11 partly covered faces against 95% of the uncovered ones" in s
    assert prose.condition_sentence(pd.DataFrame()) == ""


def test_a_count_and_its_noun_agree():
    assert [prose.plural(n, "seed") for n in (0, 1, 3)] == ["0 seeds", "1 seed", "3 seeds"]
    assert prose.plural(2, "query", "queries") == "2 queries" and prose.plural(1, "query", "queries") == "1 query"

