"""The teaching sweep (chapter 7): the generated world's face-identity knob turned, each point a run of its own.

Beyond the paper, which cannot choose how much identity its datasets' faces carry: at
`dataset.face_identity_share` 0 no identity needs its face (and each crop shows a face drawn at random, so
the face carries no identity: `teaching.negative_faces`), at 1 every identity has a twin in clothes and
only the face tells them apart. The sweep's ends are the book's controls.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from ..core.config import Config, derive, trainings
from ..core.runfiles import (
    finished,
    make_meta,
    meta_path,
    sweep_path,
    tree_digest,
    write_csv,
)
from ..pipeline import rundir, table
from ..stages import synthetic


def sweep_config(cfg: Config, share: float) -> Config:
    """The teaching sweep's run at one `face_identity_share`: generated data, `training.model` only.

    Its faces are the `easy_faces` preset (sharp, frontal, uncovered; the run's sizes): the sweep's ends
    are the controls, and a positive control needs every face it can show. At share 0 each crop's face is
    drawn at random (`teaching.negative_faces`): there the face carries no identity at all.
    """
    t = cfg.teaching
    faces = t.negative_faces if share == 0 else "own"
    folder = f"share_{share:.2f}" + ("" if faces == "own" else f"_{faces}_faces")  # its own world, its own folder
    return derive(cfg, cfg.run_path / "teaching" / folder,
                  dataset={"name": "synthetic", "root": "", "preset": "easy_faces", "face_identity_share": share,
                           "face_identity": faces,
                           "train_ids": t.train_ids, "test_ids": t.test_ids, "cameras": t.cameras},
                  training={"epochs": t.epochs, "lr_step": max(t.epochs - 1, 1)},
                  anonymization={"audit": False})


def stage_sweep(cfg: Config, progress: bool = True) -> Path:
    """Teaching chapter: the protocols at each face-identity share of the generated set (orig/orig and
    orig/anon; anon/anon too with `teaching.retrain`), every training seed."""
    out = sweep_path(cfg)
    conf = table.conf(cfg, "sweep")
    if finished(meta_path(out), conf, cfg.seed, [out], rebuild_stale=True):
        return out
    parts = []
    for share in cfg.teaching.shares:
        sub = sweep_config(cfg, share)
        rows = [pd.read_csv(rundir.stage_evaluate_model(sub, m, progress, s, retrain=cfg.teaching.retrain))
                for m, t in trainings(sub).items() for s in t.seeds]
        parts.append(pd.concat(rows, ignore_index=True).assign(face_identity_share=share))
    sweep = pd.concat(parts, ignore_index=True)
    write_csv(out, sweep, make_meta("teaching", conf, cfg.seed,
                                    tree_digest((str(s), hashlib.sha256(p.to_csv().encode()).hexdigest())
                                                for s, p in zip(cfg.teaching.shares, parts))))
    return out


def sweep_training(cfg: Config) -> pd.DataFrame:
    """The teaching sweep's last-epoch training accuracy per share and seed (trained on originals), beside
    `twin_ceiling`: the accuracy of a model that tells clothes apart but not faces (twins confused), and
    `seconds`: the trainings' measured time (both variants with `teaching.retrain`)."""
    rows = []
    for share in cfg.teaching.shares:
        sub = sweep_config(cfg, share)
        train = [i for i in synthetic.make_identities(sub.dataset, sub.seed) if i.split == "train"]
        twinned = sum(i.clothing_source != i.pid for i in train) * 2 / len(train)
        for seed in sub.training.seeds:
            log = pd.read_csv(rundir.stage_train(sub, "orig", progress=False, seed=seed) / "train_log.csv")
            anon = (pd.read_csv(rundir.stage_train(sub, "anon", progress=False, seed=seed) / "train_log.csv")
                    if cfg.teaching.retrain else log.iloc[:0])
            rows.append(dict(face_identity_share=share, seed=seed, accuracy=100 * float(log.accuracy.iloc[-1]),
                             twin_ceiling=100 * (1 - twinned / 2),
                             seconds=float(log.seconds.sum() + anon.seconds.sum())))
    return pd.DataFrame(rows)

