import json

import numpy as np
import pandas as pd
import pytest

from reidlib import datasets, detection, recall


def test_centerface_finds_the_generated_faces(tiny_root):
    recs = datasets.read_market(tiny_root)
    dets = detection.detect_dataset(tiny_root, recs, "centerface", 0.3, 2, progress=False)
    assert list(dets.columns) == detection.DETECTION_COLUMNS
    truth = pd.read_csv(tiny_root / "face_boxes.csv")
    res = recall.evaluate(truth, dets, 0.5)
    assert res["recall"]["value"] > 0.75
    assert res["precision"]["value"] > 0.9
    assert (dets.source == "detector").all() and (dets.threshold == 0.3).all()


def test_upscaling_finds_more_small_faces(tiny_root):
    recs = datasets.read_market(tiny_root)
    truth = pd.read_csv(tiny_root / "face_boxes.csv")
    r1 = recall.evaluate(truth, detection.detect_dataset(tiny_root, recs, "centerface", 0.3, 1, False))
    r2 = recall.evaluate(truth, detection.detect_dataset(tiny_root, recs, "centerface", 0.3, 2, False))
    assert r2["recall"]["k"] > r1["recall"]["k"]


def test_unknown_detector_is_named():
    with pytest.raises(ValueError, match="tinyfacez"):
        detection.make_detector("tinyfacez", 0.5, 1)


def test_corrupt_image_is_named(tmp_path, tiny_root):
    recs = datasets.read_market(tiny_root).head(1)
    bad = tmp_path / recs.image.iloc[0]
    bad.parent.mkdir(parents=True)
    bad.write_bytes((tiny_root / recs.image.iloc[0]).read_bytes()[:40])
    with pytest.raises(ValueError, match=bad.name):
        detection.detect_dataset(tmp_path, recs, progress=False)


def test_widerface_recall_matches_the_reference_point(shared_data):
    """CenterFace on 4 real WIDER FACE images: recall ~0.784 at IoU 0.5, threshold 0.3 (shared/data README)."""
    import cv2

    root = shared_data / "widerface_val4"
    gt = json.loads((root / "gt_from_official_mat.json").read_text())
    run = detection.make_detector("centerface", 0.3, 1)
    found, total = 0, 0
    for name, entry in gt.items():
        path = next(root.rglob(name.split("/")[-1]))
        img = cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)
        boxes = np.asarray(entry["boxes_xywh"], float).reshape(-1, 4)
        truth = pd.DataFrame({"image": name, "x0": boxes[:, 0], "y0": boxes[:, 1],
                              "x1": boxes[:, 0] + boxes[:, 2], "y1": boxes[:, 1] + boxes[:, 3]})
        d = run(img)
        dets = pd.DataFrame({"image": name, "x0": d[:, 0], "y0": d[:, 1], "x1": d[:, 2], "y1": d[:, 3],
                             "score": d[:, 4]})
        m = recall.match(truth, dets, 0.5)
        found += int(m.matched.sum())
        total += len(m)
    assert total == 328
    assert 0.74 < found / total < 0.83
