"""What chapter 5 shows (paper Section IV-B, Tables III-VIII): the three protocols, the random floor, the
paper's tables beside the run's, and the orig→anon drop taken apart (re-encoding, boxes, face)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..analyses import decomposition
from ..book import prose, tables
from ..stages import statistics

FLOOR_FACTOR = 1.5  # a model whose orig/orig mAP is below this multiple of the random floor has learned little


def mean_sd(values: pd.Series, digits: int = 1) -> str:
    """'43.8 ± 1.2' (mean ± SD over seeds), or '43.8' for one value."""
    v = values.dropna()
    return f"{v.mean():.{digits}f}" + (f" ± {v.std():.{digits}f}" if len(v) > 1 else "")


def protocol_numbers(results: pd.DataFrame) -> dict[str, str]:
    """The first model's mAP and Rank-1 under each protocol (mean ± seed SD), keyed as the page glues them."""
    first = results[results.model == results.model.iloc[0]]
    out = {"main_model": str(first.model.iloc[0])}
    for protocol, g in first.groupby("protocol"):
        out[f"map_{protocol}"] = mean_sd(g.mAP)
        out[f"rank1_{protocol}"] = mean_sd(g.rank1)
    return out


def orig_means(results: pd.DataFrame) -> pd.Series:
    """Each model's orig/orig mAP, the mean over seeds."""
    return results[results.protocol == "orig_orig"].groupby("model", sort=False).mAP.mean()


def floor_ratios(results: pd.DataFrame, chance: float) -> str:
    """'HACNN 5.2x; BoT 3.1x': each model's orig/orig mAP as a multiple of the random floor."""
    return "; ".join(f"{m} {v / chance:.1f}x" for m, v in orig_means(results).items())


def floor_text(results: pd.DataFrame, chance: float) -> str:
    """The sentence on models near the random floor (below FLOOR_FACTOR times it), or none."""
    means = orig_means(results)
    return prose.floor_sentence(list(means[means < FLOOR_FACTOR * chance].index))


def camera_text(results: pd.DataFrame) -> str:
    """The sentence on how often each model ranks the query's own camera first."""
    cams = results[results.protocol == "orig_orig"].groupby("model", sort=False)[
        ["own_camera_top10", "own_camera_base"]].mean()
    return prose.camera_sentence({m: (r.own_camera_top10, r.own_camera_base) for m, r in cams.iterrows()})


def results_table(results: pd.DataFrame):
    """Every model, seed and protocol: mAP, Rank-1, mINP (evaluation/results.csv), for reading."""
    return tables.shown(results[["model", "seed", "protocol", "mAP", "rank1", "mINP"]], digits=1)


def rank5_text(results: pd.DataFrame) -> str:
    """Rank-5 on the originals per model, mean ± seed SD."""
    orig = results[results.protocol == "orig_orig"]
    return "; ".join(f"{m} {mean_sd(g.rank5)}" for m, g in orig.groupby("model", sort=False))


def floor_numbers(records: pd.DataFrame) -> dict[str, str]:
    """Per query on average: true matches (same identity, another camera), candidates ranked (all but the
    same identity's same-camera images), and the share of true matches among them, in percent."""
    q, g = records[records.split == "query"], records[records.split == "gallery"]
    same_pid = q.pid.to_numpy()[:, None] == g.pid.to_numpy()[None, :]
    same_cam = q.camid.to_numpy()[:, None] == g.camid.to_numpy()[None, :]
    matches, candidates = (same_pid & ~same_cam).sum(axis=1), (~(same_pid & same_cam)).sum(axis=1)
    return {"ex_matches": f"{matches.mean():.1f}", "ex_candidates": f"{candidates.mean():.0f}",
            "ex_share": f"{100 * np.mean(matches / np.maximum(candidates, 1)):.1f}"}


# ---------------------------------------------------------------- the drop taken apart

PART_WORDS = {"protocol": "the protocol's drop (technique, detected boxes, re-encoded)",
              "re-encoding": "re-encoding alone (nothing anonymized)",
              "face": "the face alone (detected boxes, exact copy)",
              "boxes": "the detector's boxes (true minus detected boxes)",
              "interaction": "interaction (protocol − re-encoding − face)"}


