"""Per-query analysis of the anonymization effect (beyond the paper's Section IV-B averages).

For each query, the change in average precision when the gallery and query are anonymized
(orig/orig -> orig/anon, the same trained model), beside what the pipeline knows about that
image: the true face's size, the detector's score, a back-of-head crop, a missed face, and the
residual-face audit's hits. Which queries lose most, with bootstrap intervals per group.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..core.config import Config, trainings
from ..core.registry import display_name
from ..core.runfiles import (
    effects_path,
    file_sha256,
    fingerprint_files,
    finished,
    make_meta,
    meta_path,
    model_query_ap_path,
    per_query_path,
    tree_digest,
    variant_root,
    write_csv,
)
from ..pipeline import rundir, table

COLUMNS = ["model", "image", "pid", "camid", "ap_orig", "ap_anon", "delta_ap", "has_face", "face_width",
           "detected", "det_score", "missed", "audit_hits"]


def query_covariates(queries: pd.DataFrame, truth: pd.DataFrame | None, dets: pd.DataFrame,
                     residual: pd.DataFrame | None, technique: str) -> pd.DataFrame:
    """Per query image: true face (and its width), detected (and best score), missed, audit hits.

    Without ground truth (a real dataset) `has_face`, `face_width` and `missed` are NaN; without the
    audit, `audit_hits` is NaN. `missed`: a true face and no detector box on the image.
    """
    out = queries[["image", "pid", "camid"]].copy()
    found = dets[dets.source != "default_box"] if "source" in dets.columns else dets
    best = found.groupby("image").score.max()
    out["detected"] = out.image.isin(best.index)
    out["det_score"] = out.image.map(best).fillna(0.0).astype(float)
    if truth is not None:
        width = (truth.x1 - truth.x0).groupby(truth.image).max()
        out["has_face"] = out.image.isin(width.index)
        out["face_width"] = out.image.map(width).astype(float)
        out["missed"] = out.has_face & ~out.detected
    else:
        out["has_face"] = np.nan
        out["face_width"] = np.nan
        out["missed"] = np.nan
    if residual is not None:
        hits = residual[residual.technique == technique].groupby("image").size()
        out["audit_hits"] = out.image.map(hits).fillna(0).astype(int)
    else:
        out["audit_hits"] = np.nan
    return out


def stage_per_query(cfg: Config) -> Path:
    """Per-query AP under orig/orig and orig/anon for every model (the mean over its training seeds), with
    each query's covariates;
    `effects.csv` beside it holds the per-group means with bootstrap intervals (`effects`)."""
    out = per_query_path(cfg)
    conf = table.conf(cfg, "per_query")
    if finished(meta_path(out), conf, cfg.seed, [out, effects_path(cfg)], rebuild_stale=True):
        return out
    recs = rundir.records(cfg)
    anon = rundir.stage_anonymize(cfg, progress=False)
    audit = rundir.stage_audit(cfg, progress=False)
    residual = pd.read_csv(audit) if audit is not None else None
    queries = recs[recs.split == "query"]
    cov = query_covariates(queries, rundir.ground_truth(cfg), rundir.load_detections(cfg), residual,
                           cfg.anonymization.technique)
    parts = []
    for model, tcfg in trainings(cfg).items():  # each query's AP averaged over the training seeds, as stage 5 took it
        seeds = []
        for s in tcfg.seeds:
            rundir.stage_evaluate_model(cfg, model, False, s)
            ap = pd.read_csv(model_query_ap_path(cfg, model, s)).pivot(index="image", columns="protocol", values="ap")
            seeds.append(ap.reindex(queries.image)[["orig_orig", "orig_anon"]].to_numpy())
        ap = np.mean(seeds, axis=0)
        parts.append(cov.assign(model=model, ap_orig=ap[:, 0], ap_anon=ap[:, 1], delta_ap=ap[:, 1] - ap[:, 0]))
    rows = pd.concat(parts, ignore_index=True)[COLUMNS]
    fp = tree_digest([("orig", fingerprint_files(variant_root(cfg, "orig"))), ("anon", fingerprint_files(anon)),
                      *((f"{m}/{s}", file_sha256(model_query_ap_path(cfg, m, s))) for m, s in table.model_seeds(cfg))])
    meta = make_meta("per_query", conf, cfg.seed, fp)
    write_csv(effects_path(cfg), effects(rows, cfg.seed), meta)
    write_csv(out, rows, meta)
    return out


def _groups(table: pd.DataFrame) -> list[tuple[str, str, pd.Series]]:
    """The factors the analysis splits queries by: (factor, level, mask)."""
    out = []
    if table.has_face.notna().any():
        has = table.has_face.astype(bool)
        out += [("face", "face visible", has), ("face", "back of the head", ~has)]
        faces = table[has]
        if len(faces) >= 2:
            cut = float(faces.face_width.median())
            out += [("face size", f"width <= {cut:g} px", has & (table.face_width <= cut)),
                    ("face size", f"width > {cut:g} px", has & (table.face_width > cut))]
        missed = table.missed.astype(bool)
        out += [("detection", "face detected", has & ~missed), ("detection", "face missed", has & missed)]
    det = table[table.detected.astype(bool)]
    if len(det) >= 2:
        cut = float(det.det_score.median())
        out += [("detector score", f"score <= {cut:.2f}", table.detected.astype(bool) & (table.det_score <= cut)),
                ("detector score", f"score > {cut:.2f}", table.detected.astype(bool) & (table.det_score > cut))]
    if table.audit_hits.notna().any():
        hits = table.audit_hits.fillna(0) > 0
        out += [("residual-face audit", "face found again", hits), ("residual-face audit", "none found", ~hits)]
    return out


def effects(table: pd.DataFrame, seed: int = 0, n_resamples: int = 2000) -> pd.DataFrame:
    """Mean change in AP (anon minus orig, points) per model and query group, with a bootstrap 95% interval.

    scipy.stats.bootstrap (percentile, seeded); groups with fewer than 3 queries or no spread get no
    interval, and `why_not_shown` says why.
    """
    rows = []
    t = table.dropna(subset=["delta_ap"])
    for model, m in t.groupby("model", sort=False):
        for factor, level, mask in _groups(m):
            d = m.loc[mask, "delta_ap"].to_numpy(float)
            row = {"model": model, "factor": factor, "level": level, "queries": len(d),
                   "mean_delta_ap": float(np.mean(d)) if len(d) else float("nan"),
                   "ci_low": float("nan"), "ci_high": float("nan"), "why_not_shown": ""}
            if len(d) < 3:
                row["why_not_shown"] = f"{len(d)} quer{'y' if len(d) == 1 else 'ies'}: an interval needs at least 3"
            elif np.ptp(d) == 0:
                row["why_not_shown"] = f"all {len(d)} changes equal: zero variance"
            else:
                ci = stats.bootstrap((d,), np.mean, confidence_level=0.95, n_resamples=n_resamples,
                                     method="percentile", random_state=np.random.default_rng(seed)).confidence_interval
                row.update(ci_low=float(ci.low), ci_high=float(ci.high))
            rows.append(row)
    return pd.DataFrame(rows, columns=["model", "factor", "level", "queries", "mean_delta_ap", "ci_low", "ci_high",
                                       "why_not_shown"])


def biggest_losers(table: pd.DataFrame, k: int = 8) -> pd.DataFrame:
    """The k queries (any model) whose AP falls most under anonymization, largest loss first."""
    t = table.dropna(subset=["delta_ap"])
    return t[t.delta_ap < 0].nsmallest(k, "delta_ap").reset_index(drop=True)


def describe_effects(eff: pd.DataFrame, factor: str = "face") -> str:
    """Sentences on one factor's groups: mean change in AP with its interval, or why none is given."""
    rows = eff[eff.factor == factor]
    if rows.empty:
        return f"This run has no queries to split by {factor}."
    parts = []
    for r in rows.itertuples():
        n = f"{r.queries} quer{'y' if r.queries == 1 else 'ies'}"
        ci = (f" (no interval: {r.why_not_shown})" if r.why_not_shown
              else f" (95% interval {r.ci_low:.1f} to {r.ci_high:.1f})")
        name = display_name(r.model)  # the table keeps the registry id; readers see the paper's name
        parts.append(f"{name}, {r.level}: AP changes by {r.mean_delta_ap:+.1f} points on average over {n}{ci}.")
    return " ".join(parts)


