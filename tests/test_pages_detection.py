"""The detection chapter's numbers, sentences, tables and figures (reidlib.pages.detection, and the summaries
appended to reidlib.stages.detection) from small synthetic tables."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

from reidlib.core.config import DatasetConfig, DetectionConfig
from reidlib.pages import detection as page
from reidlib.stages import detection, synthetic


def _records() -> pd.DataFrame:
    """Four crops: two per camera, cameras 1 and 2, train and query."""
    return pd.DataFrame({"image": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"], "split": ["train", "train", "query", "query"],
                         "pid": [1, 1, 2, 2], "camid": [1, 2, 1, 2]})


def _dets(default: bool = False) -> pd.DataFrame:
    """Boxes on a (two: 0.9 and 0.3) and c (0.6); with `default`, the default box on b and d."""
    rows = [("a.jpg", 10, 5, 20, 15, 0.9, "detector"), ("a.jpg", 30, 5, 40, 15, 0.3, "detector"),
            ("c.jpg", 10, 5, 20, 15, 0.6, "detector")]
    if default:
        rows += [(im, 15, 4, 35, 23, 0.0, "default_box") for im in ("b.jpg", "d.jpg")]
    d = pd.DataFrame(rows, columns=["image", "x0", "y0", "x1", "y1", "score", "source"])
    return d.merge(_records(), on="image").assign(detector="centerface", threshold=0.15)[detection.DETECTION_COLUMNS]


def _view(default: bool = False, section: DetectionConfig | None = None) -> dict:
    section = section or DetectionConfig(detector="centerface", threshold=0.15)
    return detection.default_box_view(_records(), _dets(default), section, (64, 128))


def test_shares_count_crops_with_a_box_per_camera():
    rates = detection.detection_rates(_records(), _dets())
    assert detection.detected_share(rates) == pytest.approx(0.5)
    by_cam = detection.camera_rates(rates)
    assert by_cam.loc[1] == pytest.approx(1.0) and by_cam.loc[2] == pytest.approx(0.0)
    got = page.camera_numbers(rates)
    assert got == {"ex_low_cam": 2, "ex_low_rate": "0", "ex_high_rate": "100"}


def test_a_stricter_threshold_keeps_the_detector_boxes_at_or_above_it():
    kept = detection.kept_at(_dets(default=True), 0.5)
    assert sorted(kept.score) == [0.6, 0.9]
    assert page.strict_numbers(_dets(default=True)) == {"ex_boxes_05": 2, "ex_images_05": 2}


def test_a_default_box_is_not_a_detection():
    missed = detection.missed_records(_records(), _dets(default=True))
    assert list(missed.image) == ["b.jpg", "d.jpg"]


def test_the_view_shows_the_runs_own_default_boxes_when_written():
    view = _view(default=True, section=DetectionConfig(threshold=0.15, default_box=[15, 4, 35, 23]))
    assert view["written"] and view["box"] == (15, 4, 35, 23)
    assert view["crops"] == 2 and view["total"] == 4 and view["images"] == ["b.jpg", "d.jpg"]
    text = page.default_box_text(view, None, 0.5)
    assert text == ("This run wrote the default box (15, 4, 35, 23) on 2 of 4 crops, those where the detector "
                    "found nothing:")


def test_without_a_default_box_the_papers_is_stretched_onto_the_missed_crops():
    view = _view()
    assert not view["written"]
    assert view["box"] == pytest.approx((20.0, 4.0, 46.67, 23.0), abs=0.01)
    assert list(view["rows"].image) == ["b.jpg", "d.jpg"] and (view["rows"].source == "default_box").all()
    text = page.default_box_text(view, None, 0.5)
    assert text == ("This run sets no default box. Below, the paper's box stretched to these 64x128 crops, "
                    "(20, 4, 47, 23), on the 2 crops where nothing was found.")


def test_the_stretched_box_counts_the_true_faces_it_covers():
    view = _view()
    truth = pd.DataFrame({"image": ["b.jpg", "d.jpg", "a.jpg"], "x0": [20, 0, 20], "y0": [4, 60, 4],
                          "x1": [46.67, 10, 46.67], "y1": [23, 70, 23]})
    assert page.default_box_cover(view, truth, 0.5) == (1, 2)
    assert page.default_box_cover(view, None, 0.5) == (0, 0)
    assert page.default_box_cover(view, truth[truth.image == "a.jpg"], 0.5) == (0, 0)
    text = page.default_box_text(view, truth, 0.5)
    assert ": it would cover 1 of their 2 visible faces at IoU >= 0.5," in text and text.endswith(".")


def test_nothing_missed_says_so_in_text_and_figure(tmp_path):
    every = _dets().iloc[[0, 2]].assign(image=["b.jpg", "d.jpg"])
    view = detection.default_box_view(_records(), pd.concat([_dets(), every]), DetectionConfig(), (64, 128))
    assert view["crops"] == 0 and view["images"] == []
    assert page.default_box_text(view, None, 0.5).startswith("The detector found a face in every crop")
    shown = page.default_box_figure(tmp_path, view, None)
    assert isinstance(shown, str) and page.NOTHING_MISSED[1:] in shown  # a sentence, not a placeholder image


def _write_crops(root, names, size=(64, 128)):
    for name in names:
        cv2.imwrite(str(root / name), np.full((size[1], size[0], 3), 128, np.uint8))


def test_crop_size_and_galleries_read_the_crops(tmp_path):
    _write_crops(tmp_path, _records().image, (48, 128))
    assert detection.crop_size(tmp_path, _records()) == (48, 128)
    view = _view()
    fig = page.default_box_figure(tmp_path, view, None)
    assert sum(bool(ax.images) for ax in fig.axes) == 2
    plt.close(fig)
    fig = page.hits_figure(tmp_path, _records(), _dets(), None, n=1)
    assert sum(bool(ax.images) for ax in fig.axes) == 2 and sum(len(ax.patches) for ax in fig.axes) == 2
    plt.close(fig)


def test_identity_text_counts_the_twins_or_names_the_real_dataset(tmp_path):
    identities = pd.DataFrame({"pid": [1, 2, 3, 4], "clothing_source": [1, 1, 3, 3]})
    assert page.identity_text(identities, "synthetic").startswith("Of the 4 identities, 2 copy another")
    assert page.identity_text(None, "viper").startswith("This is a real dataset (viper)")
    assert page.read_identities(tmp_path) is None
    identities.to_csv(tmp_path / "identities.csv", index=False)
    assert len(page.read_identities(tmp_path)) == 4


def test_camera_text_compares_the_generated_camera_with_the_others(tmp_path):
    ds = DatasetConfig(cameras=3)
    cams = {c.camid: c for c in synthetic.make_cameras(ds, 7)}
    text = page.camera_text(ds, 7, 2)
    assert text.startswith(f"its optics blur sigma is {cams[2].blur:.2f} px and its gain {cams[2].gain:.2f}")
    assert f"{(cams[1].blur + cams[3].blur) / 2:.2f} px" in text
    assert page.camera_text(DatasetConfig(name="viper", root=str(tmp_path)), 7, 2) == \
        "the real dataset's cameras are described only by their images"


def test_no_face_share_from_ground_truth_or_unknown():
    truth = pd.DataFrame({"image": ["a.jpg", "a.jpg", "c.jpg"], "x0": 0, "y0": 0, "x1": 5, "y1": 5})
    assert page.no_face_numbers(truth, _records(), "synthetic") == {"ex_no_face": "50", "ex_max_share": "50"}
    assert page.no_face_numbers(None, _records(), "viper")["ex_no_face"] == "unknown (no ground truth)"


def test_tables_read_as_words_without_row_numbers():
    table = page.table_ii(_records(), "synthetic").data
    assert table.index.name == "dataset" and table.index[-1] == "synthetic"  # its own name, not Market1501's
    assert table.loc["Market1501", "released"] == "2015" and table.loc["synthetic", "released"] == "–"
    assert table.loc["synthetic", "train_images"] == "2"
    dets = page.detections_table(_dets()).data
    assert dets.index.name == "image" and list(dets.columns) == page.SHOWN_DETECTIONS[1:]
    assert dets.score.iloc[0] == "0.9"
    splits = page.split_table(_records()).data
    assert list(splits.index) == ["train", "query", "gallery"]
    assert splits.loc["train", "images"] == "2" and splits.loc["gallery", "images"] == "–"
