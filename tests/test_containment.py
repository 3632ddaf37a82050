"""Nothing leaks and nothing is quietly less than asked: links out of the dataset root, oversized crops, the swap
copy, the identity key, stale inputs, configs asking for more than can be done, bad model files, users' files
in stage folders."""
from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import torch

from reidlib.core import config, images, runfiles
from reidlib.core.boxes import iou_matrix
from reidlib.models import checkpoints, zoo
from reidlib.models import faces as dlib_faces
from reidlib.pipeline import rundir, table
from reidlib.stages import anonymize, datasets, detection

PROJECT = Path(__file__).resolve().parent.parent
TINY = {"train_ids": 4, "test_ids": 4, "cameras": 2, "images_per_camera": 2}


def tiny(tmp_path: Path, run: str = "run", **over) -> config.Config:
    base = {"run_dir": str(tmp_path / run), "dataset": dict(TINY), "anonymization": {"processes": 1, "audit": False},
            "training": {"model": "hacnn", "epochs": 1, "batch_size": 8, "seeds": [0]}, "models": {}}
    return config.from_dict(config.merge(base, over))


def market_root(tmp_path: Path) -> Path:
    """The generated set as a user's Market-1501 folder (images only)."""
    gen = rundir.stage_generate(tiny(tmp_path, "gen"))
    root = tmp_path / "market"
    for sub in datasets.MARKET_DIRS.values():
        shutil.copytree(gen / sub, root / sub)
    return root


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reidlib", *args], cwd=PROJECT, capture_output=True, text=True)


# ----------------------------------------------------------------- 1: links leading out of the root

def test_a_link_to_an_outside_file_is_refused_by_name_or_left_out_and_listed(tmp_path):
    root = market_root(tmp_path)
    secret = tmp_path / "secret.txt"
    secret.write_text("SECRET")
    (root / "readme.txt").symlink_to(secret)
    cfg = tiny(tmp_path, dataset={"name": "market1501", "root": str(root)})
    with pytest.raises(images.OutsideRootError, match="readme.txt.*outside the dataset root"):
        rundir.stage_anonymize(cfg, progress=False)
    skip = tiny(tmp_path, "skip", dataset={"name": "market1501", "root": str(root), "outside_links": "skip"})
    anon = rundir.stage_anonymize(skip, progress=False)
    manifest = json.loads((anon / "manifest.json").read_text())
    assert not (anon / "readme.txt").exists() and manifest["outside_links"] == ["readme.txt"]
    assert not any(b"SECRET" in p.read_bytes() for p in anon.rglob("*") if p.is_file())


def test_a_linked_image_or_folder_outside_the_root_is_never_read(tmp_path):
    root = market_root(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    donor = sorted((root / "query").glob("*.jpg"))[0]
    outside_img = elsewhere / f"{donor.name[:4]}_c1s1_999999_01.jpg"  # an identity the gallery has
    shutil.copy2(donor, outside_img)
    (root / "query" / outside_img.name).symlink_to(outside_img)
    (elsewhere / "private_names").mkdir()
    (elsewhere / "private_names" / "alice_smith.jpg").write_bytes(outside_img.read_bytes())
    (root / "extra").symlink_to(elsewhere / "private_names")
    cfg = tiny(tmp_path, dataset={"name": "market1501", "root": str(root)})
    with pytest.raises(images.OutsideRootError, match=outside_img.name):
        rundir.records(cfg)
    skip = tiny(tmp_path, "skip", dataset={"name": "market1501", "root": str(root), "outside_links": "skip"})
    assert f"query/{outside_img.name}" not in set(rundir.records(skip).image)
    manifest = json.loads((rundir.stage_anonymize(skip, progress=False) / "manifest.json").read_text())
    text = json.dumps(manifest)
    assert "alice_smith" not in text and outside_img.name not in json.dumps(manifest["files"])
    assert set(manifest["outside_links"]) == {"extra", f"query/{outside_img.name}"}


def test_the_lister_follows_inside_links_and_refuses_outside_ones(tmp_path):
    root = tmp_path / "root"
    (root / "a").mkdir(parents=True)
    (root / "a" / "x.jpg").write_bytes(b"x")
    (root / "b").symlink_to(root / "a")  # inside: followed, but a folder seen twice is walked once
    (tmp_path / "out.jpg").write_bytes(b"o")
    (root / "c.jpg").symlink_to(tmp_path / "out.jpg")
    skipped: list[str] = []
    assert images.list_files(root, skipped) == ["a/x.jpg"] and skipped == ["c.jpg"]
    with pytest.raises(images.OutsideRootError, match="c.jpg"):
        images.list_files(root)


# ----------------------------------------------------------------- 2: oversized crops keep no face

def test_an_oversized_crop_is_detected_at_a_scale_where_its_face_is_found(tmp_path):
    cfg = tiny(tmp_path, dataset={"face_size": [14, 20], "preset": "easy_faces", "turned_away": 0.0})
    gen = rundir.stage_generate(cfg)
    truth = pd.read_csv(gen / "face_boxes.csv").head(4)
    root = tmp_path / "big"
    recs = []
    for r in truth.itertuples():
        img = images.read_image(gen / r.image)
        big = cv2.resize(img, (5000, 10000), interpolation=cv2.INTER_CUBIC)
        (root / Path(r.image).parent).mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(root / r.image), big)
        recs.append({"image": r.image, "split": "train", "pid": 1, "camid": 1})
    dets = detection.detect_dataset(root, pd.DataFrame(recs), cfg.detection, progress=False)
    scale = 5000 / 64
    for r in truth.itertuples():
        found = dets[dets.image == r.image][["x0", "y0", "x1", "y1"]].to_numpy()
        want = np.array([[r.x0 * scale, r.y0 * 10000 / 128, r.x1 * scale, r.y1 * 10000 / 128]])
        assert len(found) and iou_matrix(found, want).max() >= 0.4, r.image


