"""Bad inputs and faults: an anonymized copy is anonymized or does not exist, and every error names its cause."""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from dataset_trees import airport_tree

from reidlib import __main__ as cli
from reidlib.core import config, images, runfiles
from reidlib.pipeline import rundir
from reidlib.stages import anonymize, datasets, detection, training

PROJECT = Path(__file__).resolve().parent.parent
TINY = {"train_ids": 4, "test_ids": 4, "cameras": 2, "images_per_camera": 2}
FAST_TRAIN = {"model": "hacnn", "epochs": 2, "batch_size": 8}


def tiny(tmp_path: Path, run: str = "run", **over) -> config.Config:
    base = {"run_dir": str(tmp_path / run), "dataset": dict(TINY), "anonymization": {"processes": 1, "audit": False},
            "training": dict(FAST_TRAIN), "models": {}}
    return config.from_dict(config.merge(base, over))


def copy_files(root: Path) -> dict[str, bytes]:
    """Every file of an anonymized copy (the manifest without its machine-specific source path)."""
    out = {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
           if p.is_file() and not p.name.startswith(".") and p.name != "anonymization.meta.json"}
    manifest = json.loads(out.pop("manifest.json"))
    manifest.pop("source")
    return {**out, "manifest.json": json.dumps(manifest, sort_keys=True).encode()}


def face_change(cfg: config.Config, anon_root: Path) -> float:
    """Mean absolute change inside the ground-truth face boxes between the original and the copy."""
    truth = rundir.ground_truth(cfg)
    diffs = []
    for r in truth.itertuples():
        a = images.read_image(runfiles.dataset_root(cfg) / r.image).astype(float)
        b = images.read_image(anon_root / r.image).astype(float)
        diffs.append(np.abs(a - b)[int(r.y0):int(r.y1), int(r.x0):int(r.x1)].mean())
    return float(np.mean(diffs))


# ----------------------------------------------------------------- 1, 2: stale and killed-then-changed work


def test_changed_threshold_is_refused_naming_the_key_and_a_deleted_meta_rebuilds_fresh(tmp_path):
    cfg = tiny(tmp_path)
    rundir.stage_anonymize(cfg, progress=False)
    changed = tiny(tmp_path, detection={"threshold": 0.5})
    with pytest.raises(runfiles.StaleOutputError, match=r"detection\.threshold: 0\.15 -> 0\.5"):
        rundir.stage_anonymize(changed, progress=False)
    # the advice followed halfway: only the meta files deleted, the old images left in place
    for meta in (runfiles.anon_root(cfg) / "anonymization.meta.json", runfiles.meta_path(runfiles.detections_path(cfg))):
        meta.unlink()
    rerun = rundir.stage_anonymize(changed, progress=False)
    fresh = rundir.stage_anonymize(tiny(tmp_path, "fresh", detection={"threshold": 0.5}), progress=False)
    assert copy_files(rerun) == copy_files(fresh)


def test_copy_killed_then_rerun_with_another_strength_equals_a_fresh_copy(tmp_path, monkeypatch):
    weak = tiny(tmp_path, anonymization={"blur_width_ratio": 0.001})
    real_write, calls = anonymize._write_one, []

    def dies_midway(*a, **k):
        if len(calls) == 20:
            raise KeyboardInterrupt  # a kill after 20 files
        calls.append(1)
        return real_write(*a, **k)

    monkeypatch.setattr(anonymize, "_write_one", dies_midway)
    with pytest.raises(KeyboardInterrupt):
        rundir.stage_anonymize(weak, progress=False)
    monkeypatch.setattr(anonymize, "_write_one", real_write)
    assert len(list(runfiles.anon_root(weak).rglob("*.jpg"))) == 20
    strong = tiny(tmp_path)
    rerun = rundir.stage_anonymize(strong, progress=False)
    fresh = rundir.stage_anonymize(tiny(tmp_path, "fresh"), progress=False)
    assert copy_files(rerun) == copy_files(fresh)
    assert face_change(strong, rerun) > 3.0  # the faces really are blurred


