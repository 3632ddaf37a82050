"""Image files: read, decode and encode crops (BGR uint8, as OpenCV has them), and list a tree's images.

The bottom of the library: every stage reads images through here; imports OpenCV and NumPy only,
so the anonymized-copy workers start without torch.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .files import OutsideRootError, inside, list_files, outside_error  # noqa: F401  (the images' API)

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")


def is_image(name: str | Path) -> bool:
    """Whether a file name has one of the image suffixes the readers know."""
    return Path(name).suffix.lower() in IMAGE_SUFFIXES


def decode_image(data: bytes, path: Path | str) -> np.ndarray:
    """Decode image bytes as BGR uint8; a corrupt or truncated file is an error naming `path`."""
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR) if data else None
    if img is None:
        raise ValueError(f"cannot decode image (corrupt or truncated): {path}")
    return img


def read_image(path: Path) -> np.ndarray:
    """Read an image as BGR uint8, with a clear error naming a missing or corrupt file."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"image not found: {path}")
    return decode_image(Path(path).read_bytes(), path)


def read_rgb(path: Path) -> np.ndarray:
    """Read an image as RGB uint8 (for detectors and figures)."""
    return cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)


def encode_image(img: np.ndarray, suffix: str, jpeg_quality: int = 95) -> bytes:
    """Encode to the file type given by `suffix` (JPEG at a fixed quality, others lossless)."""
    params = [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality] if suffix.lower() in (".jpg", ".jpeg") else []
    ok, buf = cv2.imencode(suffix, img, params)
    if not ok:
        raise ValueError(f"cannot encode image as {suffix}")
    return buf.tobytes()


def image_files(root: str | Path, skipped: list[str] | None = None) -> list[str]:
    """Relative paths of every image file under `root` (hidden files left out, links as `list_files`), sorted."""
    return [r for r in list_files(root, skipped) if is_image(r)]


def lfw_faces() -> np.ndarray:
    """The 100 real face crops (25x25 grayscale, float in [0, 1]) from scikit-image's lfw_subset."""
    from skimage.data import lfw_subset

    return np.asarray(lfw_subset()[:100], dtype=np.float32)
