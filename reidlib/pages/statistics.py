"""What chapter 6 shows (paper Section IV-B): the paper's paired t-test recomputed from Tables III-VII, its
stated averages checked against the tables, the same test on this run, and the loss followed down to queries."""
from __future__ import annotations

import numpy as np
import pandas as pd
from IPython.display import Markdown

from ..analyses import decomposition, per_query
from ..book import tables
from ..core.config import Config
from ..core.runfiles import variant_root
from ..stages import statistics
from . import evaluation

# the p-value columns of a tests table and their headers once statistics.display_tests has renamed them
P_HEADERS = {"p_value": statistics.READABLE["p_value"], "wilcoxon_p": statistics.READABLE["wilcoxon_p"],
             "p_tost": statistics.READABLE["p_tost"]}
CI_COLUMNS = {"95% CI": ("ci_low", "ci_high"), "90% CI": ("ci90_low", "ci90_high")}  # display_tests' names
CLAIM_HEADERS = {"claimed_mean": "mean the paper states", "claimed_p_below": "p the paper states",
                 "mean_from_tables": "mean of Tables III-VII", "difference": "tables minus stated"}
EFFECT_HEADERS = {"mean_delta_ap": "mean change in AP", "factor": "query split by", "level": "group"}
OTHER_TABLE = "The table tested here is `{results}` (`statistics.results`), not this run's own. "
NO_PER_QUERY = ("The per-query analysis needs this run's own models; it is skipped for a table given in "
                "`statistics.results`.")


def drop_numbers(tests: pd.DataFrame) -> dict:
    """Each pooled comparison's p, mean drop, t, detectable drop, bootstrap interval and Wilcoxon p, keyed
    '<quantity>_<metric>_<after>' as the page glues them, and the number of pairs (Section IV-B's test)."""
    out = {}
    for r in tests.itertuples():
        key = f"{r.metric}_{r.after}"
        out.update({f"p_{key}": f"{r.p_value:.2g}", f"diff_{key}": f"{r.mean_difference:.2f}",
                    f"t_{key}": f"{r.t:.2f}", f"mde_{key}": f"{r.mde:.2f}",
                    f"ci_{key}": f"{r.ci_low:.2f} to {r.ci_high:.2f}", f"wilcoxon_{key}": f"{r.wilcoxon_p:.2g}"})
    out["n_pairs"] = int(tests.n_pairs.iloc[0])
    return out


def outlier_numbers(results: pd.DataFrame, metric: str = "mAP") -> dict:
    """The pair that gains most on anonymized test data ("<model> on <dataset>") and its gain in points."""
    top = statistics.largest_gain(results, metric)
    return {"outlier": f"{top['model']} on {top['dataset']}", "outlier_gain": f"{top['gain']:.1f}"}


def claim_numbers(check: pd.DataFrame) -> dict:
    """Each average the paper states and the tables' own mean of it, keyed 'claim_<metric>_<protocol>' and
    'table_<metric>_<protocol>' (Section IV-B's stated means against Tables III-VII)."""
    out = {}
    for r in check.itertuples():
        out[f"claim_{r.metric}_{r.protocol}"] = f"{r.claimed_mean:.2f}"
        out[f"table_{r.metric}_{r.protocol}"] = f"{r.mean_from_tables:.2f}"
    return out


def closest_numbers(closest: dict) -> dict:
    """The subset of datasets and models closest to the stated averages ('A, B with X, Y') and its worst gap
    in points (`statistics.closest_subset`)."""
    subset = f"{', '.join(closest['datasets'])} with {', '.join(closest['models'])}"
    return {"closest_gap": f"{closest['max_gap']:.2f}", "closest_subset": subset}


def claims_table(check: pd.DataFrame):
    """The stated averages of Section IV-B beside the means of Tables III-VII (`statistics.check_claims`)."""
    shown = check.assign(protocol=check.protocol.map(statistics.PROTOCOL_WORDS))
    return tables.shown(shown, headers=CLAIM_HEADERS)


def tests_table(tests: pd.DataFrame, headers: dict[str, str] | None = None):
    """A table of paired tests for reading (`statistics.display_tests`: "not shown" and why where a test would
    be degenerate), its p-values and intervals written as the book's tables write them, a dash where a value
    is missing."""
    out = statistics.display_tests(tests)
    index = out.index.name
    out = out.reset_index() if index else out
    ok = tests["why_not_shown"].fillna("").astype(str).eq("").to_numpy()
    for column, header in P_HEADERS.items():
        if column in tests.columns and header in out.columns:
            out[header] = [tables.p_value(p) if good else text for p, good, text in zip(tests[column], ok, out[header])]
    for header, (low, high) in CI_COLUMNS.items():
        if header in out.columns:
            out[header] = [f"{a:.2f} to {b:.2f}" if good and pd.notna(a) and pd.notna(b) else text
                           for a, b, good, text in zip(tests[low], tests[high], ok, out[header])]
    reason = statistics.READABLE["why_not_shown"]
    for column in out.columns.drop(reason, errors="ignore"):
        out[column] = out[column].map(lambda v: "–" if isinstance(v, str) and v == "" else v)
    return tables.shown(out, index=index, headers=headers)