def test_training_killed_then_rerun_with_another_lr_equals_a_fresh_run(tmp_path, monkeypatch):
    first = tiny(tmp_path, training={"lr": 0.01})
    real_save, saves = training._save, []

    def dies_after_epoch_one(obj, path):
        if saves:
            raise KeyboardInterrupt
        saves.append(path)
        real_save(obj, path)

    monkeypatch.setattr(training, "_save", dies_after_epoch_one)
    with pytest.raises(KeyboardInterrupt):
        rundir.stage_train(first, "orig", progress=False)
    monkeypatch.setattr(training, "_save", real_save)
    out = runfiles.model_dir(first, "orig", "hacnn")
    assert (out / "checkpoint.pt").is_file() and not (out / "model.pt").exists()
    second = tiny(tmp_path)
    rerun = rundir.stage_train(second, "orig", progress=False)
    fresh = rundir.stage_train(tiny(tmp_path, "fresh"), "orig", progress=False)
    assert (rerun / "model.pt").read_bytes() == (fresh / "model.pt").read_bytes()
    log = pd.read_csv(rerun / "train_log.csv")
    assert log.lr.iloc[0] == pytest.approx(second.training.lr)
    assert json.loads((rerun / "model.pt.meta.json").read_text())["config"]["training"]["lr"] == second.training.lr
    # a finished model under another recipe is refused, naming the key
    stale = rf"training\.lr: {re.escape(str(second.training.lr))} -> 0\.01"
    with pytest.raises(runfiles.StaleOutputError, match=stale):
        rundir.stage_train(first, "orig", progress=False)


def test_resume_under_the_same_stamp_keeps_the_work(tmp_path):
    folder = tmp_path / "out"
    with runfiles.output_folder(folder, {"a": 1}, 0):
        (folder / "part.csv").write_text("x")
    with runfiles.output_folder(folder, {"a": 1}, 0):
        assert (folder / "part.csv").is_file()
    with runfiles.output_folder(folder, {"a": 2}, 0):
        assert not (folder / "part.csv").exists()
    with runfiles.output_folder(folder, {"a": 2}, 1):  # another seed is another stamp
        assert json.loads((folder / ".stamp.json").read_text()) == {"config": {"a": 2}, "seed": 1}


# ----------------------------------------------------------------- 3: values that make no sense


@pytest.mark.parametrize("yaml_text, key", [
    ("anonymization: {blur_width_ratio: -1}", "anonymization.blur_width_ratio"),
    ("anonymization: {margin: -5}", "anonymization.margin"),
    ("detection: {threshold: 2.0}", "detection.threshold"),
    ("detection: {threshold: -1}", "detection.threshold"),
    ("training: {epochs: 0}", "training.epochs"),
    ("dataset: {jpeg_quality: 500}", "dataset.jpeg_quality"),
    ("detection: {skip_unreadable: 'false'}", "detection.skip_unreadable"),
    ("detection: {upscale: 0}", "detection.upscale"),
    ("anonymization: {pixelate_size: 0}", "anonymization.pixelate_size"),
    ("training: {batch_size: null}", "training.batch_size"),
    ("- a list\n- of things", "must hold a mapping"),
    ("training: [\n", "not valid YAML at line"),
])
def test_each_bad_value_exits_2_with_one_line_naming_it(tmp_path, capsys, yaml_text, key):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml_text + "\n" + f"run_dir: {tmp_path / 'run'}\n" * (not yaml_text.startswith("-")))
    with pytest.raises(SystemExit) as e:
        cli.main(["detect", "--config", str(bad)])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and key in err[0] and err[0].startswith("error: ") and "Traceback" not in err[0]
    assert not (tmp_path / "run").exists()


