"""Detector recall estimation (paper Section III-A): exact recall/precision against ground truth.

The paper estimated recall by eye on samples (about 90% on Market1501); here, where ground truth
exists, detections are matched one-to-one to true faces at an IoU threshold, and every rate comes
with Wilson and Clopper-Pearson 95% intervals (scipy.stats.binomtest).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from ..core.boxes import BOX, iou_matrix


@dataclass(frozen=True)
class Rate:
    """A proportion k/n with its 95% intervals."""

    k: int
    n: int
    value: float
    wilson: tuple[float, float]
    clopper_pearson: tuple[float, float]


def rate(k: int, n: int, confidence: float = 0.95) -> Rate:
    """Proportion k/n with Wilson and Clopper-Pearson (exact) intervals; NaN when n == 0."""
    if n == 0:
        nan = float("nan")
        return Rate(k, n, nan, (nan, nan), (nan, nan))
    res = stats.binomtest(int(k), int(n))
    w = res.proportion_ci(confidence, method="wilson")
    cp = res.proportion_ci(confidence, method="exact")
    return Rate(int(k), int(n), k / n, (float(w.low), float(w.high)),
                (float(cp.low), float(cp.high)))


def match(truth: pd.DataFrame, dets: pd.DataFrame, iou: float = 0.5) -> pd.DataFrame:
    """Greedy one-to-one matching per image, highest score first; one row per true face.

    Returns `truth` with columns `matched` (bool) and `iou` (best matched IoU, 0 when missed).
    """
    out = truth.copy()
    out["matched"] = False
    out["iou"] = 0.0
    det_groups = {k: g for k, g in dets.groupby("image")}
    for image, g in out.groupby("image"):
        d = det_groups.get(image)
        if d is None or d.empty:
            continue
        d = d.sort_values("score", ascending=False)
        m = iou_matrix(d[BOX].to_numpy(), g[BOX].to_numpy())
        taken: set[int] = set()
        for i in range(len(d)):
            cand = [(m[i, j], j) for j in range(len(g)) if j not in taken and m[i, j] >= iou]
            if cand:
                best, j = max(cand)
                taken.add(j)
                out.loc[g.index[j], ["matched", "iou"]] = [True, best]
    return out


def _rates(matched: pd.DataFrame, groups: pd.Series, confidence: float, key: str) -> list[dict]:
    """Recall with its Wilson interval per group of true faces (`key` names the group column)."""
    rows = []
    for label, g in matched.groupby(groups, observed=True, sort=True):
        r = rate(int(g.matched.sum()), len(g), confidence)
        rows.append({key: str(label), "faces": r.n, "detected": r.k, "recall": r.value,
                     "wilson_low": r.wilson[0], "wilson_high": r.wilson[1]})
    return rows


# how a generated face is seen (face_boxes.csv's condition columns) -> (label when not, label when so,
# the value from which it is so: blurred means a Gaussian sigma of at least 0.5 px)
CONDITIONS = {"profile": ("frontal", "profile", 1), "occluded": ("uncovered", "partly covered", 1),
              "blur": ("sharp", "blurred", 0.5)}


def evaluate(truth: pd.DataFrame, dets: pd.DataFrame, iou: float = 0.5,
             confidence: float = 0.95) -> dict:
    """Recall, precision, and recall by face width and (where the truth records how each face is
    seen: profile, partly covered, blurred) by condition, of `dets` (detector rows only) against `truth`."""
    dets = dets[dets.get("source", "detector") == "detector"] if "source" in dets else dets
    matched = match(truth, dets, iou)
    k = int(matched.matched.sum())
    width = matched.x1 - matched.x0
    bins = pd.cut(width, bins=[0, 7, 10, 13, 16, 20, 1000], right=True,
                  labels=["<=7", "8-10", "11-13", "14-16", "17-20", ">20"])
    by_condition = []
    for col, (no, yes, least) in CONDITIONS.items():
        if col in truth:
            flag = truth[col].astype(float).to_numpy() >= least
            if flag.any() and not flag.all():  # both sides present: the sentence compares pairs
                labels = pd.Categorical(np.where(flag, yes, no), categories=[no, yes])
                by_condition += _rates(matched, pd.Series(labels, index=matched.index), confidence, "condition")
    return {"recall": rate(k, len(truth), confidence).__dict__,
            "precision": rate(k, len(dets), confidence).__dict__,
            "iou_threshold": iou, "faces": len(truth), "detections": len(dets),
            "by_face_width": _rates(matched, bins, confidence, "face_width"),
            "by_condition": by_condition}


def paper_estimates(confidence: float = 0.95) -> pd.DataFrame:
    """The paper's by-eye recall estimates as k/n with intervals (Section III-A)."""
    cases = [("CUHK03, first 1000 images, < 20 misses", 1000 - 20, 1000),
             ("Airport gallery, 500 inspected, ~40 misses", 500 - 40, 500),
             ("Airport query, 1003 images, ~100 misses", 1003 - 100, 1003)]
    rows = []
    for name, k, n in cases:
        r = rate(k, n, confidence)
        rows.append(dict(sample=name, detected=k, inspected=n, recall=r.value,
                         wilson_low=r.wilson[0], wilson_high=r.wilson[1],
                         cp_low=r.clopper_pearson[0], cp_high=r.clopper_pearson[1]))
    return pd.DataFrame(rows)