# ----------------------------------------------------------------- 3, 4: the swap audited, no identity key

def test_the_generated_copy_ships_no_identity_key(tmp_path):
    cfg = tiny(tmp_path)
    anon = rundir.stage_anonymize(cfg, progress=False)
    assert (runfiles.dataset_root(cfg) / "identities.csv").is_file()
    assert not (anon / "identities.csv").exists() and not (anon / "face_boxes.csv").exists()
    assert not [p for p in anon.rglob("*.csv")]


@pytest.mark.skipif(not dlib_faces.available(), reason="dlib and face_recognition_models are not installed")
def test_the_audit_asks_whether_a_swapped_face_still_passes_for_its_owner(tmp_path):
    cfg = tiny(tmp_path, dataset={"face_size": [16, 20], "preset": "easy_faces"}, anonymization={"audit": True})
    rundir.stage_audit(cfg, progress=False)
    summary = pd.read_csv(runfiles.audit_summary_path(cfg))
    rows = summary.set_index("technique")
    assert "swap" in rows.index and "none" not in rows.index
    assert 0 <= rows.loc["swap", "share_swapped_matching_owner"] <= 1
    assert rows.loc[["blur", "zero"], "share_swapped_matching_owner"].isna().all()
    per_image = pd.read_csv(runfiles.audit_changes_path(cfg))
    swapped = per_image[(per_image.technique == "swap") & (per_image.faces > 0)]
    assert swapped.owner_distance.notna().all() and (swapped.owner_distance > 0).all()


# ----------------------------------------------------------------- 5: every input in the freshness stamp

def test_an_edited_inspection_sheet_is_read_again(tmp_path):
    root = market_root(tmp_path)
    cfg = tiny(tmp_path, dataset={"name": "market1501", "root": str(root)}, recall={"inspect": 8})
    rundir.stage_recall(cfg)
    sheet = pd.read_csv(runfiles.recall_path(cfg).with_name("inspection_template.csv"))
    filled = tmp_path / "sheet.csv"
    sheet.assign(face_visible="y", detected_correctly="y").to_csv(filled, index=False)
    cfg = tiny(tmp_path, dataset={"name": "market1501", "root": str(root)},
               recall={"inspect": 8, "inspection_file": str(filled)})
    first = json.loads(rundir.stage_recall(cfg).read_text())["inspection"]
    sheet.assign(face_visible="y", detected_correctly="n").to_csv(filled, index=False)
    again = json.loads(rundir.stage_recall(cfg).read_text())["inspection"]
    assert first["k"] == first["n"] == 8 and again["k"] == 0


def test_a_deleted_truth_file_is_generated_again_and_recall_keeps_its_ground_truth(tmp_path):
    cfg = tiny(tmp_path)
    rundir.stage_records(cfg)
    assert json.loads(rundir.stage_recall(cfg).read_text())["ground_truth"] is True
    (runfiles.dataset_root(cfg) / "face_boxes.csv").unlink()
    rundir.stage_records(cfg)
    assert (runfiles.dataset_root(cfg) / "face_boxes.csv").is_file()
    assert json.loads(rundir.stage_recall(cfg).read_text())["ground_truth"] is True