def test_several_bad_values_give_one_line_each(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {epochs: 0, lr: -1}\nanonymization: {technique: smudge}\n")
    with pytest.raises(SystemExit):
        cli.main(["detect", "--config", str(bad)])
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 3 and {"training.epochs", "training.lr", "smudge"} <= {w for ln in err for w in
                                                                               ("training.epochs", "training.lr",
                                                                                "smudge") if w in ln}


def test_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("training: {epochs: 0}\n")
    with pytest.raises(config.ConfigError):
        cli.main(["detect", "--config", str(bad), "--debug"])


# ----------------------------------------------------------------- 4: nothing unchecked in the copy


def market_with_junk(tmp_path: Path, cfg: config.Config) -> tuple[Path, list[str], dict]:
    """The generated set as a user's Market-1501 folder, with a junk (-1) crop and a gt_bbox crop holding faces."""
    gen = rundir.stage_generate(cfg)
    root = tmp_path / "Market-1501-v15.09.15"
    for sub in datasets.MARKET_DIRS.values():
        shutil.copytree(gen / sub, root / sub)
    donors = sorted((gen / "bounding_box_train").glob("*.jpg"))[:2]
    junk = "bounding_box_test/-1_c1s1_000001_00.jpg"
    (root / "gt_bbox").mkdir()
    extra = [junk, "gt_bbox/0001_c1s1_000002_00.jpg"]
    for donor, rel in zip(donors, extra):
        shutil.copy2(donor, root / rel)
    truth = pd.read_csv(gen / "face_boxes.csv")
    boxes = {rel: truth[truth.image == f"bounding_box_train/{d.name}"] for d, rel in zip(donors, extra)}
    return root, extra, boxes


def test_junk_and_gt_bbox_are_left_out_of_the_copy_by_default(tmp_path):
    gen_cfg = tiny(tmp_path, "gen")
    root, extra, _ = market_with_junk(tmp_path, gen_cfg)
    cfg = tiny(tmp_path, dataset={"name": "market1501", "root": str(root)})
    anon = rundir.stage_anonymize(cfg, progress=False)
    manifest = json.loads((anon / "manifest.json").read_text())
    for rel in extra:
        assert not (anon / rel).exists() and rel not in manifest["files"] and rel in manifest["omitted"]
    assert manifest["outside_records"] == "omit"
    assert set(manifest["files"]) == set(rundir.records(cfg).image)


def test_junk_and_gt_bbox_are_anonymized_when_asked(tmp_path):
    gen_cfg = tiny(tmp_path, "gen")
    root, extra, boxes = market_with_junk(tmp_path, gen_cfg)
    cfg = tiny(tmp_path, dataset={"name": "market1501", "root": str(root)},
               anonymization={"outside_records": "anonymize", "technique": "zero"})
    anon = rundir.stage_anonymize(cfg, progress=False)
    manifest = json.loads((anon / "manifest.json").read_text())
    for rel in extra:
        assert rel in manifest["files"]
        b = boxes[rel].iloc[0]
        face = images.read_image(anon / rel)[int(b.y0) + 2:int(b.y1) - 2, int(b.x0) + 2:int(b.x1) - 2]
        assert face.mean() < 10, f"{rel}: the face is still there"


# ----------------------------------------------------------------- 5: paths stay under the root


@pytest.mark.parametrize("entry", ["..\\outside\\x.jpg", "/etc/passwd", "C:\\data\\x.jpg"])
def test_list_entries_outside_the_root_are_refused(tmp_path, entry):
    root = airport_tree(tmp_path / "airport")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "x.jpg").write_bytes((root / "filepath.txt").read_bytes())
    lines = (root / "filepath.txt").read_text().splitlines()
    lines[0] = entry
    (root / "filepath.txt").write_text("\r\n".join(lines) + "\r\n")
    with pytest.raises(datasets.DatasetError, match="outside the dataset root|not relative to the dataset root"):
        datasets.read("airport", root)


def test_run_dir_inside_the_dataset_root_is_refused(tmp_path):
    root = tmp_path / "market"
    with pytest.raises(config.ConfigError, match="run_dir .* lies inside dataset.root"):
        config.from_dict({"dataset": {"name": "market1501", "root": str(root)}, "run_dir": str(root / "runs")})


# ----------------------------------------------------------------- 6: unreadable and oversized images


def corrupt_copy(tmp_path: Path) -> tuple[Path, str]:
    gen = rundir.stage_generate(tiny(tmp_path, "gen"))
    root = tmp_path / "market"
    for sub in datasets.MARKET_DIRS.values():
        shutil.copytree(gen / sub, root / sub)
    bad = sorted((root / "bounding_box_train").glob("*.jpg"))[0]
    bad.write_bytes(b"not a jpeg")
    return root, f"bounding_box_train/{bad.name}"


def test_unreadable_images_are_skipped_by_every_stage_and_listed_once(tmp_path):
    root, bad = corrupt_copy(tmp_path)
    cfg = tiny(tmp_path, dataset={"name": "market1501", "root": str(root)}, detection={"skip_unreadable": True},
               training={"epochs": 1})
    dets = pd.read_csv(rundir.stage_detect(cfg, progress=False))
    anon = rundir.stage_anonymize(cfg, progress=False)
    model = rundir.stage_train(cfg, "anon", progress=False)
    listed = pd.read_csv(runfiles.unreadable_path(cfg))
    assert list(listed.image) == [bad] and "cannot decode" in listed.reason.iloc[0]
    assert bad not in set(dets.image) and not (anon / bad).exists()
    assert bad in json.loads((anon / "manifest.json").read_text())["omitted"]
    assert (model / "model.pt").is_file()


