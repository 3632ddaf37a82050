"""Attackers' measures and dlib's face descriptor as a face-recognition attacker (issue 15, beyond the paper).

The descriptor is dlib's ResNet `face_recognition_model_v1` (128-d, its weights shipped by the
`face_recognition_models` package, CC0). That package's `__init__` imports `pkg_resources`, which
current setuptools lacks, so its model files are located from the installed folder without importing it.
Scores: identification Rank-1 (query faces against gallery faces, Market-1501's rule) and
verification TAR at a fixed FAR over all pairs of test faces, both with ties broken at random in
expectation, so an attacker that sees identical faces scores exactly chance.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np
import pandas as pd

CHIP = 150  # the descriptor's input (pixels, square)
MODEL_FILES = {"descriptor": "dlib_face_recognition_resnet_model_v1.dat",
               "landmarks": "shape_predictor_5_face_landmarks.dat"}
ALIGNMENTS = ("box", "landmarks")


class AttackerUnavailable(RuntimeError):
    """dlib or the face_recognition_models package is not installed."""


def model_file(kind: str) -> Path:
    """Path of one of dlib's model files inside the installed `face_recognition_models` package."""
    if kind not in MODEL_FILES:
        raise ValueError(f"unknown dlib model '{kind}'; choose one of {', '.join(MODEL_FILES)}")
    spec = importlib.util.find_spec("face_recognition_models")  # finds the package without running it
    if spec is None or not spec.submodule_search_locations:
        raise AttackerUnavailable("face_recognition_models is not installed: pip install face_recognition_models")
    for folder in spec.submodule_search_locations:
        path = Path(folder) / "models" / MODEL_FILES[kind]
        if path.is_file():
            return path
    raise AttackerUnavailable(f"{MODEL_FILES[kind]} not found in face_recognition_models "
                              f"({', '.join(spec.submodule_search_locations)})")


def available() -> bool:
    """Whether dlib and its model files are installed."""
    try:
        import dlib  # noqa: F401

        model_file("descriptor")
        model_file("landmarks")
    except (ImportError, AttackerUnavailable):
        return False
    return True


@lru_cache(maxsize=1)
def _models():
    try:
        import dlib
    except ImportError as e:
        raise AttackerUnavailable("dlib is not installed: pip install dlib-bin") from e
    return (dlib, dlib.face_recognition_model_v1(str(model_file("descriptor"))),
            dlib.shape_predictor(str(model_file("landmarks"))))


def _clip_box(box: Sequence[float], shape: tuple[int, ...]) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    x0, y0 = max(int(np.floor(float(box[0]))), 0), max(int(np.floor(float(box[1]))), 0)
    x1, y1 = min(int(np.ceil(float(box[2]))), w), min(int(np.ceil(float(box[3]))), h)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty face box {tuple(box)} in an image of shape {shape[:2]}")
    return x0, y0, x1, y1