def test_an_image_deleted_from_the_copy_is_written_again(tmp_path):
    cfg = tiny(tmp_path)
    anon = rundir.stage_anonymize(cfg, progress=False)
    lost = anon / rundir.records(cfg).image.iloc[0]
    data = lost.read_bytes()
    lost.unlink()
    rundir.stage_anonymize(cfg, progress=False)
    assert lost.read_bytes() == data


def test_a_model_trained_on_a_copy_is_stale_when_the_copy_is_written_otherwise(tmp_path):
    cfg = tiny(tmp_path)
    rundir.stage_train(cfg, "anon", progress=False)
    meta = json.loads((runfiles.model_dir(cfg, "anon") / "model.pt.meta.json").read_text())
    assert meta["config"]["copy_sha256"] == rundir.copy_digest(cfg)


# ----------------------------------------------------------------- 6: ask for it, or be told

@pytest.mark.parametrize("data, key", [
    ({"attribution": {"control_seeds": 3}, "training": {"seeds": [0]}}, "attribution.control_seeds"),
    ({"attribution": {"control_models": ["bot_r18", "mlfn"]}, "models": {}}, "attribution.control_models"),
    ({"teaching": {"shares": [0, 0, 0, 1, 1, 1]}}, "teaching.shares"),
    ({"teaching": {"shares": [0.001, 0.004]}}, "teaching.shares"),
    ({"teaching": {"shares": []}}, "teaching.shares"),
    ({"privacy": {"control_shares": []}}, "privacy.control_shares"),
    ({"attribution": {"techniques": []}}, "attribution.techniques"),
    ({"privacy": {"head_model": "bogus_net"}}, "privacy.head_model"),
    ({"training": {"lr_milestones": ["a"]}}, "training.lr_milestones"),
    ({"models": {"bot_r18": {"seeds": []}}}, "models.bot_r18.seeds"),
])
def test_a_config_asking_for_more_than_can_be_done_is_refused_naming_the_key(data, key):
    with pytest.raises(config.ConfigError, match=key.replace(".", r"\.")):
        config.from_dict(data)


def test_grid_selectors_that_match_no_job_are_refused():
    from reidlib.pipeline import grid

    with pytest.raises(config.ConfigError, match="grid.technique_models"):
        grid.units(grid.as_grid({"grid": {"techniques": ["zero"], "technique_models": ["bogus"]}}))
    with pytest.raises(config.ConfigError, match="grid.technique_datasets"):
        grid.units(grid.as_grid({"grid": {"techniques": ["zero"], "technique_datasets": ["market1501"],
                                          "technique_models": ["hacnn"]}}))


# ----------------------------------------------------------------- 7: the same numbers whatever ran before

def test_the_boxes_and_faces_an_analysis_uses_do_not_depend_on_what_ran_before(tmp_path):
    from reidlib.analyses import attribution
    from reidlib.core.boxes import boxes_by_image

    fresh = tiny(tmp_path, "fresh")  # nothing made yet: the dataset is generated on the way
    boxes = attribution.face_boxes(fresh)
    pool, own = attribution.swap_pool(fresh, rundir.records(fresh), boxes)
    later = tiny(tmp_path, "later")
    rundir.stage_train(later, "orig", progress=False)  # a stage ran first in the same process
    truth = boxes_by_image(rundir.ground_truth(later))
    assert boxes.keys() == truth.keys() and all(np.array_equal(boxes[k], truth[k]) for k in truth)
    assert own == attribution.swap_pool(later, rundir.records(later), truth)[1] and own


def test_every_stage_starts_from_the_same_random_state():
    table.seed_all(3)
    a = (np.random.random(), torch.rand(1).item())
    np.random.random(), torch.rand(5)
    table.seed_all(3)
    assert (np.random.random(), torch.rand(1).item()) == a


# ----------------------------------------------------------------- 8: bad files are one line

class Evil:
    def __reduce__(self):
        return (print, ("unpickled",))


@pytest.mark.parametrize("content", [pickle.dumps(Evil()), b"#!/bin/sh\necho hi\n", "state"])
def test_a_foreign_model_file_is_one_line_naming_it(tmp_path, content):
    path = tmp_path / "model.pt"
    if content == "state":
        torch.save({"x": torch.zeros(3)}, path)
    else:
        path.write_bytes(content)
    net = zoo.build_model("hacnn", 4)
    with pytest.raises(checkpoints.CheckpointError) as e:
        checkpoints.load_into(net, checkpoints.state_dict(path, "trained hacnn"), path, "trained hacnn")
    line = str(e.value)
    assert "\n" not in line and str(path) in line and "not a trained hacnn checkpoint" in line and len(line) < 300


