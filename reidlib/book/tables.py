"""Tables as the book shows them: registry display names, words for booleans, p-values a reader can read,
integers as integers, a dash for what is missing, and one glossary for the terms in headers.

Results files keep internal names and full precision; only the page's copy is formatted here.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..core import registry

PROTOCOLS = {"orig_orig": "orig/orig", "orig_anon": "orig→anon", "anon_anon": "anon/anon"}
TECHNIQUES = {"blur": "blur", "zero": "zero (black box)", "blank": "blank (mean colour)", "inpaint": "Poisson inpaint",
              "pixelate": "pixelate", "swap": "face swap", "none": "none (re-encoded only)"}
METRICS = {"mAP": "mAP", "rank1": "Rank-1"}

# Terms the tables use, defined once; every table uses them in this sense (the book's glossary page lists them).
GLOSSARY = {
    "seed SD": "the standard deviation over training seeds of the quantity in the same row (a score or a drop: "
               "the row says which)",
    "drop": "score before minus score after, in points (positive: the score fell)",
    "95% CI": "bootstrap 95% confidence interval of the mean in the same row",
    "TOST": "two one-sided tests: equivalent when the 90% interval of the drop lies inside ±margin",
    "p": "one-sided p-value of the paired t-test that the drop is greater than 0",
    "d_z": "Cohen's d of the paired differences (mean difference over their SD)",
    "runs": "(model, seed) pairs the statistic is computed over",
}

HEADERS = {"model": "model", "technique": "technique", "protocol": "protocol", "metric": "metric", "mAP": "mAP",
           "rank1": "Rank-1", "seed": "seed", "runs": "runs", "n_pairs": "runs", "mean_drop": "drop",
           "mean_difference": "drop", "drop_sd": "seed SD", "sd_difference": "seed SD", "p_value": "p",
           "tost_p": "TOST p", "p_tost": "TOST p", "equivalent": "equivalent", "tost_margin": "margin",
           "margin": "margin", "ci_low": "95% CI low", "ci_high": "95% CI high", "cohens_dz": "d_z",
           "part": "part", "copy": "test copy", "dataset": "dataset", "trained_on": "trained on"}


def p_value(p: float) -> str:
    """'0.012', or '3.1e-05' below 0.001 (never '0.0'); a dash when missing."""
    if p is None or (isinstance(p, float) and math.isnan(p)):
        return "–"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def name_of(column: str, value: Any) -> Any:
    """A cell's value as a reader sees it: a registered model's, technique's or protocol's display name."""
    if not isinstance(value, str):
        return value
    if column == "model" and value in registry.MODELS:
        return registry.MODELS[value].display
    if column in ("technique", "copy"):
        return TECHNIQUES.get(value, value)
    if column in ("protocol", "before", "after"):
        return PROTOCOLS.get(value, value)
    if column == "metric":
        return METRICS.get(value, value)
    if column == "dataset" and value in registry.DATASETS:
        return registry.DATASETS[value].paper_name
    return value


def cell(column: str, value: Any, digits: int = 2) -> str:
    """One cell as text: names, 'yes'/'no', p-values, integers without '.0', a dash for missing."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if column in ("p_value", "tost_p", "p_tost", "wilcoxon_p"):
        return p_value(float(value))
    if isinstance(value, (int,)) or (isinstance(value, float) and float(value).is_integer()
                                     and column in ("seed", "runs", "n_pairs", "queries", "n", "year")):
        return str(int(value))
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(name_of(column, value))


def shown(table: pd.DataFrame, index: str | None = None, digits: int = 2,
          headers: dict[str, str] | None = None):
    """A results table formatted for the page (a pandas Styler; its `.data` is the text table): every cell
    text (`cell`), headers in words (`HEADERS`), no pandas row numbers (`index`, when given, labels the rows)."""
    names = {**HEADERS, **(headers or {})}
    out = pd.DataFrame({c: [cell(c, v.item() if hasattr(v, "item") else v, digits) for v in table[c]]
                        for c in table.columns})
    if index is not None:
        out = out.set_index(index)
        out.index.name = names.get(index, index)
    out.columns = [names.get(c, c) for c in out.columns]
    return out.style if index is not None else out.style.hide(axis="index")