def decomposition_table(summary: pd.DataFrame, metric: str = "mAP"):
    """One row per part: mean drop, its seed SD, 95% interval, p and the TOST verdict, for reading."""
    s = summary[summary.metric == metric].copy()
    s["part"] = s.part.map(lambda p: PART_WORDS.get(p, p))
    cols = ["part", "runs", "mean_drop", "drop_sd", "ci_low", "ci_high", "p_value", "tost_margin", "equivalent"]
    return tables.shown(s[cols], index="part", headers={"mean_drop": f"{metric} drop", "equivalent": "within ±margin"})


def decomposition_figure(drops: pd.DataFrame, metric: str = "mAP"):
    """Each part's drop per (model, seed) as dots, the mean as a bar: what each part costs, and its spread."""
    d = drops[drops.metric == metric].copy()
    d["part"] = d.part.map(lambda p: PART_WORDS.get(p, p).split(" (")[0])
    order = [PART_WORDS[p].split(" (")[0] for p in decomposition.PART_ORDER if p in set(drops.part)]
    fig, ax = plt.subplots(figsize=(6.4, 0.55 * len(order) + 1.2))
    sns.barplot(data=d, y="part", x="drop", order=order, errorbar=None, color="lightgrey", ax=ax)
    sns.stripplot(data=d, y="part", x="drop", hue="model", order=order, dodge=False, size=5, ax=ax)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"{metric} drop, points (dots: one model and seed; bar: their mean)")
    ax.set_ylabel("")
    ax.legend(fontsize=8, title=None, loc="best")
    fig.tight_layout()
    return fig


VERDICT_WORDS = {
    "drop": "the face alone costs {face:.2f} ± {face_sd:.2f} {metric} points (95% interval {face_low:.2f} to "
            "{face_high:.2f}, p = {p}, {runs} runs): faces carry identity these models use",
    "equivalent": "the face alone costs {face:.2f} ± {face_sd:.2f} {metric} points, equivalent to no change within "
                  "±{margin:g} (TOST, {runs} runs): at this margin these models do not use the faces",
    "inconclusive": "the face alone costs {face:.2f} ± {face_sd:.2f} {metric} points (95% interval {face_low:.2f} to "
                    "{face_high:.2f}, {runs} runs), but the one-sided t-test does not show a drop (p = {p}) and TOST "
                    "does not show equivalence to none within ±{margin:g}: neither a drop nor its absence is shown",
    "not tested": "the face part is not tested ({why})",
}


def _percent(x: float) -> str:
    return f"{100 * x:.0f}%" if math.isfinite(x) else "–"


def decomposition_text(verdict: dict) -> str:
    """Three sentences: what the face alone costs (the verdict), and re-encoding alone and the face alone as shares
    of the re-encoded anonymized copy's drop (each measured alone: they overlap)."""
    words = VERDICT_WORDS[verdict["verdict"]].format(**{**verdict, "p": tables.p_value(verdict.get("p_value", float("nan")))})
    if verdict["verdict"] == "not tested":
        return words[0].upper() + words[1:] + "."
    return (f"Taken apart, {words}. Measured alone, re-encoding the whole image (nothing anonymized) costs "
            f"{verdict['reencoding']:.2f} points, {_percent(verdict['reencoding_share'])} of the "
            f"{verdict['protocol']:.2f} that the re-encoded anonymized copy costs, and the face alone "
            f"{_percent(verdict['face_share'])} of it. Each part is measured on a copy of its own, so the parts need "
            f"not add up to the whole (chapter 5's interaction row holds the rest).")



def paper_beside_run(paper: pd.DataFrame, results: pd.DataFrame, paper_name: str) -> tuple[str, pd.DataFrame]:
    """The paper's table for this dataset (Tables III-VII) above this run's, in the same layout; and its
    label ('Table III (Market1501)'). Without a paper table for the dataset, the run's alone."""
    mine = paper[paper.dataset == paper_name]
    if mine.empty:
        return f"no paper table ({paper_name} is not in Tables III-VII)", statistics.protocol_wide(results).round(1)
    label = f"Table {mine.table.iloc[0]} ({paper_name})"
    return label, pd.concat({f"paper, {label}": statistics.protocol_wide(mine), "this run": statistics.protocol_wide(results)},
                            names=["source"]).round(1)


def techniques_beside_run(viii: pd.DataFrame, results: pd.DataFrame) -> pd.DataFrame:
    """Table VIII (BoT on Market1501, five techniques) above this run's BoT rows under its technique."""
    bot = results[results.model.str.startswith("BoT") & (results.protocol != "orig_orig")]
    return pd.concat({"paper, Table VIII": statistics.protocol_wide(viii, "technique"),
                      "this run": statistics.protocol_wide(bot, "technique")}, names=["source"]).round(1)
