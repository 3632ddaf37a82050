"""Statistics of the anonymization effect (paper Section IV-B): paired tests, equivalence, seed spread.

The paper pairs every (dataset, model) cell before and after anonymization and tests whether
the original scores are higher: one-sided paired t-test (scipy.stats.ttest_rel). Beside it:
TOST equivalence tests against stated margins, the smallest drop each test could detect, and the
seed-to-seed spread of replicated runs (a random-effects variance decomposition). A statistic is
never reported where it is degenerate (fewer than MIN_PAIRS pairs, or zero variance): the row
says why instead (`why_not_shown`).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from ..book.prose import plural
from ..core.paths import checkout_root

COMPARISONS = {"orig_anon": ("orig_orig", "orig_anon"), "anon_anon": ("orig_orig", "anon_anon")}
METRICS = ("mAP", "rank1")
MIN_PAIRS = 3  # fewer pairs: no t, p or effect size is reported
RESOLUTION = 1e-3  # points: results are stored to 4 decimals, so differences closer than this are equal
POWER = 0.8  # the power at which the smallest detectable drop is stated
# the columns a reader looks for first, in this order (results read back from JSON come sorted)
ORDER = ("dataset", "model", "control", "face_identity_share", "quantity", "metric", "before", "after", "margin",
         "n_pairs", "n_seeds", "groups", "observations", "mean_before", "mean_after", "mean", "mean_difference",
         "mean_drop", "seed_sd", "sd_difference", "drop_sd")
HIDDEN = ("t", "p_value", "cohens_dz", "wilcoxon_p", "ci_low", "ci_high", "mde")  # blanked where degenerate
# column names as a reader sees them (display_tests); the files keep the short ones
READABLE = {"n_pairs": "pairs", "n_seeds": "seeds", "mean_before": "mean before", "mean_after": "mean after",
            "mean_difference": "mean drop", "mean_drop": "mean drop", "seed_sd": "seed SD",
            "sd_difference": "SD of drops", "drop_sd": "SD of drops", "p_value": "p (one-sided)", "df": "df",
            "cohens_dz": "Cohen's d_z", "wilcoxon_p": "Wilcoxon p", "ci_low": "95% CI low", "ci_high": "95% CI high",
            "mde": "detectable drop (power 0.8)", "why_not_shown": "why no statistic", "p_tost": "TOST p",
            "p_lower": "p (lower test)", "p_upper": "p (upper test)", "ci90_low": "90% CI low",
            "ci90_high": "90% CI high", "equivalent": "equivalent", "margin_power80": "margin for 80% power",
            "drop_over_seed_sd": "drop / seed SD", "sd_between": "SD between cells", "sd_within": "SD within (seeds)",
            "share_between": "share between", "face_identity_share": "face identity share", "n_models": "models",
            "observations": "observations"}


def degenerate_reason(diff: np.ndarray, min_pairs: int = MIN_PAIRS, unit: str = "pair") -> str:
    """Why a paired statistic over the differences `diff` would be meaningless, or "" when it is not."""
    diff = np.asarray(diff, float)
    n = len(diff)
    if n < min_pairs:
        return f"{n} {unit}{'' if n == 1 else 's'}: a paired test needs at least {min_pairs}"
    if float(np.std(diff, ddof=1)) < RESOLUTION:
        return f"all {n} differences are equal ({float(np.mean(diff)):+.2f}): zero variance"
    return ""


def seed_drop(drops: np.ndarray, alpha: float = 0.05) -> dict:
    """One drop measured once per training seed: its mean, seed-to-seed SD and a one-sided t-test over seeds
    (scipy.stats.ttest_1samp); `found` (a drop beyond seed noise) is None, with `why_not_shown`, when degenerate."""
    d = np.asarray(drops, float)
    d = d[np.isfinite(d)]
    reason = degenerate_reason(d, unit="seed")
    row = {"n_seeds": len(d), "mean_drop": float(np.mean(d)) if len(d) else float("nan"),
           "seed_sd": float(np.std(d, ddof=1)) if len(d) > 1 else float("nan"),
           "p_value": float("nan"), "found": None, "why_not_shown": reason}
    if not reason:
        row["p_value"] = float(stats.ttest_1samp(d, 0.0, alternative="greater").pvalue)
        row["found"] = bool(row["p_value"] < alpha)
    return row


def drop_grows(high: np.ndarray, low: np.ndarray, alpha: float = 0.05) -> dict:
    """Whether a drop measured once per training seed is larger at one setting (`high`) than at another (`low`),
    beyond the seeds' noise: one-sided Welch t-test (scipy.stats.ttest_ind); `found` is None below two seeds a side."""
    h, lo = (np.asarray(v, float)[np.isfinite(np.asarray(v, float))] for v in (high, low))
    if len(h) < 2 or len(lo) < 2:
        return {"p_value": float("nan"), "found": None}
    p = float(stats.ttest_ind(h, lo, equal_var=False, alternative="greater").pvalue)
    return {"p_value": p, "found": bool(p < alpha) if np.isfinite(p) else None}


