"""What the anonymization chapter shows (paper Section III-B): crops before and after, the techniques side
by side, the residual-face audit, and what the copy changes outside the face boxes."""
from __future__ import annotations

from pathlib import Path

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..book import plots, tables
from ..core import images, registry
from ..stages import anonymize, datasets, detection

SHOWN = 10  # crops per gallery row
AUDIT_MEASURES = {"share_with_face_in_box": "face found inside an anonymized box",
                  "share_with_face_found": "any face found"}
AUDIT_COLUMNS = {"images_with_face_found": "images with a face found", "share_with_face_found": "share found",
                 "images_with_face_in_box": "images with a face in a box", "share_with_face_in_box": "share in a box",
                 "max_score_in_box": "highest score in a box"}
BOX = ["x0", "y0", "x1", "y1"]
SWAP_LEAKS = 0.1  # a share of swapped faces still matching their owner above which the swap is not anonymization


def boxes_of(detections: pd.DataFrame, image: str) -> np.ndarray:
    """One image's detected face boxes (x0, y0, x1, y1)."""
    return detections[detections.image == image][BOX].to_numpy()


def shown_images(detections: pd.DataFrame, n: int = SHOWN) -> list[str]:
    """The first `n` images, by name, with a detected face."""
    return detections.sort_values("image").drop_duplicates("image").image.head(n).tolist()


def before_after_figure(root: Path, anon: Path, shown: list[str]):
    """Original crops above their anonymized copies, as the copy holds them."""
    return plots.image_rows({"original": [images.read_rgb(root / i) for i in shown],
                             "anonymized": [images.read_rgb(anon / i) for i in shown]})


def real_figure(real_sample: str, detection_section, section):
    """Real query crops (a Market-1501 folder the reader gives) before and after anonymization, or a note."""
    if not real_sample:
        return plots.note_figure("no real crops are given (the parameter real_sample is empty), so no real "
                                 "person's face is shown here")
    real = datasets.read_market(real_sample)
    shown = real[real.split == "query"].image.head(SHOWN).tolist()
    detect = detection.detector_from_config(detection_section)
    params = anonymize.technique_params(section.technique, section)
    originals = [images.read_rgb(Path(real_sample) / i) for i in shown]
    anonymized = [anonymize.anonymize_image(o, detect(o)[:, :4], section.technique, section.margin, **params)
                  for o in originals]
    return plots.image_rows({"original": originals, "anonymized": anonymized})


def widest_face(detections: pd.DataFrame) -> pd.Series:
    """The detection with the widest box (its width in `w`)."""
    return detections.assign(w=detections.x1 - detections.x0).sort_values("w").iloc[-1]


def techniques_figure(root: Path, detections: pd.DataFrame, section, pad: int = 6, zoom: int = 4):
    """The crop with the widest face under every registered technique, and its head enlarged."""
    biggest = widest_face(detections)
    img = images.read_rgb(root / biggest.image)
    boxes = boxes_of(detections, biggest.image)
    versions = {"original": img, **{t: anonymize.anonymize_image(img, boxes, t, section.margin,
                                                                  **anonymize.technique_params(t, section))
                                    for t in registry.TECHNIQUES}}
    x0, y0, x1, y1 = boxes[0].round().astype(int)
    heads = [cv2.resize(v[max(y0 - pad, 0):y1 + pad, max(x0 - pad, 0):x1 + pad], None, fx=zoom, fy=zoom,
                        interpolation=cv2.INTER_NEAREST) for v in versions.values()]
    return plots.image_rows({"crop": list(versions.values()), f"head x{zoom}": heads}, col_titles=list(versions))


def load_audit(audit_file: Path | None) -> tuple[pd.DataFrame | None, pd.DataFrame | None]:
    """The residual-face audit's summary and its residual faces (both None when the run has no audit)."""
    if audit_file is None:
        return None, None
    return pd.read_csv(audit_file.with_name("summary.csv")), pd.read_csv(audit_file)


def audit_numbers(summary: pd.DataFrame | None) -> dict[str, str]:
    """Per technique, the share (%) of images with a face found inside a box (`in_box_<t>`) and anywhere (`found_<t>`)."""
    out: dict[str, str] = {}
    for r in (summary if summary is not None else pd.DataFrame()).itertuples():
        out[f"in_box_{r.technique}"] = f"{100 * r.share_with_face_in_box:.1f}"
        out[f"found_{r.technique}"] = f"{100 * r.share_with_face_found:.1f}"
    return out