INSPECTION_COLUMNS = ["number", "image", "split", "pid", "camid", "detections", "face_visible",
                      "detected_correctly", "notes"]


def inspection_sample(records: pd.DataFrame, n: int, seed: int = 0) -> pd.DataFrame:
    """`n` images drawn without replacement, stratified by camera (largest-remainder allocation).

    For recall by inspection where no ground truth exists, as the paper did (Section III-A), but
    drawn at random rather than "the first 1000", so that the estimate is unbiased.
    """
    n = min(n, len(records))
    sizes = records.camid.value_counts().sort_index()
    exact = sizes / sizes.sum() * n
    alloc = np.floor(exact).astype(int)
    alloc[(exact - alloc).sort_values(ascending=False).index[: n - alloc.sum()]] += 1
    rng = np.random.default_rng(seed)
    parts = [g.iloc[np.sort(rng.choice(len(g), alloc[cam], replace=False))] for cam, g in records.groupby("camid")]
    return pd.concat(parts).reset_index(drop=True)


def inspection_template(sample: pd.DataFrame, dets: pd.DataFrame) -> pd.DataFrame:
    """The sheet a person fills in: one numbered row per sampled image, answers left blank (y / n)."""
    count = dets.groupby("image").size()
    out = sample[["image", "split", "pid", "camid"]].copy()
    out.insert(0, "number", np.arange(1, len(out) + 1))
    out["detections"] = out.image.map(count).fillna(0).astype(int)
    out["face_visible"] = ""
    out["detected_correctly"] = ""
    out["notes"] = ""
    return out[INSPECTION_COLUMNS]


def recall_from_inspection(sheet: pd.DataFrame, confidence: float = 0.95) -> Rate:
    """Recall from a filled-in sheet: faces detected correctly among the images where a face is visible.

    Every answer must be y or n (detected_correctly only where a face is visible); anything else is
    an error naming the row's number.
    """
    def yes(col: str, rows: pd.DataFrame) -> pd.Series:
        v = rows[col].fillna("").astype(str).str.strip().str.lower()
        bad = rows.number[~v.isin(["y", "n"])]
        if len(bad):
            raise ValueError(f"column {col} must be y or n; rows {bad.tolist()[:10]} are not")
        return v == "y"

    visible = sheet[yes("face_visible", sheet)]
    found = yes("detected_correctly", visible)
    return rate(int(found.sum()), len(visible), confidence)