def smallest_detectable(n: int, sd: float, alpha: float = 0.05, power: float = POWER) -> float:
    """Smallest true mean drop a one-sided paired t-test at `alpha` finds with `power`, given n pairs and SD sd.

    Solved exactly with the noncentral t distribution (scipy.stats.nct); NaN where n < 2 or sd is 0.
    """
    if n < 2 or not np.isfinite(sd) or sd <= 0:
        return float("nan")
    from scipy.optimize import brentq

    df = n - 1
    crit = stats.t.ppf(1 - alpha, df)
    dz = brentq(lambda d: stats.nct.sf(crit, df, d * np.sqrt(n)) - power, 1e-9, 1e3)
    return float(dz * sd)


def pairs_needed(drop: float, sd: float, alpha: float = 0.05, power: float = POWER, most: int = 100_000) -> int:
    """The fewest pairs with which a one-sided paired t-test finds a true mean drop of `drop` (given SD sd),
    `most` when even that many do not; a bisection on n, since the detectable drop shrinks as n grows."""
    lo, hi = 2, most
    if smallest_detectable(hi, sd, alpha, power) > drop:
        return most
    while lo < hi:
        mid = (lo + hi) // 2
        if smallest_detectable(mid, sd, alpha, power) <= drop:
            hi = mid
        else:
            lo = mid + 1
    return lo


def paper_results_path() -> Path:
    """The project's copy of the paper's Tables III-VII (data/paper/results_tables_III_VII.csv)."""
    path = checkout_root() / "data" / "paper" / "results_tables_III_VII.csv"
    if not path.is_file():
        raise FileNotFoundError(f"the paper's tables are missing: {path} (install from a project checkout)")
    return path


def load_paper_results(path: str | Path | None = None) -> pd.DataFrame:
    """Tables III-VII in long form: table, dataset, model, protocol, mAP, rank1."""
    return pd.read_csv(path or paper_results_path())


def load_paper_techniques() -> pd.DataFrame:
    """Table VIII in long form: table, dataset, model, technique, protocol, mAP, rank1."""
    return pd.read_csv(paper_results_path().parent / "techniques_table_VIII.csv")


PROTOCOL_WORDS = {"orig_orig": "original → original", "orig_anon": "original → anonymized",
                  "anon_anon": "anonymized → anonymized"}  # trained on → tested on


def protocol_wide(results: pd.DataFrame, row: str = "model") -> pd.DataFrame:
    """mAP and Rank-1 under each protocol present, side by side, one row per `row` (the mean over
    replicated runs): the paper's table layout, the columns a (protocol in words, metric) MultiIndex."""
    rows = list(dict.fromkeys(results[row]))
    cols = {}
    for protocol, words in PROTOCOL_WORDS.items():
        means = results[results.protocol == protocol].groupby(row, sort=False)[["mAP", "rank1"]].mean()
        if len(means):
            for metric, name in (("mAP", "mAP"), ("rank1", "Rank-1")):
                cols[(words, name)] = means[metric].reindex(rows)
    out = pd.DataFrame(cols)
    out.index.name = row
    return out