def test_unreadable_image_without_skipping_is_an_error_naming_it(tmp_path):
    root, bad = corrupt_copy(tmp_path)
    cfg = tiny(tmp_path, dataset={"name": "market1501", "root": str(root)})
    with pytest.raises(ValueError, match=bad.split("/")[1]):
        rundir.stage_detect(cfg, progress=False)
    assert not runfiles.detections_path(cfg).exists()


def test_oversized_crops_are_shrunk_before_detection(monkeypatch):
    assert detection.bounded_scale(128, 64, 2) == 2
    big = detection.bounded_scale(8000, 4000, 2)
    assert 8000 * 4000 * big ** 2 <= detection.MAX_NET_PIXELS * 1.0001
    crop = detection.bounded_scale(10000, 5000, 2, detection.MAX_NET_WIDTH)  # a re-ID crop: its face found
    assert 5000 * crop == pytest.approx(detection.MAX_NET_WIDTH) and crop < big  # a photograph keeps its width
    monkeypatch.setattr(detection, "MAX_NET_PIXELS", 96 * 96)
    seen = []
    import reidlib.stages.detection as d

    real = d._centerface_session

    class Spy:
        def __init__(self):
            self.sess, self.name, self.outs = real(1, False)

        def run(self, outs, feed):
            seen.append(feed[self.name].shape)
            return self.sess.run(outs, feed)

    spy = Spy()
    monkeypatch.setattr(d, "_centerface_session", lambda *a, **k: (spy, spy.name, spy.outs))
    boxes = detection.CenterFace(0.3, 2)(np.zeros((400, 200, 3), np.uint8))
    assert seen[0][2] * seen[0][3] <= 160 * 96 and boxes.shape[1] == 5


def test_a_detector_failure_names_the_image(tiny_root):
    recs = datasets.read_market(tiny_root).head(3)

    def broken(img):
        raise MemoryError("bad_alloc")

    with pytest.raises(RuntimeError, match=recs.image.iloc[0].split("/")[1]):
        detection.detect_dataset(tiny_root, recs, run=broken, progress=False)


# ----------------------------------------------------------------- 8: concurrent runs and killed workers


def test_a_second_concurrent_run_is_told_who_holds_the_output(tmp_path):
    cfg = tiny(tmp_path)
    rundir.stage_detect(cfg, progress=False)
    with runfiles.output_lock(runfiles.anon_root(cfg)):
        with pytest.raises(runfiles.BusyOutputError, match=f"pid {os.getpid()}"):
            rundir.stage_anonymize(cfg, progress=False)
    assert rundir.stage_anonymize(cfg, progress=False).is_dir()  # released when the holder ends


WORKERS = """
import os, sys, time
from concurrent.futures import ProcessPoolExecutor
import multiprocessing
from reidlib.stages import anonymize
ctx = multiprocessing.get_context("forkserver")
with ProcessPoolExecutor(2, mp_context=ctx, initializer=anonymize._worker_init, initargs=(os.getpid(),)) as pool:
    list(pool.map(abs, range(4)))
    print(" ".join(str(p) for p in pool._processes), flush=True)
    time.sleep(60)
"""


def test_a_killed_copy_leaves_no_workers_behind(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", WORKERS], stdout=subprocess.PIPE, text=True, cwd=PROJECT)
    workers = [int(p) for p in proc.stdout.readline().split()]
    server = int(Path(f"/proc/{workers[0]}/stat").read_text().split(")")[1].split()[1])
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in workers):
        time.sleep(0.2)
    assert not any(Path(f"/proc/{p}").exists() for p in workers), "workers outlived the killed run"
    while time.time() < deadline and Path(f"/proc/{server}").exists():
        time.sleep(0.2)
    assert not Path(f"/proc/{server}").exists(), "the fork server outlived the killed run"


# ----------------------------------------------------------------- 7: workflow paths are data


@pytest.mark.integration
def test_workflow_takes_run_dirs_with_spaces_and_shell_characters(tmp_path):
    from test_pipeline import project_copy, snakemake

    root = project_copy(tmp_path / "project")
    run_dir = "runs/a b$(touch PWNED)"
    cfg = root / "config" / "odd.yaml"
    cfg.write_text((root / "config" / "tiny.yaml").read_text().replace("run_dir: runs/tiny", f"run_dir: '{run_dir}'"))
    res = snakemake(root, str(root / run_dir / "models" / "orig" / "hacnn" / "seed0" / "model.pt"), "--configfile",
                    "config/odd.yaml")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert (root / run_dir / "models" / "orig" / "hacnn" / "seed0" / "model.pt").is_file()
    assert not (root / "PWNED").exists() and not list(root.rglob("PWNED"))
    assert not (root / "runs" / "a").exists()
