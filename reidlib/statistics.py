"""Statistics of the anonymization effect (paper Section IV-B): paired one-sided t-tests.

The paper pairs every (dataset, model) cell before and after anonymization and tests whether
the original scores are higher: one-sided paired t-test (scipy.stats.ttest_rel).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

COMPARISONS = {"orig_anon": ("orig_orig", "orig_anon"), "anon_anon": ("orig_orig", "anon_anon")}
METRICS = ("mAP", "rank1")


def paper_results_path() -> Path:
    """The project's copy of the paper's Tables III-VII (data/paper/results_tables_III_VII.csv)."""
    path = Path(__file__).resolve().parent.parent / "data" / "paper" / "results_tables_III_VII.csv"
    if not path.is_file():
        raise FileNotFoundError(f"the paper's tables are missing: {path} (install from a project checkout)")
    return path


def load_paper_results(path: str | Path | None = None) -> pd.DataFrame:
    """Tables III-VII in long form: table, dataset, model, protocol, mAP, rank1."""
    return pd.read_csv(path or paper_results_path())


def paired(results: pd.DataFrame, metric: str, before: str, after: str) -> pd.DataFrame:
    """(dataset, model) pairs with the metric under two protocols, cells present in both only."""
    wide = results.pivot_table(index=["dataset", "model"], columns="protocol", values=metric)
    return wide[[before, after]].dropna().reset_index()


def paired_test(results: pd.DataFrame, metric: str, before: str, after: str) -> dict:
    """Means, mean difference, Cohen's d_z and the one-sided paired t-test H1: before > after."""
    p = paired(results, metric, before, after)
    a, b = p[before].to_numpy(float), p[after].to_numpy(float)
    diff = a - b
    out = {"metric": metric, "before": before, "after": after, "n_pairs": int(len(p)),
           "mean_before": float(np.mean(a)) if len(a) else float("nan"),
           "mean_after": float(np.mean(b)) if len(b) else float("nan"),
           "mean_difference": float(np.mean(diff)) if len(diff) else float("nan")}
    if len(p) >= 2 and np.std(diff, ddof=1) > 0:
        t = stats.ttest_rel(a, b, alternative="greater")
        out.update(t=float(t.statistic), p_value=float(t.pvalue), df=int(len(p) - 1),
                   cohens_dz=float(np.mean(diff) / np.std(diff, ddof=1)))
    else:
        out.update(t=float("nan"), p_value=float("nan"), df=int(max(len(p) - 1, 0)), cohens_dz=float("nan"))
    return out


def test_all(results: pd.DataFrame) -> pd.DataFrame:
    """Every comparison of the paper (orig vs anonymized test, orig vs retrained) for mAP and Rank-1."""
    rows = [paired_test(results, m, b, a) for m in METRICS for b, a in COMPARISONS.values()]
    return pd.DataFrame(rows)