def paper_table_wide(results: pd.DataFrame, table: str, row: str = "model") -> pd.DataFrame:
    """One of the paper's Tables III-VIII in its own layout (`protocol_wide`): a row per `row` (model;
    Table VIII: technique) (the reference page's tables)."""
    t = results[results.table == table]
    if t.empty:
        raise ValueError(f"no Table {table} in the paper's results; tables: {', '.join(results.table.unique())}")
    return protocol_wide(t, row)


def write_wide_csv(table: pd.DataFrame, path: str | Path) -> None:
    """A wide table as CSV with two header rows (protocol, then metric), for a `csv-table` directive;
    each protocol is named once, over its first column (the book's extension spans it over both)."""
    top, second = ["", *(p for p, _ in table.columns)], [table.index.name or "", *(m for _, m in table.columns)]
    top = [p if i == 0 or p != top[i - 1] else "" for i, p in enumerate(top)]
    rows = [",".join(top), ",".join(second)]
    rows += [",".join([str(model), *(f"{v:.1f}" for v in r)]) for model, r in zip(table.index, table.to_numpy())]
    Path(path).write_text("\n".join(rows) + "\n")


UNITS = {"cell": ("(dataset, model) pair", "(dataset, model) pairs"),
         "run": ("training run", "training runs (each model, each seed)")}


def units_text(n: int, unit: str | None) -> str:
    """`n` pairs named by what they pair: '6 training runs (each model, each seed)' or '2 (dataset, model) pairs'."""
    one, many = UNITS.get(unit or "cell", UNITS["cell"])
    return f"{n} {one if n == 1 else many}"


def unit_of(results: pd.DataFrame) -> str:
    """What a paired test pairs in a results table: training runs when it holds several seeds (each run
    is an observation of the drop), else (dataset, model) cells, as the paper's tables do."""
    return "run" if "seed" in results.columns and results.seed.nunique() > 1 else "cell"


def paired(results: pd.DataFrame, metric: str, before: str, after: str, unit: str = "cell") -> pd.DataFrame:
    """The metric under two protocols per unit, units present in both only: (dataset, model) cells,
    replicated runs averaged within each cell (unit "cell", the paper's), or every training run
    (unit "run": each (dataset, model, seed) is a pair)."""
    index = ["dataset", "model"] + (["seed"] if unit == "run" and "seed" in results.columns else [])
    wide = results.pivot_table(index=index, columns="protocol", values=metric)
    return wide[[before, after]].dropna().reset_index()


def paired_test(results: pd.DataFrame, metric: str, before: str, after: str, seed: int = 0,
                alpha: float = 0.05, unit: str = "cell") -> dict:
    """One-sided paired t-test (H1: before > after), Wilcoxon signed-rank, bootstrap 95% CI, Cohen's d_z,
    and the smallest drop detectable at this n with power 0.8 (`mde`).

    All from scipy.stats; the bootstrap (BCa, 9,999 resamples) is seeded, so reruns agree. With
    fewer than MIN_PAIRS pairs or zero variance these stay NaN and `why_not_shown` says why.
    """
    p = paired(results, metric, before, after, unit)
    a, b = p[before].to_numpy(float), p[after].to_numpy(float)
    diff = a - b
    nan = float("nan")
    reason = degenerate_reason(diff)
    out = {"metric": metric, "before": before, "after": after, "unit": unit, "n_pairs": int(len(p)),
           "mean_before": float(np.mean(a)) if len(a) else nan,
           "mean_after": float(np.mean(b)) if len(b) else nan,
           "mean_difference": float(np.mean(diff)) if len(diff) else nan,
           "sd_difference": float(np.std(diff, ddof=1)) if len(diff) > 1 else nan,
           "t": nan, "p_value": nan, "df": int(max(len(p) - 1, 0)), "cohens_dz": nan,
           "wilcoxon_p": nan, "ci_low": nan, "ci_high": nan, "mde": nan, "why_not_shown": reason}
    if not reason:
        t = stats.ttest_rel(a, b, alternative="greater")
        out.update(t=float(t.statistic), p_value=float(t.pvalue),
                   cohens_dz=float(np.mean(diff) / np.std(diff, ddof=1)),
                   mde=smallest_detectable(len(diff), float(np.std(diff, ddof=1)), alpha))
        if np.count_nonzero(diff) >= 2:
            out["wilcoxon_p"] = float(stats.wilcoxon(a, b, alternative="greater").pvalue)
        ci = stats.bootstrap((diff,), np.mean, confidence_level=0.95, n_resamples=9999, method="BCa",
                             random_state=np.random.default_rng(seed)).confidence_interval
        out.update(ci_low=float(ci.low), ci_high=float(ci.high))
    return out