def plot_effects(eff: pd.DataFrame):
    """Mean change in AP per query group (bootstrap 95% interval), one panel per model."""
    import matplotlib.pyplot as plt

    models = list(dict.fromkeys(eff.model))
    fig, axes = plt.subplots(1, len(models), figsize=(4.2 * len(models), 0.5 + 0.32 * eff.groupby("model").size().max()),
                             squeeze=False, sharey=True)
    for ax, model in zip(axes[0], models):
        e = eff[eff.model == model].reset_index(drop=True)
        labels = [f"{r.factor}: {r.level} (n={r.queries})" for r in e.itertuples()]
        y = np.arange(len(e))
        ok = e.why_not_shown.fillna("") == ""
        ax.errorbar(e.mean_delta_ap[ok], y[ok], xerr=[e.mean_delta_ap[ok] - e.ci_low[ok], e.ci_high[ok] - e.mean_delta_ap[ok]],
                    fmt="o", capsize=3, color="black")
        ax.plot(e.mean_delta_ap[~ok], y[~ok], "x", color="grey")
        ax.set_yticks(y, labels, fontsize=7)
        ax.axvline(0, color="black", linewidth=0.8)
        ax.set_title(model, fontsize=9)
    axes[0, 0].invert_yaxis()  # shared y: the first group on top
    fig.supxlabel("change in AP, anonymized minus original (points)", fontsize=9)
    fig.tight_layout()
    return fig


def loser_gallery(losers: pd.DataFrame, orig_root: Path, anon_root: Path):
    """The biggest losers' query crops, original above anonymized, titled with model and change in AP."""
    import cv2

    from ..book import plots
    from ..core.images import read_image

    def rgb(path):
        return cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)

    if losers.empty:
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(4, 0.8))
        ax.axis("off")
        ax.text(0.5, 0.5, "no query loses AP under anonymization", ha="center", va="center")
        return fig

    rows = {"original": [rgb(Path(orig_root) / i) for i in losers.image],
            "anonymized": [rgb(Path(anon_root) / i) for i in losers.image]}
    titles = [f"{m}\n{d:+.0f}" for m, d in zip(losers.model, losers.delta_ap)]
    return plots.image_rows(rows, titles)


EFFECT_COLUMNS = ["model", "factor", "level", "queries", "mean_delta_ap", "ci_low", "ci_high", "why_not_shown"]


def applies(cfg: Config) -> bool:
    """Whether the per-query analysis runs: it needs this run's own models, so not for a results table
    given in `statistics.results`."""
    return not cfg.statistics.results


def load(cfg: Config) -> tuple[pd.DataFrame, pd.DataFrame]:
    """This run's per-query table and per-group effects (`stage_per_query`, computed on first use), or two
    empty tables with their columns where the analysis does not apply (`applies`)."""
    if not applies(cfg):
        return pd.DataFrame(columns=COLUMNS), pd.DataFrame(columns=EFFECT_COLUMNS)
    path = stage_per_query(cfg)
    return pd.read_csv(path), pd.read_csv(effects_path(cfg)).fillna({"why_not_shown": ""})
