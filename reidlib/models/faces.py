"""dlib's face descriptor: the face-recognition network of the privacy attacker and the swap audit.

The descriptor is dlib's ResNet `face_recognition_model_v1` (128-d, its weights shipped by the
`face_recognition_models` package, CC0). That package's `__init__` imports `pkg_resources`, which
current setuptools lacks, so its model files are located from the installed folder without importing it.
"""
from __future__ import annotations

import importlib.util
from functools import lru_cache
from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

VERIFY_DISTANCE = 0.6  # dlib's verification threshold: descriptors nearer than this are the same person


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
    """dlib's 128-d descriptors of 150x150 RGB chips, one row each; identical chips (a face zeroed, a face the
    copy left as it was) are described once."""
    _, net, _ = _models()
    chips = [np.ascontiguousarray(c, dtype=np.uint8) for c in chips]
    if not chips:
        return np.zeros((0, 128), np.float32)
    seen: dict[bytes, np.ndarray] = {}
    for c in chips:
        key = c.tobytes() + repr(c.shape).encode()
        if key not in seen:
            seen[key] = np.asarray(net.compute_face_descriptor(c), np.float32)
    return np.stack([seen[c.tobytes() + repr(c.shape).encode()] for c in chips])


def distance(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance between descriptors, row by row."""
    return np.linalg.norm(np.asarray(a, np.float32) - np.asarray(b, np.float32), axis=-1)