def test_all(results: pd.DataFrame, by: str | None = None, seed: int = 0, alpha: float = 0.05,
             unit: str = "cell") -> pd.DataFrame:
    """Every comparison of the paper (orig vs anonymized test, orig vs retrained) for mAP and Rank-1.

    With `by` (e.g. "dataset"), the tests are also run within each group; the pooled rows have "all".
    `unit`: what is paired (`paired`).
    """
    groups = [("all", results)] + (list(results.groupby(by)) if by else [])
    rows = []
    for name, g in groups:
        for m in METRICS:
            for b, a in COMPARISONS.values():
                rows.append({**({by: name} if by else {}), **paired_test(g, m, b, a, seed, alpha, unit)})
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


def tost(results: pd.DataFrame, metric: str, before: str, after: str, margin: float,
         alpha: float = 0.05, unit: str = "cell") -> dict:
    """TOST equivalence test of the paired drop (before - after) against +-`margin` points.

    Two one-sided t-tests (scipy.stats.ttest_1samp against -margin and +margin); equivalence is
    shown when both reject at `alpha`, i.e. when the (1 - 2 alpha) interval lies inside the margin.
    `margin_power80`: the margin this n and SD would show with power 0.8 were the true drop 0.
    """
    p = paired(results, metric, before, after, unit)
    diff = (p[before] - p[after]).to_numpy(float)
    nan = float("nan")
    reason = degenerate_reason(diff)
    n = len(diff)
    out = {"metric": metric, "before": before, "after": after, "margin": float(margin), "unit": unit, "n_pairs": n,
           "mean_difference": float(np.mean(diff)) if n else nan, "p_lower": nan, "p_upper": nan,
           "p_tost": nan, "ci90_low": nan, "ci90_high": nan, "equivalent": None, "margin_power80": nan,
           "why_not_shown": reason}
    if reason:
        return out
    lower = stats.ttest_1samp(diff, -margin, alternative="greater").pvalue
    upper = stats.ttest_1samp(diff, margin, alternative="less").pvalue
    sd = float(np.std(diff, ddof=1))
    se, df = sd / np.sqrt(n), n - 1
    half = stats.t.ppf(1 - alpha, df) * se
    p_tost = float(max(lower, upper))
    out.update(p_lower=float(lower), p_upper=float(upper), p_tost=p_tost,
               ci90_low=float(np.mean(diff) - half), ci90_high=float(np.mean(diff) + half),
               equivalent=bool(p_tost < alpha),
               margin_power80=float((stats.t.ppf(1 - alpha, df) + stats.t.ppf(1 - (1 - POWER) / 2, df)) * se))
    return out


def tost_all(results: pd.DataFrame, margins, alpha: float = 0.05, by: str | None = None,
             unit: str = "cell") -> pd.DataFrame:
    """TOST for both comparisons, mAP and Rank-1, at every margin (pooled, and within `by` groups)."""
    groups = [("all", results)] + (list(results.groupby(by)) if by else [])
    rows = [{**({by: name} if by else {}), **tost(g, m, b, a, float(margin), alpha, unit)}
            for name, g in groups for m in METRICS for b, a in COMPARISONS.values() for margin in margins]
    return pd.DataFrame(rows)


def seeds_of(results: pd.DataFrame) -> pd.DataFrame:
    """The results with a `seed` column (0 for every row of a table from one seed)."""
    return results if "seed" in results.columns else results.assign(seed=0)


