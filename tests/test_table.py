"""The stage table: one entry per stage, read by the command line, the stages' freshness, both workflows and
the book; adding an analysis is a module, a notebook and one entry."""
from __future__ import annotations

import inspect
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import nbformat
import pandas as pd
import pytest

from reidlib.core import config, runfiles
from reidlib.pipeline import table

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PSEUDO = {"seed", "recipe", "copy"}


def test_every_entry_names_a_function_sections_and_files():
    cfg = config.Config()
    sections = {f.name for f in config.dataclasses.fields(config.Config)}
    for st in table.STAGES.values():
        fn = st.function()
        params = inspect.signature(fn).parameters
        assert list(params)[0] == "cfg", st.name
        assert set(st.sections) <= sections | PSEUDO, (st.name, set(st.sections) - sections - PSEUDO)
        assert set(st.needs) <= set(table.STAGES), st.name
        assert st.job or st.notebook, f"{st.name} is neither a job nor computed by a chapter"
        assert all(isinstance(p, Path) for p in table.outputs(cfg, st.name)), st.name


def test_the_chapters_are_the_notebooks_and_the_toc_lists_them_in_parts():
    on_disk = sorted(p.stem for p in (PROJECT / "notebooks").glob("*.ipynb"))
    assert table.chapters() == on_disk
    toc = table.toc()
    files = [c["file"] for part in toc["parts"] for c in part["chapters"]]
    assert files[:len(on_disk)] == [f"notebooks/{n}" for n in on_disk]
    assert [p["caption"] for p in toc["parts"]] == ["Findings", "The six stages", "Teaching", "Beyond the paper",
                                                    "Your data", "Reference"]
    assert all((PROJECT / f"{f}.md").is_file() for f in files[len(on_disk):])


def test_conf_follows_the_sections_and_nothing_else():
    base = config.Config()
    detect = table.conf(base, "detect")
    assert set(detect) == {"dataset", "detection", "data_seed"}
    assert table.conf(config.from_dict({"detection": {"threshold": 0.5}}), "detect") != detect
    assert table.conf(config.from_dict({"training": {"epochs": 9}}), "detect") == detect
    orig = table.conf(base, "train", "hacnn", "orig")
    anon = table.conf(base, "train", "hacnn", "anon")
    assert "anonymization" not in orig and anon["anonymization"]["technique"] == "blur"
    assert table.conf(config.from_dict({"anonymization": {"technique": "zero"}}), "train", "hacnn", "orig") == orig
    assert table.conf(base, "train", "bot_mnv2", "orig")["training"]["model"] == "bot_mnv2"
    # a key added later is stamped only away from the value that made the runs before it (float32 on a CPU)
    assert orig["training"]["cpu_amp"] is True
    assert "cpu_amp" not in table.conf(config.from_dict({"training": {"cpu_amp": False}}), "train", "hacnn", "orig")[
        "training"]


def test_a_chapter_reruns_when_a_section_its_page_reads_changes():
    """Chapter 8 judges its interventions at statistics.alpha, which the attribution stage's stamp leaves out."""
    base, strict = config.Config(), config.from_dict({"statistics": {"alpha": 0.01}})
    page = "08_where_models_look"
    assert table.chapter_conf(strict, page) != table.chapter_conf(base, page)
    assert table.conf(strict, "attribution") == table.conf(base, "attribution")  # the stage's outputs stay valid
    assert table.chapter_conf(config.from_dict({"statistics": {"alpha": 0.01}}), "01_face_detection") == \
        table.chapter_conf(base, "01_face_detection")


def test_a_chapter_reads_what_other_rules_make_and_writes_what_it_computes():
    cfg = config.Config()
    assert runfiles.detections_path(cfg) in table.chapter_outputs(cfg, "01_face_detection")
    assert runfiles.records_path(cfg) in table.chapter_inputs(cfg, "01_face_detection")
    training = table.chapter_inputs(cfg, "04_training")
    assert len(training) == len(table.training_runs(cfg)) == 12 and not table.chapter_outputs(cfg, "04_training")
    assert runfiles.per_query_path(cfg) in table.chapter_outputs(cfg, "06_statistics")
    assert "data/paper/claims_section_IV_B.csv" in table.chapter_inputs(cfg, "00_findings")


def test_unknown_stage_and_unknown_option_are_named():
    with pytest.raises(ValueError, match="unknown stage 'nope'.*records"):
        table.stage("nope")
    with pytest.raises(ValueError, match="--variant"):
        table.call("recall", config.Config(), variant="anon")


def test_the_workflows_spell_no_output_path_by_hand():
    for name in ("Snakefile", "grid.smk"):
        text = (PROJECT / "workflow" / name).read_text()
        assert not re.findall(r'f"\{RUN\}|"runs/|/models/|/evaluation/|\.csv"|\.json"|\.pt"', text), name


