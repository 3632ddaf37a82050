"""What the recall chapter shows (paper Section III-A): recall and precision with intervals, recall by face
size, the faces the detector missed, and the paper's inspections as proportions."""
from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from ..book import plots, prose
from ..core import runfiles
from ..core.config import Config
from ..pipeline import rundir
from ..stages import recall

NO_TRUTH = "(no ground truth in this run)"
SHOWN_SHEET = 36  # crops of the inspection sheet drawn on the page
SHOWN_MISSED = 12


@dataclass
class Misses:
    """The faces the detector missed: the matched table (None without ground truth), sentence and figure."""
    matched: pd.DataFrame | None
    text: str
    figure: object


def rates_table(result: dict) -> pd.DataFrame:
    """Recall and precision against ground truth: counts, value, Wilson and Clopper-Pearson 95% intervals."""
    return pd.DataFrame({k: {"k": v["k"], "n": v["n"], "value": round(v["value"], 3),
                             "Wilson 95%": tuple(round(x, 3) for x in v["wilson"]),
                             "Clopper-Pearson 95%": tuple(round(x, 3) for x in v["clopper_pearson"])}
                         for k, v in (("recall", result["recall"]), ("precision", result["precision"]))}).T


def inspection_text(result: dict, sheet: pd.DataFrame) -> str:
    """Without ground truth: what to inspect, the share of crops with a detection, and the filled sheet's recall."""
    rates = pd.DataFrame(result["detection_rates"])
    text = prose.inspection_sentence(len(sheet), rates.with_face.sum() / rates.images.sum())
    if "inspection" not in result:
        return text
    r = result["inspection"]
    return (text + f" From the filled sheet: {r['k']} of {r['n']} visible faces detected, recall "
            f"{100 * r['value']:.1f}% (Wilson 95% {100 * r['wilson'][0]:.1f}-{100 * r['wilson'][1]:.1f}%).")


def overview(cfg: Config, result: dict) -> tuple[str, object]:
    """The chapter's opening: a sentence, and the rates table (ground truth) or the inspection sheet's crops."""
    if result["ground_truth"]:
        return prose.recall_sentence(result), rates_table(result)
    sheet = pd.read_csv(rundir.stage_recall(cfg).with_name("inspection_template.csv"))
    shown = sheet.head(SHOWN_SHEET)
    fig = plots.crop_gallery(runfiles.dataset_root(cfg), shown.image, rundir.load_detections(cfg),
                             titles=[str(n) for n in shown.number])
    return inspection_text(result, sheet), fig


def size_figure(by_size: pd.DataFrame, by_condition: pd.DataFrame):
    """Recall against face width and by how the face is seen, or a note when there is no ground truth."""
    if by_size.empty:
        return plots.note_figure("no ground-truth faces: no recall by size")
    return plots.recall_by_size(by_size, by_condition)


def misses(cfg: Config, result: dict) -> Misses:
    """The true faces no detection matched (they stay visible in the copy), drawn with their boxes."""
    if not result["ground_truth"]:
        return Misses(None, "Without ground truth the missed faces are unknown; chapter 1 shows crops where "
                            "nothing was found.", plots.note_figure("without ground truth the missed faces are unknown"))
    truth, detections = rundir.ground_truth(cfg), rundir.load_detections(cfg)
    matched = recall.match(truth, detections, cfg.recall.iou)
    missed = matched[~matched.matched].image.head(SHOWN_MISSED).tolist()
    fig = (plots.crop_gallery(runfiles.dataset_root(cfg), missed, detections, truth) if missed
           else plots.note_figure("the detector missed no true face"))
    return Misses(matched, prose.missed_sentence(int((~matched.matched).sum())), fig)


def faces_for(confidence: float, lower: float = 0.95) -> int:
    """How many faces an inspection with no miss must look at before Wilson's lower bound reaches `lower`."""
    n = 1
    while recall.rate(n, n, confidence).wilson[0] < lower:
        n += 1
    return n


def exercise_numbers(cfg: Config, result: dict, by_size: pd.DataFrame, found: Misses) -> dict[str, str]:
    """The exercises' numbers (recall at IoU 0.3 and 0.7, the intervals' widths) and the run's summary."""
    if found.matched is None:
        return {**{k: NO_TRUTH for k in ("ex_recall_03", "ex_recall_07", "ex_recall_here", "ex_wilson_width",
                                         "ex_cp_width")}, "summary_text": found.text}
    truth, detections = rundir.ground_truth(cfg), rundir.load_detections(cfg)
    at = {iou: recall.evaluate(truth, detections, iou)["recall"]["value"] for iou in (0.3, 0.7)}
    r = result["recall"]
    low = by_size.loc[by_size.recall.idxmin()]
    summary = (f"Recall {100 * r['value']:.1f}% (Wilson 95% {100 * r['wilson'][0]:.1f}-{100 * r['wilson'][1]:.1f}%) "
               f"over {r['n']} true faces, lowest ({100 * low.recall:.0f}%) at face width {low.face_width}; "
               f"{prose.count(int((~found.matched.matched).sum()), 'missed face')} stay visible in the anonymized copy.")
    return {"ex_recall_03": f"{100 * at[0.3]:.1f}", "ex_recall_07": f"{100 * at[0.7]:.1f}",
            "ex_recall_here": f"{100 * r['value']:.1f}",
            "ex_wilson_width": f"{100 * (r['wilson'][1] - r['wilson'][0]):.1f}",
            "ex_cp_width": f"{100 * (r['clopper_pearson'][1] - r['clopper_pearson'][0]):.1f}", "summary_text": summary}