def seed_spread(results: pd.DataFrame, metric: str = "mAP") -> pd.DataFrame:
    """Per (dataset, model): the seed-to-seed SD of orig_orig beside each comparison's mean drop.

    "Is the drop larger than rerunning the same training?": `drop_over_seed_sd` is the mean drop
    in units of that SD; `p_value` a one-sided paired t-test of the drop over seeds (n = seeds).
    With fewer than MIN_PAIRS seeds or zero variance the test is not reported (`why_not_shown`).
    """
    r = seeds_of(results)
    wide = r.pivot_table(index=["dataset", "model", "seed"], columns="protocol", values=metric)
    rows = []
    for (dataset, model), cell in wide.groupby(level=["dataset", "model"]):
        base = cell["orig_orig"].dropna().to_numpy(float)
        seed_sd = float(np.std(base, ddof=1)) if len(base) > 1 else float("nan")
        for before, after in COMPARISONS.values():
            d = (cell[before] - cell[after]).dropna().to_numpy(float)
            reason = degenerate_reason(d, unit="seed")
            row = {"dataset": dataset, "model": model, "metric": metric, "after": after, "n_seeds": len(d),
                   "mean_before": float(np.mean(base)) if len(base) else float("nan"), "seed_sd": seed_sd,
                   "mean_drop": float(np.mean(d)) if len(d) else float("nan"),
                   "drop_sd": float(np.std(d, ddof=1)) if len(d) > 1 else float("nan"),
                   "drop_over_seed_sd": float("nan"), "t": float("nan"), "p_value": float("nan"),
                   "why_not_shown": reason}
            if len(base) < 2:
                row["why_not_shown"] = row["why_not_shown"] or "one seed: the rerun spread is not measured"
            elif seed_sd >= RESOLUTION:
                row["drop_over_seed_sd"] = row["mean_drop"] / seed_sd
            if not reason:
                t = stats.ttest_1samp(d, 0.0, alternative="greater")
                row.update(t=float(t.statistic), p_value=float(t.pvalue))
            rows.append(row)
    return pd.DataFrame(rows)


def variance_components(table: pd.DataFrame, group, value: str) -> dict:
    """One-way random-effects ANOVA: between-group and within-group (seed) variance of `value`.

    Hand-written (method of moments, unbalanced n0) to keep statsmodels out of the dependencies;
    the F test is scipy.stats.f. NaN, with `why_not_shown`, when there are fewer than 2 groups or
    no group with 2 replicates.
    """
    t = table.dropna(subset=[value])
    groups = [g[value].to_numpy(float) for _, g in t.groupby(group)]
    k, n_total = len(groups), int(sum(len(g) for g in groups))
    nan = float("nan")
    out = {"value": value, "groups": k, "observations": n_total, "mean": float(t[value].mean()) if n_total else nan,
           "sd_between": nan, "sd_within": nan, "share_between": nan, "F": nan, "p_value": nan, "why_not_shown": ""}
    df_within = n_total - k
    if k < 2:
        out["why_not_shown"] = f"{k} group{'' if k == 1 else 's'}: a between-group variance needs at least 2"
    elif df_within < 1:
        out["why_not_shown"] = "one seed per group: the within-group (seed) variance is not measured"
    if out["why_not_shown"]:
        return out
    grand = float(np.mean(np.concatenate(groups)))
    ss_between = sum(len(g) * (g.mean() - grand) ** 2 for g in groups)
    ss_within = sum(((g - g.mean()) ** 2).sum() for g in groups)
    ms_between, ms_within = ss_between / (k - 1), ss_within / df_within
    n0 = (n_total - sum(len(g) ** 2 for g in groups) / n_total) / (k - 1)
    var_between = max(0.0, (ms_between - ms_within) / n0)
    out.update(sd_between=float(np.sqrt(var_between)), sd_within=float(np.sqrt(ms_within)),
               share_between=float(var_between / (var_between + ms_within)) if var_between + ms_within > 0 else nan)
    if ms_within > 0:
        out.update(F=float(ms_between / ms_within), p_value=float(stats.f.sf(ms_between / ms_within, k - 1, df_within)))
    return out