def run_text(tests: pd.DataFrame, results_file: str = "") -> str:
    """The sentence on this run's first mAP drop (on anonymized test data) and its test, saying first which
    table was tested where `statistics.results` names another one."""
    text = statistics.describe_drop(statistics.pooled_row(tests, "mAP", "orig_anon"), "mAP")
    return (OTHER_TABLE.format(results=results_file) + text) if results_file else text


def effects_table(effects: pd.DataFrame):
    """The per-query effects (mean change in AP per group of queries, with its interval or why none)."""
    return tests_table(effects, EFFECT_HEADERS) if len(effects) else tables.shown(effects, headers=EFFECT_HEADERS)


def per_query_items(cfg: Config, table: pd.DataFrame, effects: pd.DataFrame) -> dict:
    """What the page glues for the per-query analysis: the sentences on queries with and without a visible
    face, the number of queries, the effects figure and the biggest losers' crops; only the sentence saying
    why where the analysis does not apply (`per_query.applies`)."""
    if not per_query.applies(cfg):
        return {"per_query_text": Markdown(NO_PER_QUERY)}
    losers = per_query.biggest_losers(table)
    return {"per_query_text": Markdown(per_query.describe_effects(effects, "face")),
            "n_queries": int(table.image.nunique()),
            "fig_effects": per_query.plot_effects(effects),
            "fig_losers": per_query.loser_gallery(losers, variant_root(cfg, "orig"), variant_root(cfg, "anon"))}


NO_PARTS = ("The drop is taken apart only for this run's own models; it is not for a table given in "
            "`statistics.results`.")


def drop_parts(cfg: Config, metric: str = "mAP") -> tuple[str, object]:
    """The orig→anon drop's parts (re-encoding, face, boxes, interaction; chapter 5) with each part's paired
    test over (model, seed) runs and its TOST: the sentence on the face part, and the table."""
    if not per_query.applies(cfg):
        return NO_PARTS, None
    summary = decomposition.load(cfg)["summary"]
    verdict = decomposition.face_verdict(summary, metric, cfg.statistics.alpha)
    return evaluation.decomposition_text(verdict), evaluation.decomposition_table(summary, metric)


def outlier_solution(results: pd.DataFrame, alpha: float = 0.05) -> str:
    """Exercise 1's answer: the orig→anon mAP test's t-test and Wilcoxon p-values with and without the pair
    that gains most (`statistics.largest_gain`)."""
    top = statistics.largest_gain(results, "mAP")
    without = results[~((results.dataset == top["dataset"]) & (results.model == top["model"]))]

    def ps(table: pd.DataFrame) -> tuple[float, float]:
        t = statistics.test_all(table, alpha=alpha)
        r = t[(t.metric == "mAP") & (t["after"] == "orig_anon")].iloc[0]
        return r.p_value, r.wilcoxon_p

    (t_all, w_all), (t_wo, w_wo) = ps(results), ps(without)
    return (f"For mAP, tested on anonymized images: the t-test's p-value goes from {t_all:.2g} to {t_wo:.2g} "
            f"without {top['model']} on {top['dataset']}, the Wilcoxon test's from {w_all:.2g} to {w_wo:.2g}. "
            + ("The t-test moves more: the outlier widened the spread of the differences, and ranks barely feel it."
               if abs(np.log10(t_wo / t_all)) > abs(np.log10(w_wo / w_all)) else
               "Here the Wilcoxon test moves as much as the t-test: the outlier is one rank among few."))


def detectable_solution(tests: pd.DataFrame, drop: float = 0.5, alpha: float = 0.05) -> str:
    """Exercise 2's answer: the smallest drop the paper's first mAP comparison detects with 10, 30 and 100
    pairs, and the pairs a drop of `drop` points needs (80% power)."""
    r = tests[(tests.metric == "mAP") & (tests["after"] == "orig_anon")].iloc[0]
    sd = float(r.sd_difference)
    sizes = ", ".join(f"{statistics.smallest_detectable(n, sd, alpha):.2f} points with {n} pairs" for n in (10, 30, 100))
    n = statistics.pairs_needed(drop, sd, alpha)
    return (f"With the SD of the paper's differences ({sd:.2f} points), the smallest detectable mAP drop is {sizes}. "
            f"A drop of {drop:g} points needs {n} pairs, against the paper's {int(r.n_pairs)}.")


def gainers_solution(pq: pd.DataFrame) -> str:
    """Exercise 3's answer: how many queries gain AP under anonymization, and how they differ from the rest
    (a face at all, its width, the audit's hits)."""
    if pq.empty:
        return "This run has no per-query table (a results table was given instead of the run's own models)."
    gain = pq.delta_ap > 0
    if not gain.any():
        return f"No query gains AP here (of {len(pq)} query-model rows)."

    def describe(g: pd.DataFrame) -> str:
        width = g.face_width.dropna()
        w = f", faces {width.mean():.1f} px wide on average" if len(width) else ""
        return f"{100 * g.has_face.mean():.0f}% show a face{w}"

    return (f"{int(gain.sum())} of {len(pq)} query-model rows gain AP (mean gain {pq.delta_ap[gain].mean():.1f} points): "
            f"{describe(pq[gain])}, against {describe(pq[~gain])} for the rest.")
