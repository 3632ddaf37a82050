"""Sentences of the book whose wording depends on counts and conditions, built here where tests reach
them (the chapters only glue them): numbers come from results files, words agree with the counts.
"""
from __future__ import annotations

from typing import Any, Sequence

import pandas as pd

from ..core import registry


def plural(n: int, word: str, many: str | None = None) -> str:
    """'1 seed', '3 seeds', '0 seeds' (an irregular plural given): a count and its noun agreeing."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'no faces', '1 face', '3 faces' (an irregular plural given)."""
    many = plural or f"{noun}s"
    return f"no {many}" if n == 0 else f"{n} {noun if n == 1 else many}"


def _signed(points: float, digits: int, down: str, up: str, still: str) -> str:
    """`down`/`up` 'by x points' as the change is a loss or a gain; `still` when it rounds to zero."""
    if round(abs(points), digits) == 0:
        return still
    return f"{down if points > 0 else up} by {abs(points):.{digits}f} points"


def lowers(points: float, what: str, digits: int = 1) -> str:
    """'lowers mAP by 1.2 points', 'raises mAP by 0.4 points' (a negative loss), or 'leaves mAP unchanged'."""
    return _signed(points, digits, f"lowers {what}", f"raises {what}", f"leaves {what} unchanged")


def drops(points: float, digits: int = 1) -> str:
    """'drops by 1.2 points', 'rises by 0.4 points' (a negative drop), or 'is unchanged' (rounding to zero)."""
    return _signed(points, digits, "drops", "rises", "is unchanged")


def listing(names: Sequence[str]) -> str:
    """'A', 'A and B', 'A, B and C'."""
    names = list(names)
    return " and ".join(names) if len(names) < 3 else f"{', '.join(names[:-1])} and {names[-1]}"


def recall_sentence(result: dict[str, Any]) -> str:
    """Chapter 2: recall and precision against ground truth, with the Wilson interval (paper Section III-A)."""
    rec, prec = result["recall"], result["precision"]
    if rec["n"] == 0:
        return "This dataset has no visible true faces, so recall is not defined here."
    lo, hi = rec["wilson"]
    found = "all of them were" if rec["k"] == rec["n"] else ("none was" if rec["k"] == 0 else f"{rec['k']} were")
    text = (f"Of {count(rec['n'], 'true face')}, {found} found at IoU >= {result['iou_threshold']}: "
            f"recall {100 * rec['value']:.1f}% (Wilson 95% interval {100 * lo:.1f}-{100 * hi:.1f}%)")
    if prec["n"]:
        text += f", precision {100 * prec['value']:.1f}% of {count(prec['n'], 'detection')}"
    return text + "."


def inspection_sentence(crops: int, share_detected: float) -> str:
    """Chapter 2 without ground truth: what to inspect, and what can be counted meanwhile."""
    if crops == 0:
        return ("This dataset has no ground-truth face boxes, and the inspection sample is empty: set "
                "`recall.inspect` to the number of crops to draw.")
    return ("This dataset has no ground-truth face boxes, so its recall is estimated by inspection, as the paper "
            f"did, but on a random sample drawn by camera: {count(crops, 'crop')}, numbered in "
            "`recall/inspection_template.csv`" + (", the first of them below with their detections" if crops > 1
                                                  else ", shown below with its detections") +
            ". Mark each row's `face_visible` and `detected_correctly` (y / n) and set `recall.inspection_file` "
            f"to the filled sheet. What can be counted meanwhile: {100 * share_detected:.1f}% of its crops "
            "hold at least one detection.")


def training_summary(logs: pd.DataFrame, trainings: dict[str, Any]) -> str:
    """Chapter 4: one line per model (epochs, seeds, input size, speed, last-epoch accuracy per variant:
    the mean over seeds, and their standard deviation when there are several)."""
    lines = []
    for m, g in logs.groupby("model", sort=False):
        t = trainings[m]
        if "seed" not in g:
            g = g.assign(seed=0)
        last = (g[g.epoch == g.epoch.max()] if "epoch" in g else g).groupby("variant").accuracy
        mean, sd, n = last.mean(), last.std(), last.count()

        def acc(v: str) -> str:
            spread = f" ± {100 * sd[v]:.1f}" if n[v] > 1 else ""
            return f"{100 * mean[v]:.1f}%{spread} ({'original' if v == 'orig' else 'anonymized'})"

        seeds = g.seed.nunique()
        h, w = registry.input_size(m, t.image_size) if m in registry.MODELS else t.image_size  # HACNN: its own
        lines.append(f"- **{registry.display_name(m)}**: {count(t.epochs, 'epoch')} per variant and seed "
                     f"({count(seeds, 'seed')}) at {h}x{w} pixels, a median {g.images_per_s.median():.1f} images/s; "
                     f"last-epoch training accuracy {' and '.join(acc(v) for v in ('orig', 'anon') if v in mean)}"
                     f"{' (mean ± SD over seeds)' if seeds > 1 else ''}.")
    return "\n".join(lines) if lines else "No model was trained in this run."