def audit_figure(summary: pd.DataFrame | None):
    """Bars per technique: the share of images with a face found inside an anonymized box, and anywhere."""
    if summary is None:
        return plots.note_figure("anonymization.audit is false: no residual-face audit")
    long = summary.melt(id_vars="technique", value_vars=list(AUDIT_MEASURES), var_name="measure",
                        value_name="share of images")
    long["measure"] = long.measure.map(AUDIT_MEASURES)
    fig, ax = plt.subplots(figsize=(7, 3))
    sns.barplot(data=long, x="technique", y="share of images", hue="measure", ax=ax)
    ax.set_ylim(0, max(0.05, long["share of images"].max() * 1.2))
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1), title="")  # beside the bars, not on them
    fig.tight_layout()
    return fig


def audit_table(summary: pd.DataFrame | None):
    """The audit's summary for reading (one row per technique, columns in words, a dash where a measure does
    not apply), or None without an audit."""
    return None if summary is None else tables.shown(summary, index="technique", digits=3, headers=AUDIT_COLUMNS)


def residual_figure(root: Path, residual: pd.DataFrame | None, detections: pd.DataFrame, section, n: int = 8):
    """The strongest faces the detector still finds after anonymization, boxed in red on the anonymized crop."""
    if residual is None or residual.empty:
        return plots.note_figure("no face found after anonymization")
    worst = residual.sort_values("score", ascending=False).drop_duplicates("image").head(n)
    crops, titles = [], []
    for r in worst.itertuples():
        anon = anonymize.anonymize_image(images.read_rgb(root / r.image), boxes_of(detections, r.image), r.technique,
                                         section.margin, **anonymize.technique_params(r.technique, section))
        x0, y0, x1, y1 = (int(round(v)) for v in (r.x0, r.y0, r.x1, r.y1))  # noqa: RUF046 (numpy floats)
        cv2.rectangle(anon, (x0, y0), (x1 - 1, y1 - 1), (255, 0, 0), 1)
        crops.append(anon)
        titles.append(f"{r.technique} {r.score:.2f}")
    return plots.image_rows({"residual": crops}, col_titles=titles)


def outside_change(root: Path, anon: Path, image: str, detections: pd.DataFrame, margin: int) -> dict:
    """Where one copy differs from its original outside the anonymized boxes and outside the JPEG blocks
    that touch them (`anonymize.changed_pixels`), as shares."""
    raw = (root / image).read_bytes()
    original, copy = images.read_image(root / image), images.read_image(anon / image)
    changed = [c for c in (anonymize.clip_box(b, original.shape, margin) for b in boxes_of(detections, image))
               if c is not None]
    c = anonymize.changed_pixels(original, copy, np.asarray(changed, float).reshape(-1, 4), raw, image)
    return {"share_outside_boxes": c["changed_outside_boxes"] / max(c["pixels_outside_boxes"], 1),
            "share_outside_blocks": c["changed_outside_blocks"] / max(c["pixels_outside_blocks"], 1),
            "max_outside_boxes": c["max_change_outside_boxes"]}


def outside_text(change: dict, image: str, encode: str, jpeg_quality: int) -> str:
    """Solution text: what the copy changes outside the face boxes, and why, for its encoding mode."""
    head = (f"{100 * change['share_outside_boxes']:.0f}% of the pixels outside the boxes of `{image}` differ "
            f"(at most {change['max_outside_boxes']} grey levels)")
    if encode == "reencode":
        return (f"Yes: {head}. The copy is encoded as JPEG again (quality {jpeg_quality}, `dataset.jpeg_quality`), "
                "and every JPEG encoding changes pixels a little; the anonymization itself changes only the boxes.")
    return (f"{head}; outside the 16x16 JPEG blocks that overlap a box, {100 * change['share_outside_blocks']:.0f}% "
            "differ. The copy is exact (`anonymization.encode: exact`): it keeps the original's coefficients and "
            "rewrites only the blocks a face touches, so a model sees the original image everywhere else.")


def swap_text(summary: pd.DataFrame | None) -> str:
    """What the audit says of the swap: the share of swapped faces that still pass for their owner under dlib's
    face descriptor (its verification threshold), and so whether the swap anonymizes at all."""
    rows = pd.DataFrame() if summary is None else summary[summary.technique == "swap"]
    if rows.empty or pd.isna(rows.share_swapped_matching_owner.iloc[0]):
        return "The audit did not check whether a swapped face still passes for its owner in this run."
    share = float(rows.share_swapped_matching_owner.iloc[0])
    verdict = ("so at these face sizes the swap does not hide who someone is, and this book does not count it "
               "as anonymization" if share >= SWAP_LEAKS else "so the swap hides most owners at these sizes")
    return (f"The swap puts another person's face in the box. Under dlib's face descriptor, {100 * share:.0f}% of "
            f"the swapped faces still pass for their owner (distance below its verification threshold), {verdict}.")
