"""One pipeline stage from the command line: what each workflow job runs in its own process.

    python -m reidlib train --params runs/default/params/04_training.yaml --variant anon --model bot
    python -m reidlib evaluate_model --config config/default.yaml --model hacnn
    python -m reidlib train --config config/paper.yaml --dataset cuhk03 --variant orig --model bot

`--params` is the YAML a workflow writes for papermill (`config_file`, `settings`); `--config` a
config file. `--dataset` / `--technique` pick one unit of a grid config (`reidlib.grid`); `collect`
gathers a grid's results and statistics. The stage's output path is printed.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from .core import config, runfiles
from .pipeline import grid, rundir, table
from .stages import datasets

# errors that name what is wrong: printed as one line each, no traceback (exit 2; --debug shows it)
USER_ERRORS = (config.ConfigError, datasets.DatasetError, runfiles.StaleOutputError, runfiles.BusyOutputError,
               runfiles.ForeignFilesError,
               FileNotFoundError, FileExistsError, ValueError, RuntimeError)


def unit_config(data: dict, dataset: str | None, technique: str | None) -> config.Config:
    """The config a stage runs under: the run's own, or (`--dataset` / `--technique`) one unit of its grid, a
    plain run config read as the one-dataset grid `workflow/grid.smk` makes of it."""
    if dataset is None and technique is None:
        return grid.unit(data)
    return grid.unit(grid.as_grid(data), dataset, technique)


def main(argv: list[str] | None = None) -> Path:
    """Run one stage; a user error is printed as one line per problem and exits with status 2."""
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    try:
        return _main(argv)
    except USER_ERRORS as e:
        if debug:
            raise
        for line in str(e).splitlines() or [type(e).__name__]:
            print(f"error: {line}", file=sys.stderr)
        raise SystemExit(2) from None


def _main(argv: list[str] | None = None) -> Path:
    ap = argparse.ArgumentParser(prog="python -m reidlib", description=__doc__.splitlines()[0])
    ap.add_argument("stage", choices=sorted([*table.STAGES, "collect"]), help="a stage of the stage table "
                    "(reidlib.pipeline.table), or collect (a grid's results)")
    ap.add_argument("--config", default=None, help="a config file (default: the built-in defaults)")
    ap.add_argument("--params", default=None, help="a papermill parameters file: config_file + settings")
    ap.add_argument("--variant", default=None, choices=list(runfiles.VARIANTS), help="train: the dataset variant (orig by default)")
    ap.add_argument("--model", default=None, help="training.model by default, or one of the config's models")
    ap.add_argument("--seed", default=None, type=int, help="a training seed (train, evaluate_model): the first of training.seeds by default")
    ap.add_argument("--dataset", default=None, help="a grid config's dataset")
    ap.add_argument("--technique", default=None, help="a grid config's anonymization technique")
    ap.add_argument("--progress", action="store_true", help="show progress bars")
    ap.add_argument("--debug", action="store_true", help="show the traceback of an error")
    a = ap.parse_args(argv)
    settings, config_file = {}, a.config
    if a.params:
        if not Path(a.params).is_file():
            raise FileNotFoundError(f"parameters file not found: {a.params}")
        p = yaml.safe_load(Path(a.params).read_text()) or {}
        settings, config_file = p.get("settings") or {}, p.get("config_file") or config_file
    data = config.load_data(config_file or None, settings)
    if a.stage == "collect":
        out = rundir.collect_grid(grid.units(data), config.from_dict(data))
        print(out)
        return out
    cfg = unit_config(data, a.dataset, a.technique)
    if a.model is not None and a.model not in config.trainings(cfg):
        ap.error(f"model '{a.model}' is not trained by this config; it trains {', '.join(config.trainings(cfg))}")
    if a.seed is not None:
        seeds = config.trainings(cfg)[a.model or cfg.training.model].seeds
        if a.seed not in seeds:
            ap.error(f"seed {a.seed} is not one of this config's training seeds {seeds}")
    out = table.call(a.stage, cfg, a.progress, variant=a.variant, model=a.model, seed=a.seed)
    print(out)
    return out


if __name__ == "__main__":
    main()