def test_a_crafted_pretrained_file_is_one_error_line_from_the_command_line(tmp_path):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(pickle.dumps(Evil()))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"run_dir: {tmp_path / 'run'}\ndataset: {json.dumps(TINY)}\nmodels: {{}}\n"
                   f"training: {{model: bot_r18, pretrained: {bad}, epochs: 1, seeds: [0]}}\n")
    res = cli("train", "--config", str(cfg))
    lines = res.stderr.strip().splitlines()
    assert res.returncode == 2 and len(lines) == 1, res.stderr[-2000:]
    assert lines[0].startswith("error: ") and str(bad) in lines[0] and "unpickled" not in res.stdout


# ----------------------------------------------------------------- 9: users' files, speed-only keys

def test_a_stage_folder_holding_a_users_file_is_not_wiped(tmp_path):
    folder = tmp_path / "stage"
    with runfiles.output_folder(folder, {"a": 1}, 0):
        (folder / "out.csv").write_text("x")
    (folder / "notes.txt").write_text("mine")
    with pytest.raises(runfiles.ForeignFilesError, match="notes.txt"):
        with runfiles.output_folder(folder, {"a": 2}, 0):
            pass
    assert (folder / "notes.txt").read_text() == "mine"
    (folder / "notes.txt").unlink()
    with runfiles.output_folder(folder, {"a": 2}, 0):  # only the stage's own work: rebuilt
        assert not (folder / "out.csv").exists()


def test_speed_only_keys_leave_the_stamp():
    base = config.Config()
    faster = config.from_dict({"anonymization": {"processes": 7}, "training": {"num_workers": 3}})
    for name in table.STAGES:
        assert table.conf(base, name) == table.conf(faster, name), name


def test_the_copy_writes_only_the_readers_list_files(tmp_path):
    src = tmp_path / "src"
    (src / "img").mkdir(parents=True)
    cv2.imwrite(str(src / "img" / "a.jpg"), np.full((32, 16, 3), 128, np.uint8))
    for name in ("filepath.txt", "notes.txt", "secret.csv"):
        (src / name).write_text("x")
    manifest = anonymize.anonymize_dataset(src, pd.DataFrame(columns=["image", "x0", "y0", "x1", "y1"]),
                                           tmp_path / "out", lists=("filepath.txt",), progress=False)
    assert set(manifest["files"]) == {"img/a.jpg", "filepath.txt"}
    assert set(manifest["omitted"]) == {"notes.txt", "secret.csv"}


def test_a_users_file_in_the_generated_dataset_is_never_deleted(tmp_path):
    cfg = tiny(tmp_path)
    rundir.stage_records(cfg)
    root = runfiles.dataset_root(cfg)
    (root / "mine").mkdir()
    (root / "mine" / "notes.txt").write_text("keep me")
    other = tiny(tmp_path, dataset={"jpeg_quality": 90})  # another generated set in the same place
    with pytest.raises(runfiles.ForeignFilesError, match="mine/notes.txt"):
        rundir.stage_records(other)
    assert (root / "mine" / "notes.txt").read_text() == "keep me"
    (root / "mine" / "notes.txt").unlink()
    (root / "mine").rmdir()
    rundir.stage_records(other)  # once it holds only what the generator wrote, it is made again
    assert json.loads((root / ".complete").read_text())["dataset"]["jpeg_quality"] == 90


def test_an_original_put_back_into_the_copy_is_anonymized_again_and_a_planted_file_is_refused(tmp_path):
    cfg = tiny(tmp_path)
    anon = rundir.stage_anonymize(cfg, progress=False)
    dets = rundir.load_detections(cfg)
    rel = dets.image.iloc[0]
    written = (anon / rel).read_bytes()
    shutil.copyfile(runfiles.dataset_root(cfg) / rel, anon / rel)  # the face back in a copy labelled anonymized
    rundir.stage_anonymize(cfg, progress=False)
    assert (anon / rel).read_bytes() == written
    planted = anon / "bounding_box_train" / "0999_c1s1_000001_01.jpg"
    shutil.copyfile(runfiles.dataset_root(cfg) / rel, planted)
    with pytest.raises(runfiles.ForeignFilesError, match="0999_c1s1_000001_01.jpg"):
        rundir.stage_anonymize(cfg, progress=False)
    assert planted.is_file()  # the user's file is named, not deleted