def seed_decomposition(results: pd.DataFrame, metric: str = "mAP") -> pd.DataFrame:
    """Variance of the orig_orig score and of each drop split into between (dataset, model) cells and seeds."""
    r = seeds_of(results)
    wide = r.pivot_table(index=["dataset", "model", "seed"], columns="protocol", values=metric).reset_index()
    wide["cell"] = wide.dataset.astype(str) + " / " + wide.model.astype(str)
    rows = [{"metric": metric, "quantity": "orig_orig score", **variance_components(wide, "cell", "orig_orig")}]
    for before, after in COMPARISONS.values():
        wide[f"drop_{after}"] = wide[before] - wide[after]
        rows.append({"metric": metric, "quantity": f"drop to {after}",
                     **variance_components(wide, "cell", f"drop_{after}")})
    return pd.DataFrame(rows)


P_COLUMNS = ("p_value", "wilcoxon_p", "p_tost", "p_lower", "p_upper")
TECHNICAL = ("df", "t", "unit", "p_lower", "p_upper")  # in the files, left out of the reader's table


def display_tests(tests: pd.DataFrame, digits: int = 4, readable: bool = True) -> pd.DataFrame:
    """A tests table for reading: numbers rounded, and where a row is degenerate its t, p, d_z (and
    interval, detectable drop) replaced by "not shown", the reason kept in `why_not_shown`; with
    `readable`, a table that fits a page: words for column names and protocols, two decimals (p three),
    each interval in one column, no test internals (df, t, the TOST's two one-sided p), blanks for
    missing values and no reason column when every statistic is shown."""
    first = [c for c in ORDER if c in tests.columns]
    out = tests[first + [c for c in tests.columns if c not in first and c != "why_not_shown"]
                + (["why_not_shown"] if "why_not_shown" in tests.columns else [])].copy()
    if "why_not_shown" not in out.columns:
        raise ValueError("display_tests needs a `why_not_shown` column (from paired_test, tost or seed_spread)")
    bad = out["why_not_shown"].fillna("").astype(str) != ""
    for c in out.columns:
        if pd.api.types.is_float_dtype(out[c]):
            out[c] = out[c].round(3 if readable and c in P_COLUMNS else 2 if readable else digits)
    if readable:
        for lo, hi, name in (("ci_low", "ci_high", "95% CI"), ("ci90_low", "ci90_high", "90% CI")):
            if lo in out.columns and hi in out.columns:
                both = out[lo].notna() & out[hi].notna()
                out.insert(out.columns.get_loc(lo), name, np.where(both, out[lo].astype(str) + " to " +
                                                                    out[hi].astype(str), ""))
                out = out.drop(columns=[lo, hi])
        out = out.drop(columns=[c for c in TECHNICAL if c in out.columns])
        for c in ("before", "after"):
            if c in out.columns:
                out[c] = out[c].map(lambda v: PROTOCOL_WORDS.get(v, v))
    for c in (*HIDDEN, "95% CI", "90% CI", "p_tost", "equivalent", "margin_power80",
              "drop_over_seed_sd", "F", "sd_between", "sd_within", "share_between", "found"):
        if c in out.columns:
            out[c] = out[c].astype(object)
            out.loc[bad, c] = "not shown"
    if readable:
        if not bad.any():
            out = out.drop(columns="why_not_shown")
        out = out.astype(object).where(out.notna(), "")
        out = out.map(lambda v: ("yes" if v else "no") if isinstance(v, (bool, np.bool_)) else v)  # words, not True
        out = out.rename(columns=READABLE)
        out = out.set_index("metric") if "metric" in out.columns else out  # no column of row numbers
    return out



def describe_drop(row: dict, label: str = "mAP") -> str:
    """One sentence on a paired test's row: the drop, and its test or why there is none."""
    what = {"orig_anon": "on anonymized test data", "anon_anon": "after retraining on anonymized data"}
    head = (f"Over {units_text(int(row['n_pairs']), row.get('unit'))}, {label} drops by "
            f"{row['mean_difference']:.2f} points {what.get(row['after'], 'after ' + str(row['after']))}")
    if row.get("why_not_shown"):
        return f"{head}; no test is reported ({row['why_not_shown']})."
    return (f"{head} (one-sided t = {row['t']:.2f}, p = {row['p_value']:.2g}, d_z = {row['cohens_dz']:.2f}; "
            f"bootstrap 95% interval {row['ci_low']:.2f} to {row['ci_high']:.2f}; the smallest drop this test "
            f"finds with power 0.8 is {row['mde']:.2f} points).")


