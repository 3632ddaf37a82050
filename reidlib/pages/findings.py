"""What the findings chapter shows (the paper's Sections IV-V and its conclusion): its claims with their
verdicts, equivalence tests on its tables, the run's drop against its seed spread, and the controls."""
from __future__ import annotations

import math

import pandas as pd

from ..analyses import controls, findings, per_query
from ..analyses.controls import untaught
from ..book import tables
from ..stages import statistics
from . import evaluation

NO_PER_QUERY = ("The per-query analysis needs this run's own models; it is skipped for a table given in "
                "`statistics.results`.")


def header_numbers(share: float, margins: list[float]) -> dict[str, str]:
    """The run's face share and the equivalence margins, as the page's sentences read them."""
    return {"share": f"{share:g}", "margins": " and ".join(f"{m:g}" for m in margins),
            "largest_margin": f"{max(margins):g}"}


def tost_sentences(paper_tost: pd.DataFrame, margins: list[float]) -> dict[str, str]:
    """One sentence per (metric, protocol) at the smallest and the largest margin, keyed
    `tost_<metric>_<after>_<smallest|largest>` (Tables III-VII read by TOST)."""
    out = {}
    for which, m in (("smallest", min(margins)), ("largest", max(margins))):
        for r in paper_tost[paper_tost.margin == m].to_dict(orient="records"):
            out[f"tost_{r['metric']}_{r['after']}_{which}"] = statistics.describe_tost(r, findings.LABELS[r["metric"]])
    return out


def largest_margin_sentence(paper_tost: pd.DataFrame, margins: list[float], metric: str = "mAP",
                            after: str = "orig_anon") -> str:
    """The TOST sentence for one comparison at the largest margin."""
    rows = paper_tost[(paper_tost.metric == metric) & (paper_tost["after"] == after) & (paper_tost.margin == max(margins))]
    return statistics.describe_tost(rows.iloc[0].to_dict(), findings.LABELS[metric])


def first_run_drop(run_tests: pd.DataFrame, metric: str = "mAP", after: str = "orig_anon") -> str:
    """The run's first paired test of one metric and protocol, as a sentence."""
    rows = run_tests[(run_tests.metric == metric) & (run_tests["after"] == after)]
    return statistics.describe_drop(rows.iloc[0].to_dict(), findings.LABELS[metric])


def seed_spread_text(spread: pd.DataFrame, metric: str = "mAP", after: str = "orig_anon") -> str:
    """Each model's mean drop beside its seed-to-seed SD, as sentences."""
    return statistics.describe_seed_spread(spread[spread.metric == metric], after)


def control_text(controls: pd.DataFrame, metric: str = "mAP", after: str = "orig_anon") -> str:
    """One sentence per control (share 0 and share 1): its drop and test."""
    rows = controls[(controls.metric == metric) & (controls["after"] == after)]
    return " ".join(findings.describe_control(r) for r in rows.to_dict(orient="records"))


def control_verdict_text(controls: pd.DataFrame, training: pd.DataFrame | None = None) -> str:
    """The protocol drop as a measure of face importance, judged on the controls per model: 'for HACNN it fails
    (why); ...' (`findings.measure_checked`); a model the positive control did not teach (`training`: the
    controls' training accuracy) cannot tell."""
    return findings.measure_checked(controls, untaught=untaught(training))


def per_query_text(effects: list[dict]) -> str:
    """Sentences on which queries lose when faces are anonymized (chapter 6's split by face), or why none."""
    table = pd.DataFrame(effects)
    if table.empty:
        return NO_PER_QUERY
    return per_query.describe_effects(table.fillna({"why_not_shown": ""}), "face")


MOST = 0.5  # a share of the drop at or above which re-encoding explains most of it
NO_PARTS = ("The drop is taken apart only for this run's own models; it is not for a table given in "
            "`statistics.results`.")


def face_part_text(result: dict) -> str:
    """The verdict on faces from the face part of the drop (the technique on detected boxes, only the
    touched JPEG blocks rewritten), with re-encoding's share beside it; chapter 5 shows every part."""
    verdict = result.get("face_part")
    if not verdict:
        return NO_PARTS
    return evaluation.decomposition_text(verdict)


