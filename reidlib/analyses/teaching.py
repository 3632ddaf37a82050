"""The teaching sweep (chapter 7): the generated world's face-identity knob turned, each point a run of its own.

Beyond the paper, which cannot choose how much identity its datasets' faces carry: at
`dataset.face_identity_share` 0 no identity needs its face (and each crop shows a face drawn at random, so
the face carries no identity: `teaching.negative_faces`), at 1 every identity has a twin in clothes and
only the face tells them apart. The sweep's ends are the book's controls.
"""
from __future__ import annotations

import hashlib
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd
from tqdm.auto import tqdm

from ..core.config import Config, derive, from_dict, to_dict, trainings
from ..core.runfiles import (
    finished,
    make_meta,
    meta_path,
    model_controls_path,
    sweep_path,
    tree_digest,
    write_csv,
)
from ..models.zoo import display_name
from ..pipeline import rundir, table
from ..stages import evaluation, synthetic


def sweep_config(cfg: Config, share: float) -> Config:
    """The teaching sweep's run at one `face_identity_share`: a generated world trained with the run's models,
    recipes and seeds (the controls test the run's instruments, not a smaller copy of them).

    Its faces are the `easy_faces` preset at `teaching.face_size` (sharp, frontal, uncovered, large enough to
    learn): the sweep's ends are the controls, and a positive control needs every face it can show. At share 0
    each crop's face is drawn at random (`teaching.negative_faces`): there the face carries no identity at all.
    `teaching.train_ids`, `test_ids`, `cameras` and `epochs` shrink the sweep when set (0: the run's own).
    """
    t = cfg.teaching
    faces = t.negative_faces if share == 0 else "own"
    folder = f"share_{share:.2f}" + ("" if faces == "own" else f"_{faces}_faces")  # its own world, its own folder
    size = {k: v for k, v in (("train_ids", t.train_ids), ("test_ids", t.test_ids), ("cameras", t.cameras)) if v}
    sub = derive(cfg, cfg.run_path / "teaching" / folder,
                 dataset={"name": "synthetic", "root": "", "preset": "easy_faces", "face_identity_share": share,
                          "face_identity": faces, "face_size": list(t.face_size), **size},
                 training={"epochs": t.epochs, "lr_step": max(t.epochs - 1, 1)} if t.epochs else {},
                 anonymization={"audit": False})
    if not cfg.models:
        return sub
    data = to_dict(sub)  # the run's other models, each with its own recipe (epochs shortened alike when asked)
    data["models"] = {m: {**dict(section or {}), **({"epochs": t.epochs} if t.epochs else {})}
                      for m, section in cfg.models.items()}
    return from_dict(data)


def model_control_config(cfg: Config, visible: str) -> Config:
    """A model-level control: the positive control's world (the sweep's highest share) as `visible` shows it
    (face_only or face_blind), trained with the run's models on the first `teaching.model_control_seeds` seeds."""
    top = sweep_config(cfg, max(cfg.teaching.shares))
    data = to_dict(top)
    data["run_dir"] = str(Path(top.run_dir).with_name(f"{Path(top.run_dir).name}_{visible}"))
    data["dataset"]["visible"] = visible
    n = cfg.teaching.model_control_seeds
    data["training"]["seeds"] = list(top.training.seeds[:n])
    data["models"] = {m: {**dict(sec or {}), "seeds": list(trainings(top)[m].seeds[:n])}
                      for m, sec in (data.get("models") or {}).items()}
    return from_dict(data)