# ------------------------------------------------------------------ adding an analysis: a toy stage

TOY_MODULE = '''"""A toy analysis: images per camera of the records."""
from pathlib import Path

import pandas as pd

from ..core.config import Config
from ..core.runfiles import finished, make_meta, meta_path, write_csv
from ..pipeline import rundir, table


def counts_path(cfg: Config) -> Path:
    return cfg.run_path / "toy" / "counts.csv"


def stage_toy(cfg: Config, progress: bool = False) -> Path:
    out = counts_path(cfg)
    conf = table.conf(cfg, "toy")
    if finished(meta_path(out), conf, cfg.seed, [out], rebuild_stale=True):
        return out
    counts = rundir.records(cfg).groupby("camid").size().rename("images").reset_index()
    write_csv(out, counts, make_meta("toy", conf, cfg.seed, "-"))
    return out
'''

TOY_ENTRY = '''
register(Stage("toy", "reidlib.analyses.toy:stage_toy", ("dataset", "seed"),
               lambda c: [importlib.import_module("reidlib.analyses.toy").counts_path(c)], ("records",),
               "10_toy", "Beyond the paper"))
'''


def toy_notebook() -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    params = nbformat.v4.new_code_cell('config_file = "config/tiny.yaml"\nsettings = {}')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# 10. Toy"), params, nbformat.v4.new_code_cell(
        "import pandas as pd\nfrom reidlib.book import chapter\nfrom reidlib.pipeline import table\n"
        "cfg = chapter.setup(config_file, settings)\npd.read_csv(table.call('toy', cfg))")]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


@pytest.mark.integration
def test_a_toy_analysis_is_one_module_one_notebook_and_one_entry(tmp_path):
    from test_pipeline import project_copy

    root = project_copy(tmp_path / "project")
    (root / "reidlib" / "analyses" / "toy.py").write_text(TOY_MODULE)
    nbformat.write(toy_notebook(), root / "notebooks" / "10_toy.ipynb")
    with open(root / "reidlib" / "pipeline" / "table.py", "a") as f:
        f.write(TOY_ENTRY)
    env = {**os.environ, "PYTHONPATH": str(root), "HOME": str(tmp_path)}
    base = (root / "config" / "tiny.yaml").read_text().replace("run_dir: runs/tiny", f"run_dir: {tmp_path / 'run'}")
    variants = {"toy": "", "toy_epochs": "  epochs: 2\n", "toy_cameras": ""}
    for name, extra in variants.items():
        text = base.replace("training:\n", "training:\n" + extra) if extra else base
        if name == "toy_cameras":
            text = text.replace("  cameras: 2\n  images_per_camera", "  cameras: 3\n  images_per_camera")
        (root / "config" / f"{name}.yaml").write_text(text)

    res = subprocess.run([str(BIN / "python"), "-m", "reidlib", "toy", "--config", "config/toy.yaml"], cwd=root,
                         env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    counts = Path(res.stdout.strip().splitlines()[-1])
    assert counts == tmp_path / "run" / "toy" / "counts.csv" and pd.read_csv(counts).images.sum() > 0
    toc = subprocess.run([str(BIN / "python"), "-c", "from reidlib.pipeline import table; print(table.toc())"],
                         cwd=root, env=env, capture_output=True, text=True).stdout
    assert "notebooks/10_toy" in toc

    def snakemake(configfile: str, *extra: str) -> str:
        res = subprocess.run([str(BIN / "snakemake"), "-s", "workflow/Snakefile", "--cores", "2",
                              str(runfiles.chapter_path("10_toy")), *extra, "--configfile", f"config/{configfile}.yaml"],
                             cwd=root, env=env, capture_output=True, text=True)
        assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
        return res.stdout + res.stderr

    snakemake("toy")
    assert (root / "book" / "chapters" / "10_toy.ipynb").is_file()
    assert "Nothing to be done" in snakemake("toy")
    assert "Nothing to be done" in snakemake("toy_epochs")  # a key outside its sections: still fresh
    assert "chapter_10_toy" in snakemake("toy_cameras", "-n")  # one inside: rebuilt
    snakemake("toy_cameras")
    assert json.loads(runfiles.meta_path(counts).read_text())["config"]["dataset"]["cameras"] == 3


def test_only_the_chapter_that_trains_side_by_side_takes_every_core():
    """Chapter jobs run on one thread (two at once on two cores) unless a stage they show trains side by side."""
    threads = {c: table.chapter_threads(c, 6) for c in table.chapters()}
    assert threads.pop("07_teaching") == 6
    assert set(threads.values()) == {1}
    snakefile = (Path(__file__).parents[1] / "workflow" / "Snakefile").read_text()
    assert "threads: table.chapter_threads(chapter, workflow.cores)" in snakefile