def face_chip(img: np.ndarray, box: Sequence[float], align: str = "box", padding: float = 0.25) -> np.ndarray:
    """The descriptor's 150x150 RGB input for the face in `box` (x0, y0, x1, y1) of an RGB image.

    Only the pixels inside the box are used (the chip's `padding` margin repeats the box's edge),
    so a face wiped inside its box leaves the attacker nothing. `box`: that padded square upscaled
    bicubically. `landmarks`: then dlib's 5-point predictor run inside the box on the upscaled chip,
    and dlib's aligned chip from those points.
    """
    if align not in ALIGNMENTS:
        raise ValueError(f"unknown face alignment '{align}'; choose one of {', '.join(ALIGNMENTS)}")
    x0, y0, x1, y1 = _clip_box(box, img.shape)
    face = img[y0:y1, x0:x1]  # only the box: what lies around it (hair, background) is not the face
    side = max(x1 - x0, y1 - y0)
    scale = CHIP / (side * (1 + 2 * padding))
    cx, cy = (x1 - x0) / 2, (y1 - y0) / 2
    # the padded square mapped onto the chip; beyond the box, its edge pixels repeat
    m = np.array([[scale, 0, CHIP / 2 - cx * scale], [0, scale, CHIP / 2 - cy * scale]], np.float64)
    chip = cv2.warpAffine(face, m, (CHIP, CHIP), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    if align == "box":
        return np.ascontiguousarray(chip)
    dlib, _, predictor = _models()
    inner = CHIP * padding / (1 + 2 * padding)
    shape = predictor(chip, dlib.rectangle(int(inner), int(inner), int(CHIP - inner), int(CHIP - inner)))
    return np.ascontiguousarray(dlib.get_face_chip(chip, shape, size=CHIP, padding=padding))


def describe(chips: Iterable[np.ndarray]) -> np.ndarray:
    """dlib's 128-d descriptors of 150x150 RGB chips, one row each."""
    _, net, _ = _models()
    chips = [np.ascontiguousarray(c, dtype=np.uint8) for c in chips]
    if not chips:
        return np.zeros((0, 128), np.float32)
    return np.asarray([np.asarray(net.compute_face_descriptor(c)) for c in chips], np.float32)


def _pairwise(features: np.ndarray) -> np.ndarray:
    f = np.asarray(features, np.float64)
    sq = (f * f).sum(1)
    return np.sqrt(np.maximum(sq[:, None] + sq[None, :] - 2 * f @ f.T, 0))


def _tied(d: np.ndarray, ref: float) -> np.ndarray:
    return np.abs(d - ref) <= 1e-9 * max(1.0, abs(ref))


def identification_hits(features: np.ndarray, pids: Sequence[int], camids: Sequence[int],
                        is_query: Sequence[bool]) -> pd.Series:
    """Each query face's expected Rank-1 hit (0-1) against the gallery faces, ties broken at random.

    Indexed by the query's position; a query without a true match elsewhere is left out.
    Market-1501's rule: a gallery face of the query's identity seen by the query's camera is left out.
    """
    pids, camids, q = np.asarray(pids), np.asarray(camids), np.asarray(is_query, bool)
    d = _pairwise(features)
    hits = {}
    for i in np.flatnonzero(q):
        keep = ~q & ~((pids == pids[i]) & (camids == camids[i]))
        if not (keep & (pids == pids[i])).any():
            continue  # no true match to find
        row, gp = d[i, keep], pids[keep]
        best = _tied(row, row.min())
        hits[int(i)] = float((gp[best] == pids[i]).mean())
    if not hits:
        raise ValueError("no query face has a gallery face of its identity from another camera")
    return pd.Series(hits, name="hit")


def identification_rank1(features: np.ndarray, pids: Sequence[int], camids: Sequence[int],
                         is_query: Sequence[bool]) -> float:
    """Expected Rank-1 (percent) of query faces against gallery faces, ties broken at random."""
    return 100 * float(identification_hits(features, pids, camids, is_query).mean())


def verification_tar(features: np.ndarray, pids: Sequence[int], fars: Sequence[float] = (1e-2, 1e-3)) -> dict:
    """TAR (percent) at each FAR over all pairs of faces: same identity = genuine, else impostor.

    The threshold accepts the floor(FAR x impostors) closest impostor pairs and no more; pairs tied
    at it count as they would in a random order (random tie-breaking, in expectation).
    """
    pids = np.asarray(pids)
    iu = np.triu_indices(len(pids), 1)
    d = _pairwise(features)[iu]
    same = (pids[:, None] == pids[None, :])[iu]
    gen, imp = np.sort(d[same]), np.sort(d[~same])
    if len(gen) == 0 or len(imp) == 0:
        raise ValueError("verification needs genuine and impostor pairs (>= 2 faces of an identity, >= 2 identities)")
    out = {}
    for far in fars:
        k = int(np.floor(far * len(imp)))  # impostor pairs that may be accepted
        if k >= len(imp):
            out[far] = 100.0
            continue
        thr = imp[k]  # the first impostor that may not be accepted
        eps = 1e-9 * max(1.0, abs(thr))
        imp_below, gen_below = int(np.sum(imp < thr - eps)), int(np.sum(gen < thr - eps))
        imp_tied, gen_tied = int(np.sum(_tied(imp, thr))), int(np.sum(_tied(gen, thr)))
        # pairs tied at the threshold in random order: genuine ones expected before its (k - imp_below + 1)-th impostor
        out[far] = 100 * (gen_below + (k - imp_below + 1) * gen_tied / (imp_tied + 1)) / len(gen)
    return out


def attack_scores(features: np.ndarray, faces: pd.DataFrame, fars: Sequence[float] = (1e-2, 1e-3)) -> dict:
    """Rank-1 and TAR@FAR (percent) of an attacker's features for `faces` (pid, camid, split)."""
    tar = verification_tar(features, faces.pid.to_numpy(), fars)
    return {"rank1": identification_rank1(features, faces.pid.to_numpy(), faces.camid.to_numpy(),
                                          (faces.split == "query").to_numpy()),
            **{f"tar_far{far:g}": v for far, v in tar.items()}}


def chance_scores(faces: pd.DataFrame, fars: Sequence[float] = (1e-2, 1e-3)) -> dict:
    """What an attacker who sees identical features for every face scores on `faces` (the floor)."""
    return attack_scores(np.zeros((len(faces), 1), np.float32), faces, fars)
