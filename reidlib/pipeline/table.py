"""The stage table: every stage of a run in one place, read by `python -m reidlib`, the stages' freshness
checks, both workflows (`workflow/Snakefile`, `workflow/grid.smk`), the book's table of contents and the tests.

Each entry says what runs (a function, named lazily so that Snakemake's process imports neither torch nor
OpenCV), which configuration sections its outputs depend on (the stamp in their metadata, and the
workflow's rerun trigger), which files it writes (`reidlib.core.runfiles` functions), which stages' files
it reads, which chapter shows it, and whether it is a workflow job of its own. Adding an analysis is a
module with a `stage_*(cfg, progress)` function, a notebook, and one `register` call here (or in your
own code before the run).
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..core import runfiles
from ..core.config import Config, recipe, to_dict, trainings

Outputs = Callable[[Config], list[Path]]


@dataclass(frozen=True)
class Stage:
    """One stage of a run.

    `run` is "module:function", called as function(cfg, progress=..., and the job's options: variant, model,
    seed) and returning its main output's path. `sections` are config sections, or the pseudo-sections
    `seed` (the data seed), `recipe` (the models' training recipes, or one model's) and `copy` (detection
    and anonymization, for a run on the anonymized copy). `outputs(cfg)` lists every file it writes;
    `needs` the stages whose files it reads; `data(cfg)` the project files it reads (the paper's tables).
    `notebook` is the chapter that shows it (its notebook computes it unless it is a `job` of its own),
    `part` the book part of that chapter. `each`: a job run once per training run ("variant model seed")
    or per model and seed ("model seed"). `all_cores`: its chapter runs trainings side by side and takes every
    core; any other chapter runs on one thread (the same numbers whatever --cores is), two chapters at once.
    """

    name: str
    run: str
    sections: tuple[str, ...]
    outputs: Outputs
    needs: tuple[str, ...] = ()
    notebook: str = ""
    part: str = ""
    job: bool = False
    each: str = ""
    all_cores: bool = False
    data: Callable[[Config], list[str]] = field(default=lambda cfg: [])

    def function(self) -> Callable[..., Path]:
        """The stage's function (its module imported now)."""
        module, name = self.run.split(":")
        return getattr(importlib.import_module(module), name)


STAGES: dict[str, Stage] = {}


def register(stage: Stage) -> Stage:
    """Add (or replace) a stage: it runs under `python -m reidlib NAME`, in the workflow and in the book."""
    STAGES[stage.name] = stage
    return stage


def stage(name: str) -> Stage:
    """The entry called `name`, or an error listing the known stages."""
    if name not in STAGES:
        raise ValueError(f"unknown stage '{name}'; choose one of {', '.join(STAGES)}")
    return STAGES[name]


# ------------------------------------------------------------------------------------- the files
def training_runs(cfg: Config) -> list[tuple[str, str, int]]:
    """Every (variant, model, seed) the run trains."""
    return [(v, m, s) for v in runfiles.VARIANTS for m, t in trainings(cfg).items() for s in t.seeds]


def model_seeds(cfg: Config) -> list[tuple[str, int]]:
    """Every (model, training seed) the run evaluates."""
    return [(m, s) for m, t in trainings(cfg).items() for s in t.seeds]


def _model_files(cfg: Config) -> list[Path]:
    return [runfiles.model_file(cfg, v, m, s) for v, m, s in training_runs(cfg)]


def _results_files(cfg: Config) -> list[Path]:
    return [f(cfg, m, s) for m, s in model_seeds(cfg) for f in (runfiles.model_results_path, runfiles.model_query_ap_path)]


def _own_results(cfg: Config) -> bool:
    return not cfg.statistics.results  # a grid's table given instead: no per-query analysis of its models


PAPER_TABLES = ["data/paper/results_tables_III_VII.csv", "data/paper/claims_section_IV_B.csv"]


def _results_table(cfg: Config) -> list[str]:
    return [cfg.statistics.results] if cfg.statistics.results else []


SIX = "The six stages"
for _s in (
    Stage("records", "reidlib.pipeline.rundir:stage_records", ("dataset", "seed"),
          lambda c: [runfiles.records_path(c)], job=True),
    Stage("detect", "reidlib.pipeline.rundir:stage_detect", ("dataset", "detection", "seed"),
          lambda c: [runfiles.detections_path(c)], ("records",), "01_face_detection", SIX),
    Stage("recall", "reidlib.pipeline.rundir:stage_recall", ("dataset", "detection", "recall", "seed"),
          lambda c: [runfiles.recall_path(c)], ("detect",), "02_recall_estimation", SIX),
    Stage("anonymize", "reidlib.pipeline.rundir:stage_anonymize", ("dataset", "detection", "anonymization", "seed"),
          lambda c: [runfiles.anon_manifest(c)], ("detect",), "03_anonymization", SIX),
    Stage("audit", "reidlib.pipeline.rundir:stage_audit", ("dataset", "detection", "anonymization", "seed"),
          runfiles.audit_files, ("detect",), "03_anonymization", SIX),
    Stage("train", "reidlib.pipeline.rundir:stage_train", ("dataset", "seed", "recipe", "copy"),
          _model_files, ("records", "anonymize"), "04_training", SIX, job=True, each="variant model seed"),
    Stage("evaluate_model", "reidlib.pipeline.rundir:stage_evaluate_model",
          ("dataset", "seed", "detection", "anonymization", "recipe", "evaluation"),
          _results_files, ("train", "anonymize"), job=True, each="model seed"),
    Stage("evaluate", "reidlib.pipeline.rundir:stage_evaluate",
          ("dataset", "seed", "detection", "anonymization", "training", "models", "evaluation"),
          lambda c: [runfiles.evaluation_path(c)], ("evaluate_model",), "05_evaluation", SIX),
    Stage("decompose", "reidlib.analyses.decomposition:stage_decompose",
          ("dataset", "detection", "anonymization", "evaluation", "training", "models", "statistics", "seed"),
          lambda c: [runfiles.decomposition_summary_path(c)], ("evaluate_model", "detect"), "05_evaluation", SIX),
    Stage("statistics", "reidlib.pipeline.rundir:stage_statistics", ("statistics", "seed"),
          lambda c: [runfiles.statistics_path(c)], ("evaluate",), "06_statistics", SIX,
          data=lambda c: PAPER_TABLES + _results_table(c)),
    Stage("per_query", "reidlib.analyses.per_query:stage_per_query",
          ("dataset", "detection", "anonymization", "evaluation", "training", "models", "seed"),
          lambda c: [runfiles.per_query_path(c), runfiles.effects_path(c)] if _own_results(c) else [],
          ("evaluate_model", "audit", "anonymize"), "06_statistics", SIX),
    Stage("sweep", "reidlib.analyses.teaching:stage_sweep",
          ("teaching", "dataset", "detection", "anonymization", "training", "models", "evaluation", "seed"),
          lambda c: [runfiles.sweep_path(c), runfiles.model_controls_path(c)], (), "07_teaching", "Teaching",
          all_cores=True),
    Stage("attribution", "reidlib.analyses.attribution:stage_attribution",
          ("attribution", "teaching", "dataset", "detection", "anonymization", "training", "models", "seed"),
          lambda c: [runfiles.attribution_summary_path(c)], ("train", "sweep"), "08_where_models_look",
          "Beyond the paper"),
    Stage("privacy", "reidlib.analyses.privacy:stage_privacy",
          ("privacy", "dataset", "detection", "recall", "anonymization", "training", "evaluation", "teaching",
           "seed"),
          lambda c: [runfiles.privacy_points_path(c)], ("detect", "anonymize", "evaluate_model", "sweep"),
          "09_privacy", "Beyond the paper"),
    Stage("findings", "reidlib.analyses.findings:stage_findings", ("statistics", "teaching", "seed"),
          lambda c: [runfiles.findings_path(c)], ("evaluate", "sweep", "recall", "per_query", "decompose",
                                                        "attribution", "privacy"),
          "00_findings",
          "Findings", data=lambda c: PAPER_TABLES + ["data/paper/techniques_table_VIII.csv"] + _results_table(c)),
):
    register(_s)


# --------------------------------------------------------------------------- what a stage depends on
SPEED_ONLY = {"anonymization": ("processes",), "training": ("num_workers",)}  # change how fast, not what
# keys added after runs were made, left out of a stamp at the value that makes what those runs made
ADDED_AT = {"dataset": {"face_identity": "own", "visible": "all"}, "training": {"cpu_amp": False}}


def _section(cfg: Config, name: str) -> Any:
    """A config section as a stamp holds it: speed-only keys left out (in every model's section too)."""
    value = to_dict(getattr(cfg, name))
    if name == "models":
        return {m: {k: v for k, v in (sec or {}).items() if k not in SPEED_ONLY["training"]} for m, sec in value.items()}
    added = ADDED_AT.get(name, {})
    return {k: v for k, v in value.items() if k not in SPEED_ONLY.get(name, ()) and not (k in added and v == added[k])}


def _recipe(t) -> dict[str, Any]:
    added = ADDED_AT["training"]
    return {k: v for k, v in recipe(t).items() if k not in SPEED_ONLY["training"] and not (k in added and v == added[k])}


def conf(cfg: Config, name: str, model: str | None = None, variant: str | None = None) -> dict[str, Any]:
    """The configuration a stage's outputs depend on: the stamp its metadata records (a change rebuilds or
    refuses them) and the workflow's rerun trigger. `model` narrows `recipe` to one model's; `variant`
    'orig' drops `copy` (a model trained on the originals does not depend on the anonymization)."""
    out: dict[str, Any] = {}
    for s in stage(name).sections:
        if s == "seed":
            out["data_seed"] = cfg.seed
        elif s == "recipe":
            if model is not None:
                out["training"] = _recipe(trainings(cfg)[model])
            else:
                out["trainings"] = {m: _recipe(t) for m, t in trainings(cfg).items()}
        elif s == "copy":
            if variant != "orig":
                out.update(detection=_section(cfg, "detection"), anonymization=_section(cfg, "anonymization"))
            if variant is not None:
                out["variant"] = variant
        else:
            out[s] = _section(cfg, s)
    return out


def outputs(cfg: Config, name: str) -> list[Path]:
    """Every file stage `name` writes (for a per-run job: every run's)."""
    return list(stage(name).outputs(cfg))


def seed_all(seed: int) -> None:
    """Python's, NumPy's and (when loaded) torch's global generators set to `seed`: a stage starts from the
    same state whatever ran before it in the process."""
    import random
    import sys

    import numpy as np

    random.seed(seed)
    np.random.seed(seed % 2**32)
    if "torch" in sys.modules:
        sys.modules["torch"].manual_seed(seed)


def call(name: str, cfg: Config, progress: bool = True, **options: Any) -> Path:
    """Run one stage through its function, with the options (variant, model, seed) it takes, from a known
    random state (`seed_all`)."""
    fn = stage(name).function()
    seed_all(cfg.seed)
    accepted = inspect.signature(fn).parameters
    given = {"progress": progress, **{k: v for k, v in options.items() if v is not None}}
    unknown = sorted(k for k, v in options.items() if v is not None and k not in accepted)
    if unknown:
        raise ValueError(f"stage '{name}' takes no {', '.join('--' + k for k in unknown)}")
    return fn(cfg, **{k: v for k, v in given.items() if k in accepted})


# ------------------------------------------------------------------------------------- the book
def chapters() -> list[str]:
    """Every chapter notebook, in the book's order (by file name: 00_findings first)."""
    return sorted({s.notebook for s in STAGES.values() if s.notebook})


def chapter_stages(notebook: str) -> list[Stage]:
    """The stages a chapter shows."""
    return [s for s in STAGES.values() if s.notebook == notebook]


def chapter_threads(notebook: str, cores: int) -> int:
    """Threads of a chapter's job: every core for one that trains side by side (`Stage.all_cores`), else one."""
    return cores if any(s.all_cores for s in chapter_stages(notebook)) else 1


PAGE_READS = {"08_where_models_look": ("statistics",)}  # sections a chapter's page reads beyond its stages' (alpha)


def chapter_conf(cfg: Config, notebook: str) -> dict[str, Any]:
    """What a chapter's page depends on: the configuration of every stage it shows, and the sections its page
    reads itself (`PAGE_READS`)."""
    out = {s.name: conf(cfg, s.name) for s in chapter_stages(notebook)}
    if notebook in PAGE_READS:
        out["page"] = {s: _section(cfg, s) for s in PAGE_READS[notebook]}
    return out


def chapter_outputs(cfg: Config, notebook: str) -> list[Path]:
    """The files a chapter's notebook writes: those of the stages it computes (not the jobs it shows)."""
    return [p for s in chapter_stages(notebook) if not s.job for p in s.outputs(cfg)]


def chapter_inputs(cfg: Config, notebook: str) -> list[Path | str]:
    """The files a chapter's notebook reads that other rules make: the jobs it shows, the stages its
    stages need outside the chapter, and the project's data files they read."""
    mine = chapter_stages(notebook)
    names = {s.name for s in mine if not s.job}
    wanted = [s.name for s in mine if s.job] + [n for s in mine if not s.job for n in s.needs if n not in names]
    files: list[Path | str] = [p for n in dict.fromkeys(wanted) for p in outputs(cfg, n)]
    return files + [f for s in mine for f in s.data(cfg)]


ROOT_PAGE = "book/intro"
APPENDIX = (("Your data", ("book/your_data",)), ("Reference", ("book/paper_tables", "book/glossary")))


def toc() -> dict[str, Any]:
    """The book's table of contents (Jupyter Book's `_toc.yml`): the chapters in parts, then the book's own pages."""
    parts: dict[str, list[str]] = {}
    for nb in chapters():
        parts.setdefault(chapter_stages(nb)[0].part or "Chapters", []).append(f"notebooks/{nb}")
    parts.update({caption: list(pages) for caption, pages in APPENDIX})
    return {"format": "jb-book", "root": ROOT_PAGE,
            "parts": [{"caption": c, "chapters": [{"file": f} for f in files]} for c, files in parts.items()]}