def describe_tost(row: dict, label: str = "mAP") -> str:
    """One sentence on a TOST row: equivalent within the margin or not, or why it was not run."""
    head = f"Within ±{row['margin']:g} {label} point{'' if row['margin'] == 1 else 's'}"
    if row.get("why_not_shown"):
        return f"{head}: no equivalence test ({row['why_not_shown']})."
    verdict = "equivalent" if row["equivalent"] else "not shown equivalent"
    return (f"{head}: {verdict} (TOST p = {row['p_tost']:.2g}, 90% interval of the drop "
            f"{row['ci90_low']:.2f} to {row['ci90_high']:.2f}, "
            f"{units_text(int(row['n_pairs']), row.get('unit'))}).")


def describe_seed_spread(spread: pd.DataFrame, after: str = "orig_anon") -> str:
    """Sentences comparing each model's mean drop with its seed-to-seed SD, or saying why they cannot."""
    rows = spread[spread["after"] == after]
    if rows.empty:
        raise ValueError(f"no seed-spread rows for comparison '{after}'")
    parts = []
    for r in rows.itertuples():
        seeds = plural(int(r.n_seeds), "seed")
        if np.isnan(r.seed_sd):
            parts.append(f"{r.model}: mean drop {r.mean_drop:.2f} points over {seeds}; the seed-to-seed spread "
                         f"is not measured with {seeds}.")
            continue
        ratio = (f", {abs(r.drop_over_seed_sd):.1f} times the seed SD"
                 if np.isfinite(r.drop_over_seed_sd) else "")
        test = (f" (no test: {r.why_not_shown})" if r.why_not_shown
                else f" (one-sided p = {r.p_value:.2g} over seeds)")
        parts.append(f"{r.model}: mean drop {r.mean_drop:.2f} points against a seed-to-seed SD of "
                     f"{r.seed_sd:.2f} over {seeds}{ratio}{test}.")
    return " ".join(parts)


def load_paper_claims() -> pd.DataFrame:
    """The averages Section IV-B states (data/paper/claims_section_IV_B.csv): metric, protocol, claimed_mean,
    claimed_p_below."""
    return pd.read_csv(paper_results_path().parent / "claims_section_IV_B.csv")


def check_claims(results: pd.DataFrame, claims: pd.DataFrame) -> pd.DataFrame:
    """Each stated average beside the mean of the tables over every (dataset, model) cell: the claims'
    columns plus `mean_from_tables` and `difference` (tables minus stated, points)."""
    means = results.groupby("protocol")[list(METRICS)].mean().stack().rename("mean_from_tables")
    means.index.names = ["protocol", "metric"]
    check = claims.merge(means.reset_index(), on=["metric", "protocol"])
    check["difference"] = check.mean_from_tables - check.claimed_mean
    return check


def largest_gain(results: pd.DataFrame, metric: str = "mAP", before: str = "orig_orig",
                 after: str = "orig_anon") -> dict:
    """The (dataset, model) cell whose `metric` rises most from `before` to `after` (the pair the paired
    t-test leans on): its dataset, model and gain (after minus before, points)."""
    wide = results.pivot_table(index=["dataset", "model"], columns="protocol", values=metric)
    wide = wide.reindex(columns=[before, after])
    gain = (wide[after] - wide[before]).dropna().sort_values()
    if gain.empty:
        raise ValueError(f"no (dataset, model) cell has {metric} under both {before} and {after}")
    dataset, model = gain.index[-1]
    return {"dataset": dataset, "model": model, "gain": float(gain.iloc[-1])}


def pooled_row(tests: pd.DataFrame, metric: str = "mAP", after: str = "orig_anon") -> dict:
    """One comparison's pooled row of a `test_all` table (dataset "all" where the tests were also run within
    datasets), as a dict."""
    rows = tests[(tests.metric == metric) & (tests["after"] == after)]
    if "dataset" in rows.columns:
        rows = rows[rows.dataset == "all"]
    if rows.empty:
        raise ValueError(f"no pooled test of {metric} against {after} in the table")
    return rows.iloc[0].to_dict()