def paper_reading_text(result: dict, metric: str = "mAP") -> str:
    """What the decomposition implies for the paper's Tables III-VII: their orig→anon drop beside the share
    of this run's drop that re-encoding alone explains (the paper does not say how its copies were saved)."""
    verdict = result.get("face_part")
    paper = pd.DataFrame(result.get("paper_tests", []), columns=["metric", "after", "mean_difference"])
    row = paper[(paper.metric == metric) & (paper["after"] == "orig_anon")]
    if not verdict or row.empty or not math.isfinite(verdict.get("reencoding_share", float("nan"))):
        return ("The paper does not say how its anonymized images were saved; this run has no re-encoding "
                "part to set beside its drops.")
    drop, share = float(row.iloc[0]["mean_difference"]), verdict["reencoding_share"]
    if verdict["protocol"] <= 0:
        return (f"The paper's tables drop by {drop:.2f} {metric} points on average under orig→anon. In this run, on a "
                f"copy with every image encoded again, the orig→anon {metric} does not drop on average "
                f"({-verdict['protocol']:+.2f} points), so there is no drop to take apart here.")
    head = (f"The paper's tables drop by {drop:.2f} {metric} points on average under orig→anon; the paper does "
            f"not say how its anonymized images were saved. In this run, on a copy saved as anonymization tools save "
            f"one (every image encoded again), the orig→anon drop is {verdict['protocol']:.2f} points, and "
            f"re-encoding alone accounts for {verdict['reencoding']:.2f} ({100 * share:.0f}%)")
    own = (" This run's own copy changes only the JPEG blocks of the faces: its orig→anon drop is the face part "
           "above.")
    if share >= MOST:
        return head + (": most of it. If the paper's copies were re-encoded, its drops may measure the encoding "
                       "more than the face.") + own
    if share > 0:
        return head + ". If the paper's copies were re-encoded, part of its drops may measure the encoding." + own
    return head + ": none of it, so this run gives no reason to discount the paper's drops for encoding." + own


VERDICT_MARKS = {"reproduced": "✔ reproduced", "not reproduced": "✘ not reproduced",
                 "cannot tell here": "? cannot tell here"}


def claims_cards(claims: pd.DataFrame) -> str:
    """The claims as Markdown, one block per claim: the claim and its verdict, then the paper's tables
    recomputed, this run's evidence and why (one card per claim, readable at any column width)."""
    blocks = []
    for k, r in enumerate(claims.to_dict(orient="records"), start=1):
        verdict = VERDICT_MARKS.get(r["verdict"], r["verdict"])
        blocks.append(f"**{k}. {r['claim']}** — *{verdict}*\n\n"
                      f"- **The paper's tables, recomputed:** {r['paper_evidence']}\n"
                      f"- **This run:** {r['run_evidence']}\n"
                      f"- **Why:** {r['why']}")
    return "\n\n".join(blocks)


def controls_table(table: pd.DataFrame):
    """Every measure against both controls, for reading (one row per measure: a reading or a check, its verdict and
    why; the instrument and model columns only tie checks to readings)."""
    shown = ["measure", "role", "negative control", "positive control", "verdict", "why"]
    return tables.shown(table[[c for c in shown if c in table]], index="measure", headers={"role": "row"})


def controls_sentence(table: pd.DataFrame) -> str:
    """Which measures pass both controls, and so which ones a verdict on faces may rest on."""
    ok = controls.passing(table)
    if ok:
        named = "; ".join(f"({i}) {m}" for i, m in enumerate(ok, 1))  # the names hold commas of their own
        return (f"{'The measure' if len(ok) == 1 else f'The {len(ok)} measures'} that pass both controls, with no "
                f"check of {'its' if len(ok) == 1 else 'their'} instrument or model failed: {named}. "
                f"The verdict on faces in this run rests on {'it' if len(ok) == 1 else 'them'} alone.")
    return ("No measure passes both controls in this run, so none of them is shown here to find face use where it "
            "is built in and nothing where it is not: the verdicts above are readings of instruments this run "
            "could not validate, and the rows say why each one falls short.")


def detectable_text(by_dataset: pd.DataFrame, metric: str = "mAP", after: str = "orig_anon") -> str:
    """Per dataset of the paper's tables: the mean drop beside the smallest drop its pairs can detect (power
    0.8), and how many datasets' drops are below that (Tables III-VII, one (dataset) test each)."""
    rows = by_dataset[(by_dataset.metric == metric) & (by_dataset["after"] == after) & (by_dataset.dataset != "all")]
    parts = [f"{r.dataset} {r.mean_difference:.2f} against {r.mde:.2f} ({int(r.n_pairs)} pairs)"
             for r in rows.itertuples()]
    below = int((rows.mean_difference < rows.mde).sum())
    return (f"Mean {metric} drop against the smallest drop the test detects with power 0.8: {'; '.join(parts)}. "
            f"In {below} of {len(rows)} datasets the drop is smaller than what its pairs can detect.")
