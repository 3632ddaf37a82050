"""Integration: the whole workflow at the tiny config, in a copy of the project, down to the HTML book."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from reidlib.pipeline import table

PROJECT = Path(__file__).resolve().parent.parent
CHAPTERS = table.chapters()  # the stage table's chapters, in the book's order
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.integration


def project_copy(dest: Path) -> Path:
    """The project's files (tracked, and new ones git does not ignore) copied to `dest`."""
    out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=PROJECT,
                         capture_output=True, text=True, check=True).stdout.split("\n")
    for rel in filter(None, out):
        src = PROJECT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def snakemake(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(BIN / "snakemake"), "-s", "workflow/Snakefile", "--cores", "2", *args],
                          cwd=cwd, capture_output=True, text=True,
                          env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(cwd)})


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    root = project_copy(tmp_path_factory.mktemp("project"))
    res = snakemake(root, "--configfile", "config/tiny.yaml")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return root


def test_book_has_six_executed_chapters(built):
    html = built / "_build" / "html"
    assert (html / "index.html").is_file()
    for name in CHAPTERS:
        page = (html / "notebooks" / f"{name}.html").read_text()
        assert "Traceback" not in page and "Error" not in re.sub(r"StaleOutputError|DatasetError", "", page)
        assert "<img" in page, f"{name} has no figure"
        nb = nbformat.read(built / "book" / "chapters" / f"{name}.ipynb", as_version=4)
        codes = [c for c in nb.cells if c.cell_type == "code"]
        assert all(c.get("execution_count") for c in codes), name
        assert not any(o.get("output_type") == "error" for c in codes for o in c.outputs), name
    assert (html / "book" / "paper_tables.html").is_file()


def test_results_files_carry_provenance(built):
    run = built / "runs" / "tiny"
    res = pd.read_csv(run / "evaluation" / "results.csv")
    assert list(res.protocol) == ["orig_orig", "orig_anon", "anon_anon"] * 3
    assert list(res.model.unique()) == ["HACNN", "BoT (MobileNetV2)"]  # one training job per (variant, model, seed)
    assert list(res.seed) == [0, 0, 0, 1, 1, 1, 0, 0, 0]  # hacnn: training.seeds [0, 1]; bot_mnv2 its own [0]
    assert set(res[res.model == "BoT (MobileNetV2)"].distance) == {"cosine+rerank"}
    assert all((run / "models" / v / m / f"seed{s}" / "model.pt").is_file() for v in ("orig", "anon-blur")
               for m, seeds in (("hacnn", (0, 1)), ("bot_mnv2", (0,))) for s in seeds)
    first, second = (pd.read_csv(run / "models" / "orig" / "hacnn" / f"seed{s}" / "train_log.csv") for s in (0, 1))
    assert not first.loss.equals(second.loss)  # the seeds are different runs
    assert res[["mAP", "rank1"]].apply(lambda c: c.between(0, 100)).all().all()
    meta = json.loads((run / "evaluation" / "results.csv.meta.json").read_text())
    assert {"config", "seed", "git_commit", "packages", "data_fingerprint"} <= set(meta)
    stats = json.loads((run / "statistics" / "statistics.json").read_text())
    assert stats["paper"][0]["n_pairs"] == 30 and "meta" in stats


def test_second_run_does_nothing(built):
    res = snakemake(built, "--configfile", "config/tiny.yaml")
    assert res.returncode == 0
    assert "Nothing to be done" in res.stdout + res.stderr


def test_unknown_config_key_stops_the_workflow_by_name(built):
    res = snakemake(built, "--configfile", "config/tiny.yaml", "--config", "detektion=1", "-n")
    assert res.returncode != 0
    assert "detektion" in res.stdout + res.stderr


