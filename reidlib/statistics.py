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


def load_paper_techniques() -> pd.DataFrame:
    """Table VIII in long form: table, dataset, model, technique, protocol, mAP, rank1."""
    return pd.read_csv(paper_results_path().parent / "techniques_table_VIII.csv")


def paired(results: pd.DataFrame, metric: str, before: str, after: str) -> pd.DataFrame:
    """(dataset, model) pairs with the metric under two protocols, cells present in both only."""
    wide = results.pivot_table(index=["dataset", "model"], columns="protocol", values=metric)
    return wide[[before, after]].dropna().reset_index()


def paired_test(results: pd.DataFrame, metric: str, before: str, after: str, seed: int = 0) -> dict:
    """One-sided paired t-test (H1: before > after), Wilcoxon signed-rank, bootstrap 95% CI, Cohen's d_z.

    All from scipy.stats; the bootstrap (BCa, 9,999 resamples) is seeded, so reruns agree.
    """
    p = paired(results, metric, before, after)
    a, b = p[before].to_numpy(float), p[after].to_numpy(float)
    diff = a - b
    nan = float("nan")
    out = {"metric": metric, "before": before, "after": after, "n_pairs": int(len(p)),
           "mean_before": float(np.mean(a)) if len(a) else nan,
           "mean_after": float(np.mean(b)) if len(b) else nan,
           "mean_difference": float(np.mean(diff)) if len(diff) else nan,
           "t": nan, "p_value": nan, "df": int(max(len(p) - 1, 0)), "cohens_dz": nan,
           "wilcoxon_p": nan, "ci_low": nan, "ci_high": nan}
    if len(p) >= 2 and np.std(diff, ddof=1) > 0:
        t = stats.ttest_rel(a, b, alternative="greater")
        out.update(t=float(t.statistic), p_value=float(t.pvalue),
                   cohens_dz=float(np.mean(diff) / np.std(diff, ddof=1)))
        if np.count_nonzero(diff) >= 2:
            out["wilcoxon_p"] = float(stats.wilcoxon(a, b, alternative="greater").pvalue)
        ci = stats.bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=9999, method="BCa",
                             random_state=np.random.default_rng(seed)).confidence_interval
        out.update(ci_low=float(ci.low), ci_high=float(ci.high))
    return out


def test_all(results: pd.DataFrame, by: str | None = None, seed: int = 0) -> pd.DataFrame:
    """Every comparison of the paper (orig vs anonymized test, orig vs retrained) for mAP and Rank-1.

    With `by` (e.g. "dataset"), the tests are also run within each group; the pooled rows have "all".
    """
    groups = [("all", results)] + (list(results.groupby(by)) if by else [])
    rows = []
    for name, g in groups:
        for m in METRICS:
            for b, a in COMPARISONS.values():
                rows.append({**({by: name} if by else {}), **paired_test(g, m, b, a, seed)})
    return pd.DataFrame(rows)


def closest_subset(results: pd.DataFrame, claims: pd.DataFrame) -> dict:
    """The subset of datasets x models whose means come closest to claimed means (worst-case gap).

    `claims` has columns metric, protocol, claimed_mean (data/paper/claims_section_IV_B.csv).
    Searches every non-empty subset of datasets and of models (2^5 x 2^6 for the paper).
    """
    from itertools import combinations

    datasets_, models = sorted(results.dataset.unique()), sorted(results.model.unique())
    means = results.groupby(["dataset", "model", "protocol"])[list(METRICS)].mean()
    best = {"max_gap": float("inf")}
    for nd in range(1, len(datasets_) + 1):
        for ds in combinations(datasets_, nd):
            for nm in range(1, len(models) + 1):
                for ms in combinations(models, nm):
                    sub = means[means.index.get_level_values(0).isin(ds) & means.index.get_level_values(1).isin(ms)]
                    by_protocol = sub.groupby(level="protocol").mean()
                    gap = max(abs(by_protocol.loc[c.protocol, c.metric] - c.claimed_mean)
                              for c in claims.itertuples())
                    if gap < best["max_gap"]:
                        best = {"max_gap": float(gap), "datasets": list(ds), "models": list(ms)}
    return best
