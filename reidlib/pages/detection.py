"""What chapter 1 shows (paper Section III-A, Table II): the dataset beside the paper's, the detector's boxes,
the share of crops with a face per camera, and the default box where nothing is found."""
from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns

from ..book import plots, tables
from ..stages import datasets, detection, recall, synthetic

STRICT = 0.5  # the stricter threshold of the chapter's first exercise (glued as ex_*_05)
SHOWN_DETECTIONS = ["image", "x0", "y0", "x1", "y1", "score", "source"]
NOTHING_MISSED = "every crop has a detected face: no default box is needed"


def split_table(records: pd.DataFrame):
    """Identities, cameras and images per split of the dataset, for reading (a dash for a split it lacks)."""
    return tables.shown(datasets.summary(records), index="split", digits=0)


def table_ii(records: pd.DataFrame, name: str):
    """The paper's Table II with this run's dataset as its last row (Section III, Table II), for reading.

    The dataset column is shown as written: the run's row keeps its own name (a registry name would read as
    the paper dataset whose layout it copies)."""
    table = datasets.compare_table_ii(records, name).rename(columns={"dataset": "name"})
    return tables.shown(table, index="name", digits=0, headers={"name": "dataset"})


def detections_table(dets: pd.DataFrame, n: int = 5):
    """The first `n` rows of the detections table (image, box, score, source), for reading."""
    return tables.shown(dets[SHOWN_DETECTIONS].head(n), index="image", digits=1)


def read_identities(root: str | Path) -> pd.DataFrame | None:
    """The generated dataset's identity table (identities.csv: pid, clothing_source, ...), or None for a
    dataset without one."""
    path = Path(root) / "identities.csv"
    return pd.read_csv(path) if path.is_file() else None


def identity_text(identities: pd.DataFrame | None, dataset: str) -> str:
    """How many identities only their face tells apart (those copying another's clothing), or, for a real
    dataset without an identity table, that hits and misses are judged by eye."""
    if identities is None:
        return (f"This is a real dataset ({dataset}): no table says which identities look alike, "
                "and no ground truth marks the faces, so hits and misses below are judged by eye.")
    twins = identities[identities.pid != identities.clothing_source]
    return (f"Of the {len(identities)} identities, {len(twins)} copy another identity's clothing, hair and build: "
            "for them and their twins, only the face carries identity. This is the knob "
            "`dataset.face_identity_share`: raise it, and anonymization removes more of what tells people apart.")


def scores_figure(dets: pd.DataFrame, rates: pd.DataFrame):
    """Left, the detection scores; right, the share of crops with a detected face per camera and split."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3))
    sns.histplot(dets.score, bins=20, ax=axes[0])
    axes[0].set_xlabel("detection score")
    sns.barplot(data=rates, x="camid", y="rate", hue="split", ax=axes[1])
    axes[1].set_xlabel("camera")
    axes[1].set_ylabel("share of crops with a detected face")
    sns.move_legend(axes[1], "upper left", bbox_to_anchor=(1, 1), title="split")  # beside the bars, not on them
    fig.tight_layout()
    return fig


def default_box_cover(view: dict, truth: pd.DataFrame | None, iou: float) -> tuple[int, int]:
    """(covered, faces): of the visible true faces on the crops holding a default box, how many the box
    matches at `iou` or more; (0, 0) without ground truth."""
    if truth is None:
        return 0, 0
    faces = truth[truth.image.isin(set(view["rows"].image))]
    if faces.empty:
        return 0, 0
    return int(recall.match(faces, view["rows"], iou).matched.sum()), len(faces)


def default_box_text(view: dict, truth: pd.DataFrame | None, iou: float) -> str:
    """What the default-box figure shows (`detection.default_box_view`): the run's own default boxes, or the
    paper's box stretched to these crops on the crops the detector missed and how many true faces it covers."""
    if view["written"]:
        return (f"This run wrote the default box {view['box']} on {view['crops']} of {view['total']} crops, "
                "those where the detector found nothing:")
    if not view["crops"]:
        return "The detector found a face in every crop: no default box is needed."
    w, h = view["size"]
    box = ", ".join(f"{v:.0f}" for v in view["box"])
    text = (f"This run sets no default box. Below, the paper's box stretched to these {w}x{h} crops, "
            f"({box}), on the {view['crops']} crops where nothing was found")
    covered, faces = default_box_cover(view, truth, iou)
    if faces:
        text += (f": it would cover {covered} of their {faces} visible faces at IoU >= {iou}, a fixed box being "
                 "a guess where the head usually is")
    return text + "."


def default_box_figure(root: str | Path, view: dict, truth: pd.DataFrame | None):
    """The crops holding a default box, with it (dashed orange) and the true face (green); or a note that
    every crop has a detected face."""
    if not view["images"]:
        return plots.note_figure(NOTHING_MISSED)
    return plots.crop_gallery(root, view["images"], view["rows"], truth)


def strict_numbers(dets: pd.DataFrame) -> dict[str, int]:
    """Boxes and crops a rerun at the exercise's stricter threshold (STRICT) keeps."""
    kept = detection.kept_at(dets, STRICT)
    return {"ex_boxes_05": len(kept), "ex_images_05": int(kept.image.nunique())}


def camera_numbers(rates: pd.DataFrame) -> dict:
    """The camera with the lowest share of crops with a detected face, its share and the best camera's, in percent."""
    by_cam = detection.camera_rates(rates)
    low = int(by_cam.idxmin())
    return {"ex_low_cam": low, "ex_low_rate": f"{100 * by_cam[low]:.0f}", "ex_high_rate": f"{100 * by_cam.max():.0f}"}


def camera_text(dataset, seed: int, camid: int) -> str:
    """How camera `camid` of the generated dataset differs from the others (optics blur and gain, drawn from
    `dataset` and `seed`); for a real dataset, that its cameras are described only by their images."""
    if dataset.name != "synthetic":
        return "the real dataset's cameras are described only by their images"
    cams = {c.camid: c for c in synthetic.make_cameras(dataset, seed)}
    others = [c for k, c in cams.items() if k != camid]
    return (f"its optics blur sigma is {cams[camid].blur:.2f} px and its gain {cams[camid].gain:.2f}, against "
            f"{sum(c.blur for c in others) / len(others):.2f} px and {sum(c.gain for c in others) / len(others):.2f} "
            "on average for the other cameras")


def no_face_numbers(truth: pd.DataFrame | None, records: pd.DataFrame, dataset: str) -> dict[str, str]:
    """The share of crops without a visible true face and the share that can hold a true detection, in
    percent; 'unknown' for a real dataset (no ground truth)."""
    if dataset != "synthetic" or truth is None:
        return {"ex_no_face": "unknown (no ground truth)", "ex_max_share": "unknown"}
    no_face = 1 - truth.image.nunique() / len(records)
    return {"ex_no_face": f"{100 * no_face:.0f}", "ex_max_share": f"{100 * (1 - no_face):.0f}"}


def hits_figure(root: str | Path, records: pd.DataFrame, dets: pd.DataFrame, truth: pd.DataFrame | None, n: int = 12):
    """Above, the first `n` crops with a box; below, the first `n` where none was written; detections red,
    true faces green."""
    found = records.image.isin(set(dets.image))
    images = records.image[found].head(n).tolist() + records.image[~found].head(n).tolist()
    return plots.crop_gallery(root, images, dets, truth)
