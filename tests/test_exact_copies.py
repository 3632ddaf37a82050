"""Anonymized copies that change only the face: exact JPEG block edits, the null technique, and the drop taken
apart; chapter 8's face-only intervention agrees with chapter 5's protocol when it writes and boxes as it does."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from reidlib.analyses import attribution, decomposition, per_query
from reidlib.core import config, images, jpeg, runfiles
from reidlib.pipeline import rundir
from reidlib.stages import anonymize, synthetic

TINY = {"train_ids": 4, "test_ids": 4, "cameras": 2, "images_per_camera": 2}


def crops(tmp_path: Path, n: int = 50) -> tuple[Path, pd.DataFrame]:
    """`n` generated crops with their true faces, some resized to sizes that are not multiples of 16."""
    cfg = config.DatasetConfig(train_ids=8, test_ids=8, cameras=3, images_per_camera=2, face_size=(10, 20),
                               face_blur=0.0, profile=0.0, occluded=0.0, turned_away=0.0)
    gen = synthetic.generate(tmp_path / "gen", cfg, 0)
    truth = pd.read_csv(gen / "face_boxes.csv").head(n)
    root = tmp_path / "src"
    rows = []
    for k, r in enumerate(truth.itertuples()):
        img = images.read_image(gen / r.image)
        box = np.array([r.x0, r.y0, r.x1, r.y1], float)
        if k % 3 == 1:  # 61x125, 50x97: partial MCUs at the right and bottom edges
            w, h = (61, 125) if k % 2 else (50, 97)
            box = box * [w / 64, h / 128, w / 64, h / 128]
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        rel = f"img/{k:03d}.jpg"
        (root / "img").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / rel), img, [cv2.IMWRITE_JPEG_QUALITY, 95])
        rows.append(dict(image=rel, x0=box[0], y0=box[1], x1=box[2], y1=box[3]))
    return root, pd.DataFrame(rows)


def test_an_exact_copy_changes_only_the_blocks_touching_a_face(tmp_path):
    root, dets = crops(tmp_path)
    out = tmp_path / "exact"
    anonymize.anonymize_dataset(root, dets, out, anonymize.Writer("zero", encode="exact"), progress=False)
    reencoded = tmp_path / "reencode"
    anonymize.anonymize_dataset(root, dets, reencoded, anonymize.Writer("zero", encode="reencode"), progress=False)
    outside_changed = []
    for r in dets.itertuples():
        raw = (root / r.image).read_bytes()
        orig, copy = images.decode_image(raw, r.image), images.read_image(out / r.image)
        box = np.array([[r.x0, r.y0, r.x1, r.y1]])
        clipped = np.array([anonymize.clip_box(box[0], orig.shape)], float)
        touched = jpeg.touched_mask(orig.shape, clipped, jpeg.sampling_of(raw))
        assert np.array_equal(orig[~touched], copy[~touched]), r.image  # exactly the original outside
        x0, y0, x1, y1 = clipped[0].astype(int)
        assert copy[y0 + 1:y1 - 1, x0 + 1:x1 - 1].mean() < 12 < orig[y0:y1, x0:x1].mean(), r.image  # zeroed
        whole = images.read_image(reencoded / r.image)
        outside_changed.append((np.abs(whole.astype(int) - orig)[~touched] > 0).mean())
    assert np.mean(outside_changed) > 0.2  # the tools' way changes a large share of the pixels outside


def test_the_null_technique_in_exact_mode_copies_the_bytes(tmp_path):
    root, dets = crops(tmp_path, 12)
    m = anonymize.anonymize_dataset(root, dets, tmp_path / "none", anonymize.Writer("none", encode="exact"),
                                    progress=False)
    assert all((root / rel).read_bytes() == (tmp_path / "none" / rel).read_bytes() for rel in m["files"])
    again = anonymize.anonymize_dataset(root, dets, tmp_path / "re", anonymize.Writer("none", encode="reencode"),
                                        progress=False)
    assert sum((root / rel).read_bytes() != (tmp_path / "re" / rel).read_bytes() for rel in again["files"]) >= 10


def test_a_png_source_is_exact_outside_the_box(tmp_path):
    root, dets = crops(tmp_path, 6)
    png = tmp_path / "png"
    rows = []
    for r in dets.itertuples():
        rel = r.image.replace(".jpg", ".png")
        (png / "img").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(png / rel), images.read_image(root / r.image))
        rows.append(r._replace(image=rel)._asdict())
    d = pd.DataFrame(rows).drop(columns="Index")
    anonymize.anonymize_dataset(png, d, tmp_path / "out", anonymize.Writer("blur", {"width_ratio": 0.25}),
                                progress=False)
    for r in d.itertuples():
        a, b = images.read_image(png / r.image), images.read_image(tmp_path / "out" / r.image)
        x0, y0, x1, y1 = anonymize.clip_box((r.x0, r.y0, r.x1, r.y1), a.shape)
        outside = np.ones(a.shape[:2], bool)
        outside[y0:y1, x0:x1] = False
        assert np.array_equal(a[outside], b[outside]) and not np.array_equal(a, b)


def tiny(tmp_path: Path, **over) -> config.Config:
    base = {"run_dir": str(tmp_path / "run"), "dataset": dict(TINY), "models": {},
            "anonymization": {"processes": 1, "audit": False, "technique": "zero"},
            "training": {"model": "hacnn", "epochs": 2, "batch_size": 8, "seeds": [0]},
            "attribution": {"techniques": ["zero"], "control_shares": [0.0]}}
    return config.from_dict(config.merge(base, over))


def test_the_face_only_intervention_and_the_protocol_give_the_same_change(tmp_path):
    """Chapter 8 (interventions on the run's detected boxes, written as the copy is) and chapter 5 (orig -> anon)."""
    cfg = tiny(tmp_path)
    protocol = pd.read_csv(rundir.stage_evaluate_model(cfg, progress=False)).set_index("protocol").mAP
    shares, inter, _, _ = attribution.analyse_run(cfg, "default", ["hacnn"], variants=("orig",))
    both = inter[(inter.technique == "zero") & (inter.placement == "both")]
    change = 100 * (both.ap_after.mean() - both.ap.mean())
    assert 100 * both.ap.mean() == pytest.approx(protocol["orig_orig"], abs=1e-3)
    assert change == pytest.approx(protocol["orig_anon"] - protocol["orig_orig"], abs=1e-3)


def test_the_per_query_table_reads_stage_5s_own_per_query_ap(tmp_path):
    """Each query's AP is written by stage 5 from its own distances: the per-query means are its mAP."""
    cfg = tiny(tmp_path)
    protocol = pd.read_csv(rundir.stage_evaluate_model(cfg, progress=False)).set_index("protocol").mAP
    queries = pd.read_csv(runfiles.model_query_ap_path(cfg))
    assert set(queries.protocol) == set(protocol.index)
    assert queries.groupby("protocol").ap.mean().to_dict() == pytest.approx(protocol.to_dict(), abs=1e-3)
    table = pd.read_csv(per_query.stage_per_query(cfg))
    assert table.ap_orig.mean() == pytest.approx(protocol["orig_orig"], abs=1e-3)
    assert table.ap_anon.mean() == pytest.approx(protocol["orig_anon"], abs=1e-3)
    assert np.allclose(table.delta_ap, table.ap_anon - table.ap_orig, equal_nan=True)


def test_the_drop_is_taken_apart_into_re_encoding_face_and_boxes(tmp_path):
    cfg = tiny(tmp_path)
    tables = decomposition.load(cfg)
    scores, summary = tables["scores"], tables["summary"]
    assert set(scores["copy"]) == {"orig", "protocol", "reencode", "face", "face_truth"}
    assert list(summary.part.unique()) == ["protocol", "re-encoding", "face", "boxes", "interaction"]
    d = tables["drops"].pivot_table(index=["metric", "model", "seed"], columns="part", values="drop")
    assert np.allclose(d.protocol, d["re-encoding"] + d.face + d.interaction)
    # the face copy is the run's own (written exactly on the same boxes): stage 5's orig_anon, not tested again
    assert decomposition.own_copy(cfg) == "face"
    assert not (runfiles.decomposition_dir(cfg) / "copies" / "face").exists()
    protocol = pd.read_csv(runfiles.model_results_path(cfg)).set_index("protocol")
    face_row = scores[scores["copy"] == "face"].iloc[0]
    assert (face_row.mAP, face_row.rank1) == (protocol.mAP["orig_anon"], protocol.rank1["orig_anon"])
    face = decomposition._copy(cfg, "face", tmp_path / "face", progress=False)  # written anew: the same bytes
    stage3 = runfiles.anon_root(cfg)
    m = json.loads((face / "manifest.json").read_text())
    assert m["files"] and all((face / rel).read_bytes() == (stage3 / rel).read_bytes() for rel in m["files"])
