"""The paper's grid of runs (Section IV): datasets x models x {original, anonymized}, plus Table VIII.

A grid config is an ordinary run config with a `grid` section: `grid.datasets` maps each dataset
name to its dataset section (root, split file, ...); `grid.techniques` adds anonymization
techniques beyond `anonymization.technique`, trained and tested only for `grid.technique_models`
on `grid.technique_datasets` (BoT on Market1501 in the paper). Each (dataset, technique) is a
*unit*: a plain `Config` whose run directory is `<run_dir>/<dataset>`, so every stage function and
every file format of a single run applies unchanged. `synthetic` (generated, no root) may be a grid
dataset too, and `as_grid` turns a plain run config into a one-dataset grid. Pure configuration:
no torch, no I/O but the dataset roots' existence.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..core.config import Config, ConfigError, from_dict, merge, project_path, trainings
from ..core.runfiles import unit_root


@dataclass(frozen=True)
class Unit:
    """One (dataset, technique) of the grid: its config and the models it trains on anonymized data."""

    dataset: str
    technique: str
    config: Config
    models: tuple[str, ...]


def _base(data: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k != "grid"}


def as_grid(data: dict[str, Any]) -> dict[str, Any]:
    """A config mapping as a grid: unchanged when it has `grid.datasets`, else a one-dataset grid of
    its own dataset, which `grid.techniques` then apply to unless `grid.technique_datasets` says otherwise."""
    g = dict(data.get("grid") or {})
    if g.get("datasets"):
        return data
    section = dict(data.get("dataset") or {})
    name = section.pop("name", None) or "synthetic"
    g["datasets"] = {name: section}
    g.setdefault("technique_datasets", [name])
    return {**data, "grid": g}


def units(data: dict[str, Any], check_roots: bool = True) -> list[Unit]:
    """Every unit of a grid config (given as the merged mapping a config file and overrides make)."""
    cfg = from_dict(data)
    g = cfg.grid
    if not g.datasets:
        return [Unit(cfg.dataset.name, cfg.anonymization.technique, cfg, tuple(trainings(cfg)))]
    base = _base(data)
    run_dir = cfg.run_dir
    main_technique = cfg.anonymization.technique
    out = []
    for name, section in g.datasets.items():
        section = dict(section or {})
        det = section.pop("detection", {})  # a dataset's own detector settings (the paper's VIPeR)
        over = {"run_dir": str(unit_root(run_dir, name)), "dataset": {**section, "name": name}, "detection": det}
        unit_cfg = from_dict(merge(base, over))
        if check_roots and unit_cfg.dataset.name != "synthetic":
            root = project_path(unit_cfg.dataset.root)
            if not root.is_dir():
                raise ConfigError(f"grid.datasets.{name}.root: folder not found: {root}")
        models = tuple(trainings(unit_cfg))
        out.append(Unit(name, main_technique, unit_cfg, models))
        if name in g.technique_datasets:
            for t in g.techniques:
                if t == main_technique:
                    continue
                t_cfg = from_dict(merge(base, {**over, "anonymization": {"technique": t}}))
                out.append(Unit(name, t, t_cfg, tuple(m for m in models if m in g.technique_models)))
    _check_selectors(g, out)
    return out


def _check_selectors(g, out: list[Unit]) -> None:
    """Refuse `grid.techniques` whose selectors pick no job (datasets or models the grid does not have)."""
    if not g.techniques:
        return
    names = {u.dataset for u in out}
    stray = [d for d in g.technique_datasets if d not in names]
    if stray:
        raise ConfigError(f"config key grid.technique_datasets lists {', '.join(stray)}, not a dataset of this grid "
                          f"({', '.join(sorted(names))}): grid.techniques would run on none of them")
    trained = {m for u in out if u.dataset in g.technique_datasets for m in trainings(u.config)}
    if not set(g.technique_models) & trained:
        raise ConfigError(f"config key grid.technique_models = {list(g.technique_models)} names no model these "
                          f"datasets train ({', '.join(sorted(trained))}): grid.techniques would train nothing")


def unit(data: dict[str, Any], dataset: str | None = None, technique: str | None = None) -> Config:
    """The config of one unit (dataset and technique default to the run's own)."""
    for u in units(data, check_roots=False):
        if (dataset is None or u.dataset == dataset) and (technique is None or u.technique == technique):
            return u.config
    known = ", ".join(f"{u.dataset}/{u.technique}" for u in units(data, check_roots=False))
    g = from_dict(data).grid
    asked = f"{dataset or 'any dataset'}/{technique or 'its own technique'}"
    where = (f" (grid.techniques run only on grid.technique_datasets = {list(g.technique_datasets)})"
             if technique is not None and technique in g.techniques else "")
    raise ConfigError(f"no grid unit {asked}{where}; the grid has {known}")