def _train_one(job: tuple[Config, str, str, int, bool]) -> str:
    """One training of the sweep on one torch thread (the main run's train jobs' setting: the same weights
    whether the sweep runs its trainings side by side or one after another), then, when asked, its orig/orig and
    orig→anon evaluation on the same thread (side by side too); the thread count is restored."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    sub, variant, model, seed, evaluate = job
    try:
        out = rundir.stage_train(sub, variant, model, progress=False, seed=seed)
        if evaluate:
            rundir.stage_evaluate_model(sub, model, False, seed, retrain=False)
        return str(out)
    finally:
        torch.set_num_threads(before)


def train_sweep(cfg: Config, progress: bool = True) -> None:
    """Every training of the sweep: each world's data and anonymized copy made first (one process), then the
    trainings side by side, each followed by its evaluation (unless `teaching.retrain`), one torch thread each, as
    many at once as the stage has threads (on CUDA one at a time)."""
    import multiprocessing

    import torch

    jobs = []
    retrain = cfg.teaching.retrain  # anon/anon needs both trainings of a seed: evaluated after the pool
    for share in cfg.teaching.shares:
        sub = sweep_config(cfg, share)
        rundir.stage_records(sub)
        rundir.stage_anonymize(sub, progress=False)  # before the pool: its workers only read the copy
        variants = ("orig", "anon") if retrain else ("orig",)
        jobs += [(sub, v, m, s, not retrain) for v in variants for m, t in trainings(sub).items() for s in t.seeds]
    for visible in cfg.teaching.model_controls:
        sub = model_control_config(cfg, visible)
        rundir.stage_records(sub)
        rundir.stage_anonymize(sub, progress=False)
        jobs += [(sub, "orig", m, s, True) for m, t in trainings(sub).items() for s in t.seeds]
    workers = 1 if torch.cuda.is_available() else max(1, min(len(jobs), torch.get_num_threads()))
    bar = tqdm(total=len(jobs), desc="sweep trainings", unit="run", disable=not progress)
    if workers == 1:
        for job in jobs:
            _train_one(job)
            bar.update()
    else:
        ctx = multiprocessing.get_context("spawn")  # a fresh interpreter: no torch thread pool forked mid-use
        with ProcessPoolExecutor(workers, mp_context=ctx) as pool:
            for _ in pool.map(_train_one, jobs):
                bar.update()
    bar.close()


def stage_sweep(cfg: Config, progress: bool = True) -> Path:
    """Teaching chapter: the protocols at each face-identity share of the generated set (orig/orig and
    orig/anon; anon/anon too with `teaching.retrain`), every model and training seed of the run."""
    out = sweep_path(cfg)
    conf = table.conf(cfg, "sweep")
    if finished(meta_path(out), conf, cfg.seed, [out, model_controls_path(cfg)], rebuild_stale=True):
        return out
    train_sweep(cfg, progress)
    parts = []
    for share in cfg.teaching.shares:
        sub = sweep_config(cfg, share)
        rows = [pd.read_csv(rundir.stage_evaluate_model(sub, m, False, s, retrain=cfg.teaching.retrain))
                for m, t in trainings(sub).items() for s in t.seeds]
        parts.append(pd.concat(rows, ignore_index=True).assign(face_identity_share=share))
    sweep = pd.concat(parts, ignore_index=True)
    controls = model_controls(cfg)
    meta = make_meta("teaching", conf, cfg.seed,
                     tree_digest([(str(s), hashlib.sha256(p.to_csv().encode()).hexdigest())
                                  for s, p in zip(cfg.teaching.shares, parts)]
                                 + [("model controls", hashlib.sha256(controls.to_csv().encode()).hexdigest())]))
    write_csv(model_controls_path(cfg), controls, meta)
    write_csv(out, sweep, meta)  # last: its stamp says both are done
    return out


MODEL_CONTROL_COLUMNS = ["visible", "model", "seed", "orig_orig", "orig_anon", "drop", "floor", "accuracy"]


def model_controls(cfg: Config) -> pd.DataFrame:
    """Each model-level control's orig/orig and orig→anon mAP per model and seed, the drop, the world's random
    ranking floor and the last epoch's training accuracy (models trained on the masked originals)."""
    rows = []
    for visible in cfg.teaching.model_controls:
        sub = model_control_config(cfg, visible)
        floor = evaluation.random_ranking_map(rundir.records(sub), sub.seed)
        for m, t in trainings(sub).items():
            for seed in t.seeds:
                res = pd.read_csv(rundir.stage_evaluate_model(sub, m, False, seed, retrain=False)).set_index("protocol")
                log = pd.read_csv(rundir.stage_train(sub, "orig", m, progress=False, seed=seed) / "train_log.csv")
                oo, oa = float(res.loc["orig_orig", "mAP"]), float(res.loc["orig_anon", "mAP"])
                rows.append(dict(visible=visible, model=display_name(m), seed=seed, orig_orig=oo, orig_anon=oa,
                                 drop=oo - oa, floor=floor, accuracy=100 * float(log.accuracy.iloc[-1])))
    return pd.DataFrame(rows, columns=MODEL_CONTROL_COLUMNS)


def sweep_training(cfg: Config) -> pd.DataFrame:
    """The teaching sweep's last-epoch training accuracy per share, model and seed (trained on originals), beside
    `twin_ceiling`: the accuracy of a model that tells clothes apart but not faces (twins confused), and
    `seconds`: the trainings' measured time (both variants with `teaching.retrain`)."""
    rows = []
    for share in cfg.teaching.shares:
        sub = sweep_config(cfg, share)
        train = [i for i in synthetic.make_identities(sub.dataset, sub.seed) if i.split == "train"]
        twinned = sum(i.clothing_source != i.pid for i in train) * 2 / len(train)
        for model, t in trainings(sub).items():
            for seed in t.seeds:
                log = pd.read_csv(rundir.stage_train(sub, "orig", model, progress=False, seed=seed) / "train_log.csv")
                anon = (pd.read_csv(rundir.stage_train(sub, "anon", model, progress=False, seed=seed) / "train_log.csv")
                        if cfg.teaching.retrain else log.iloc[:0])
                rows.append(dict(face_identity_share=share, model=display_name(model), seed=seed,
                                 accuracy=100 * float(log.accuracy.iloc[-1]), twin_ceiling=100 * (1 - twinned / 2),
                                 seconds=float(log.seconds.sum() + anon.seconds.sum())))
    return pd.DataFrame(rows)