def floor_sentence(floor_models: Sequence[str]) -> str:
    """Chapter 5: which models stay near the random-ranking floor, if any."""
    if not floor_models:
        return "Every model scores well above the random-ranking floor."
    verb = "stays" if len(floor_models) == 1 else "stay"
    return (f"{listing(floor_models)} {verb} near the random-ranking floor here: a smoke-size recipe (a few epochs "
            "from random weights) runs every line of the training and testing code but is far from the paper's "
            "(ImageNet weights, 120 epochs); read such rows as a check of the code path.")


def camera_sentence(own: dict[str, tuple[float, float]]) -> str:
    """Chapter 5: each model's share of own-camera images in its top 10 against a camera-blind ranking's."""
    if not own:
        return ""
    parts = [f"{m} {o:.0f}%" for m, (o, _) in own.items()]
    base = sum(b for _, b in own.values()) / len(own)
    biased = [m for m, (o, b) in own.items() if o > 2 * b]
    text = (f"Of each query's ten nearest gallery images, this share comes from the query's own camera: "
            f"{', '.join(parts)}, against about {base:.0f}% for a ranking blind to cameras.")
    if biased:
        text += (f" {listing(biased)} {'ranks' if len(biased) == 1 else 'rank'} by camera (background, light) more "
                 "than by person: since the true matches all sit in other cameras, such a model can score below "
                 "a random ranking.")
    return text


def twin_sentence(acc: pd.DataFrame, taught: float) -> str:
    """Chapter 7: whether each of the sweep's models learned to tell twins apart (training accuracy against
    the ceiling of a model that confuses twins), at the highest share; `taught` is the controls' check
    (`analyses.controls.TAUGHT`: points above the ceiling that show the faces were learned)."""
    top = acc[acc.face_identity_share == acc.face_identity_share.max()]
    if top.empty:
        return ""
    if "model" not in top.columns:
        top = top.assign(model="the model")
    named = top.model.nunique() > 1
    out = []
    for model, g in top.groupby("model", sort=False):
        mean, ceiling, share = g.accuracy.mean(), g.twin_ceiling.mean(), g.face_identity_share.iloc[0]
        whose = f"{model}'s" if named else "the"
        text = (f"At share {share:g} {whose} last epoch's training accuracy is "
                f"{mean:.1f}% (mean over {count(len(g), 'seed')}), against {ceiling:.0f}% for a model that tells the "
                "clothes apart but confuses every pair of twins.")
        if mean <= ceiling + 5:
            text += (" It never learned the faces, even on its training images: it cannot lose what it never "
                     "used, so no measure of face reliance can find anything in it here, and for it the positive "
                     "control tests the training budget rather than the measure.")
        elif mean < ceiling + taught:
            text += (f" It tells some twins apart, {mean - ceiling:.1f} points above that ceiling, short of the "
                     f"{taught:g} the controls ask of a model that learned the faces: none of its readings counts.")
        else:
            text += " It tells twins apart, so it must use their faces: the positive control can do its job."
        out.append(text)
    return " ".join(out)


def missed_sentence(n: int) -> str:
    """Chapter 2: the faces the detector missed, which stay visible in the anonymized copy."""
    if n == 0:
        return "The detector missed no true face: every face is anonymized in the copy."
    these = "This face stays" if n == 1 else f"Each of these {n} faces stays"
    return (f"{these} visible in the anonymized copy (green: the true face; red: a detection that missed it, "
            "if any).")


def size_sentence(by_size: pd.DataFrame) -> str:
    """Chapter 2: what recall against face width shows (columns face_width, recall, faces)."""
    if by_size.empty:
        return "Without ground-truth faces there is no recall by face size."
    low = by_size.loc[by_size.recall.idxmin()]
    if (by_size.recall >= 0.99).all():
        return ("Small faces are where detectors fail on real data (the paper inspected about 90% recall); "
                f"here the detector finds faces of every width, {int(by_size.faces.sum())} of them: the generated "
                "faces are sharp, frontal and uncovered. `dataset.face_size: [5, 20]` with `face_blur`, `profile` "
                "and `occluded` above 0 makes the set harder.")
    return (f"Small faces are where detectors fail: recall is lowest, {100 * low.recall:.0f}%, at width "
            f"{low.face_width} ({count(int(low.faces), 'face')}).")


def condition_sentence(by_condition: pd.DataFrame) -> str:
    """Chapter 2: recall by how the face is seen, each hard condition against its easy one
    (rows in pairs: easy first; columns condition, recall, faces)."""
    if by_condition.empty:
        return ""
    parts = []
    for i in range(0, len(by_condition) - 1, 2):
        easy, hard = by_condition.iloc[i], by_condition.iloc[i + 1]
        parts.append(f"{100 * hard.recall:.0f}% of {count(int(hard.faces), hard.condition + ' face')} against "
                     f"{100 * easy.recall:.0f}% of the {easy.condition} ones")
    return "By how the face is seen, the detector finds " + "; ".join(parts) + "."