def test_a_notebook_runs_alone_with_papermill(tmp_path, built):
    """The last stage from nothing: it builds every input it needs through reidlib."""
    out = tmp_path / "out.ipynb"
    settings = json.dumps({"run_dir": str(tmp_path / "alone")})
    res = subprocess.run([str(BIN / "papermill"), "notebooks/06_statistics.ipynb", str(out), "-k", "python3",
                          "-p", "config_file", "config/tiny.yaml", "-y", f"settings: {settings}"],
                         cwd=built, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (tmp_path / "alone" / "statistics" / "statistics.json").is_file()
    assert (tmp_path / "alone" / "anon" / "blur" / "synthetic" / "manifest.json").is_file()


def test_market1501_mini_end_to_end(shared_data, tmp_path, monkeypatch):
    """Real Market-1501 crops through every stage, switched on by config/market1501_mini.yaml alone."""
    from reidlib.core import config, runfiles
    from reidlib.pipeline import rundir

    monkeypatch.chdir(PROJECT)
    cfg = config.load("config/market1501_mini.yaml",
                      {"run_dir": str(tmp_path / "run"), "training": {"epochs": 1, "seeds": [0]},
                       "models": {"bot_r18": {"profile": "smoke", "epochs": 1, "image_size": [64, 32]}},
                       "anonymization": {"audit": False, "processes": 1}})
    assert runfiles.dataset_root(cfg) == (shared_data / "market1501_mini").resolve()
    stats = json.loads(rundir.stage_statistics(cfg).read_text())
    assert stats["meta"]["config"]["statistics"]["alpha"] == 0.05
    recs = rundir.records(cfg, "anon")
    assert len(recs) == 96 and recs.pid.nunique() == 32
    dets = pd.read_csv(runfiles.detections_path(cfg))
    assert set(dets.image) <= set(recs.image) and len(dets) > 0
    res = pd.read_csv(runfiles.evaluation_path(cfg))
    assert list(res.protocol) == ["orig_orig", "orig_anon", "anon_anon"] * 2 and set(res.dataset) == {"market1501"}
    assert json.loads(rundir.stage_recall(cfg).read_text())["ground_truth"] is False


def test_book_in_a_real_browser_offline(built):
    """Every page of the built book in headless Chromium with the network cut: images load, no console
    error, equations typeset, figures captioned, numbered by chapter and cited from the prose, no table or code block wider
    than the column, the paper's protocols spanning their columns, the index lists the glossary's terms;
    a full-page screenshot of every page, and each page's height and code share
    (`page_metrics.csv`), are kept in _build/screenshots/."""
    import browser

    if browser.CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt install chromium; .ci/run installs it)")
    html = built / "_build" / "html"
    found = browser.check_book(html, PROJECT / "_build" / "screenshots")
    assert found["pages"] == len(CHAPTERS) + 4
    assert found["index_terms"] >= 20, f"the index lists {found['index_terms']} terms"
    assert not found["uncaptioned"], f"figures without a caption or real alt text: {found['uncaptioned']}"
    assert not found["uncited"], f"pages whose prose cites none of their figures: {found['uncited']}"
    assert not found["misnumbered"], f"figures not numbered by chapter (Fig. 3.1, 3.2, ...): {found['misnumbered']}"
    assert not found["too_wide"], f"tables or code wider than the column: {found['too_wide']}"
    assert not found["defects"], ("glued lists, headers broken inside a word, nan/True/False or registry ids: "
                                  f"{found['defects']}")
    assert found["spans"] >= 17, f"the paper's tables span {found['spans']} protocol headers over their two columns"
    assert not found["problems"], found["problems"]
    reports, shot = found["reports"], PROJECT / "_build" / "screenshots" / "book_intro.png"
    machine_paths = (str(built), str(PROJECT), "/tmp/", "/root/", "/home/")
    shown = [(r.url, p) for r in reports for p in machine_paths if p in r.text]
    assert not shown, f"pages show this machine's paths: {shown}"
    assert all(r.images > 0 for r in reports if "/notebooks/" in r.url)
    assert next(r for r in reports if r.url.endswith("your_data.html")).equations >= 1
    png = shot.read_bytes()
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and width >= 1000 and height >= 600 and len(png) > 20_000
