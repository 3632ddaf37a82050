"""Stage functions over a run directory: bad input, staleness, and the real Market-1501 sample."""
import pandas as pd
import pytest

from reidlib.core import config, runfiles
from reidlib.pipeline import rundir
from reidlib.stages import datasets


def tiny(tmp_path, **over):
    base = {"run_dir": str(tmp_path / "run"),
            "dataset": {"train_ids": 4, "test_ids": 4, "cameras": 2, "images_per_camera": 2},
            "anonymization": {"processes": 1}}
    return config.from_dict(config.merge(base, over))


def test_missing_dataset_folder_is_named_and_nothing_is_written(tmp_path):
    cfg = tiny(tmp_path, dataset={"root": str(tmp_path / "Market-1501-v15.09.15")})
    with pytest.raises(datasets.DatasetError, match="Market-1501-v15.09.15"):
        rundir.stage_detect(cfg, progress=False)
    assert not (tmp_path / "run").exists()


def test_output_made_with_another_configuration_is_refused(tmp_path):
    cfg = tiny(tmp_path)
    rundir.stage_detect(cfg, progress=False)
    other = tiny(tmp_path, detection={"threshold": 0.6})
    with pytest.raises(runfiles.StaleOutputError, match=r"detections\.csv .*detection\.threshold: 0\.15 -> 0\.6"):
        rundir.stage_detect(other, progress=False)


def test_anonymization_and_audit_stages(tmp_path):
    # easy faces: with profile or covered faces a detected box can leave part of the face, which the
    # audit then finds (the reason it exists); here zero must leave nothing
    cfg = tiny(tmp_path, dataset={"face_size": [8, 20], "preset": "easy_faces"})
    anon = rundir.stage_anonymize(cfg, progress=False)
    assert datasets.read_market(anon, cfg.dataset.name).equals(rundir.records(cfg))
    summary = pd.read_csv(rundir.stage_audit(cfg, progress=False).with_name("summary.csv"))
    assert list(summary.technique) == ["blur", "zero", "blank", "inpaint", "pixelate", "swap"]
    assert summary.share_with_face_found.between(0, 1).all()
    # zeroed boxes leave no face to find where a face was anonymized
    assert summary.set_index("technique").loc["zero", "images_with_face_in_box"] == 0


def test_parallel_copy_equals_serial_copy(tmp_path):
    from reidlib.stages import anonymize

    cfg = tiny(tmp_path)
    root = rundir.stage_generate(cfg)
    dets = pd.read_csv(root / "face_boxes.csv").assign(score=1.0)
    writer = anonymize.Writer("pixelate", {"size": 6})
    one = anonymize.anonymize_dataset(root, dets, tmp_path / "one", writer, progress=False, processes=1)
    two = anonymize.anonymize_dataset(root, dets, tmp_path / "two", writer, progress=False, processes=2, chunk=8)
    assert one["files"] == two["files"]


def test_pipeline_reads_the_real_market_sample(tmp_path, shared_data):
    cfg = tiny(tmp_path, dataset={"root": str(shared_data / "market1501_mini"), "name": "market1501"})
    recs = rundir.records(cfg)
    assert len(recs) == 96
    dets = pd.read_csv(rundir.stage_detect(cfg, progress=False))
    assert set(dets.image) <= set(recs.image)
    assert rundir.ground_truth(cfg) is None


def test_statistics_of_a_grid_table(tmp_path):
    """statistics.results puts a grid's combined table (workflow/grid.smk) into chapter 6's tests."""
    import json

    rows = []
    for d, shift in (("market1501", 0.0), ("viper", 5.0)):
        for i, m in enumerate(("PCB", "MLFN", "HACNN")):
            for protocol, drop in (("orig_orig", 0.0), ("orig_anon", 1.0 + i / 10), ("anon_anon", 0.5 + i / 20)):
                rows.append(dict(dataset=d, model=m, protocol=protocol, technique="blur",
                                 mAP=60 + shift + i - drop, rank1=70 + shift + i - drop))
    rows.append(dict(dataset="market1501", model="BoT", protocol="orig_anon", technique="zero", mAP=1.0, rank1=1.0))
    table = tmp_path / "results.csv"
    pd.DataFrame(rows).to_csv(table, index=False)
    cfg = config.from_dict({"run_dir": str(tmp_path / "run"), "statistics": {"results": str(table)}})
    stats = json.loads(rundir.stage_statistics(cfg).read_text())
    run = pd.DataFrame(stats["run"])
    pooled = run[(run.dataset == "all") & (run.metric == "mAP") & (run.after == "orig_anon")].iloc[0]
    assert pooled.n_pairs == 6 and pooled.mean_difference == pytest.approx(1.1)
    assert set(run.dataset) == {"all", "market1501", "viper"}
    with pytest.raises(FileNotFoundError, match="nowhere.csv"):
        rundir.stage_statistics(config.from_dict({"run_dir": str(tmp_path / "r2"),
                                                    "statistics": {"results": str(tmp_path / "nowhere.csv")}}))


def test_recall_by_inspection_without_ground_truth(tmp_path, shared_data):
    """A real dataset has no face boxes: stage 2 writes the inspection sheet and reads it back filled."""
    import json

    cfg = tiny(tmp_path, dataset={"root": str(shared_data / "market1501_mini"), "name": "market1501"},
               recall={"inspect": 20})
    out = rundir.stage_recall(cfg)
    assert json.loads(out.read_text())["ground_truth"] is False
    sheet = pd.read_csv(out.with_name("inspection_template.csv"), keep_default_na=False)
    assert len(sheet) == 20 and set(sheet.face_visible) == {""}
    sheet["face_visible"] = ["y"] * 10 + ["n"] * 10
    sheet["detected_correctly"] = ["y"] * 9 + ["n"] + [""] * 10
    filled = tmp_path / "filled.csv"
    sheet.to_csv(filled, index=False)
    cfg2 = tiny(tmp_path / "b", dataset={"root": str(shared_data / "market1501_mini"), "name": "market1501"},
                recall={"inspect": 20, "inspection_file": str(filled)})
    got = json.loads(rundir.stage_recall(cfg2).read_text())["inspection"]
    assert (got["k"], got["n"]) == (9, 10)


def test_detection_resumes_after_an_interruption_to_the_same_table(tmp_path, monkeypatch):
    straight = rundir.stage_detect(tiny(tmp_path / "a"), progress=False).read_bytes()
    monkeypatch.setattr(rundir, "DETECTION_PART", 10)
    real, calls = rundir.detection.detect_dataset, {"n": 0}

    def interrupted(*args, **kw):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kw)

    monkeypatch.setattr(rundir.detection, "detect_dataset", interrupted)
    cfg = tiny(tmp_path / "b")
    with pytest.raises(KeyboardInterrupt):
        rundir.stage_detect(cfg, progress=False)
    parts = sorted(p.name for p in (runfiles.detections_path(cfg).parent / "parts").glob("0*.csv"))
    assert parts == ["00000.csv", "00001.csv"] and not runfiles.detections_path(cfg).exists()
    again = {"n": 0}

    def counted(*args, **kw):
        again["n"] += 1
        return real(*args, **kw)

    monkeypatch.setattr(rundir.detection, "detect_dataset", counted)
    resumed = rundir.stage_detect(cfg, progress=False)
    n_parts = -(-len(rundir.records(cfg)) // 10)
    assert n_parts >= 3 and again["n"] == n_parts - 2  # the two finished parts were not detected again
    assert resumed.read_bytes() == straight
    assert not (resumed.parent / "parts").exists()
