"""Face boxes: the box columns, overlap (IoU), non-maximum suppression and boxes grouped by image.

Shared by detection (stage 1), recall (stage 2), anonymization (stage 3) and the figures, so that no
stage imports another for these.
"""
from __future__ import annotations

import cv2
import numpy as np
import pandas as pd

BOX = ["x0", "y0", "x1", "y1"]  # pixels; x1 and y1 exclusive


def iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pairwise IoU of boxes a (N,4) and b (M,4) given as x0, y0, x1, y1 (x1/y1 exclusive)."""
    a = np.asarray(a, float).reshape(-1, 4)
    b = np.asarray(b, float).reshape(-1, 4)
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def nms(boxes: np.ndarray, scores: np.ndarray, iou: float = 0.3) -> np.ndarray:
    """Indices kept by greedy non-maximum suppression, highest score first (OpenCV's NMSBoxes)."""
    if len(boxes) == 0:
        return np.empty(0, np.int64)
    if len(boxes) == 1 and scores[0] > 0:  # most re-ID crops: one candidate, kept (NMSBoxes' rule), no call
        return np.zeros(1, np.int64)
    xywh = np.c_[boxes[:, :2], boxes[:, 2:4] - boxes[:, :2]].astype(np.float64)
    keep = cv2.dnn.NMSBoxes(xywh.tolist(), scores.astype(float).tolist(), 0.0, iou)
    return np.asarray(keep, np.int64).reshape(-1)


def boxes_by_image(detections: pd.DataFrame) -> dict[str, np.ndarray]:
    """Face boxes (N, 4: x0, y0, x1, y1) of each image in a detections table."""
    if detections.empty:
        return {}
    d = detections.sort_values("image", kind="stable")  # one sort and a split: a groupby costs seconds on 30k rows
    names, values = d["image"].to_numpy(), d[BOX].to_numpy()
    cuts = np.flatnonzero(names[1:] != names[:-1]) + 1
    return {names[start]: part for start, part in zip(np.r_[0, cuts], np.split(values, cuts))}
