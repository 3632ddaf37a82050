"""Face anonymization (paper Sections III-B and IV-C) and anonymized dataset copies.

Five techniques (registered in `reidlib.registry`) act on an image and its face boxes, changing
pixels inside the boxes only:
blur (Gaussian, sigma = box width / 8: the paper's "radius equal to 1/8 the width", read as the
Gaussian's standard deviation), zero, blank (per-channel box mean), inpaint (Poisson: the Laplace
equation inside the box, the surrounding pixels as boundary) and pixelate (to 6x6, back with
nearest neighbour).
"""
from __future__ import annotations

import fnmatch
import hashlib
import json
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import cv2
import numpy as np
import pandas as pd
import scipy.sparse as sp
import scipy.sparse.linalg as spla
from tqdm.auto import tqdm

from ..core import jpeg, registry
from ..core.boxes import boxes_by_image, iou_matrix
from ..core.images import (
    decode_image,
    encode_image,
    is_image,
    lfw_faces,
    list_files,
)
from ..core.runfiles import fingerprinted, tree_digest, write_bytes, write_json

Box = tuple[int, int, int, int]


def clip_box(box: Iterable[float], shape: tuple[int, ...], margin: int = 0) -> Box | None:
    """Integer box (x0, y0, x1, y1) grown by `margin` and clipped to the image; None if empty."""
    x0, y0, x1, y1 = box
    h, w = shape[:2]
    x0, y0 = max(int(np.floor(x0)) - margin, 0), max(int(np.floor(y0)) - margin, 0)
    x1, y1 = min(int(np.ceil(x1)) + margin, w), min(int(np.ceil(y1)) + margin, h)
    return (x0, y0, x1, y1) if x1 > x0 and y1 > y0 else None


def blur(img: np.ndarray, box: Box, width_ratio: float = 0.125) -> np.ndarray:
    """Gaussian blur inside `box` with sigma = width_ratio x box width (paper: 1/8)."""
    x0, y0, x1, y1 = box
    sigma = max(width_ratio * (x1 - x0), 1e-3)
    pad = int(np.ceil(3 * sigma))
    h, w = img.shape[:2]
    px0, py0, px1, py1 = max(x0 - pad, 0), max(y0 - pad, 0), min(x1 + pad, w), min(y1 + pad, h)
    region = cv2.GaussianBlur(img[py0:py1, px0:px1], (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    out = img.copy()
    out[y0:y1, x0:x1] = region[y0 - py0:y1 - py0, x0 - px0:x1 - px0]
    return out


def zero(img: np.ndarray, box: Box) -> np.ndarray:
    """Face pixels set to 0 (the paper's "zero" / blackout)."""
    x0, y0, x1, y1 = box
    out = img.copy()
    out[y0:y1, x0:x1] = 0
    return out


def blank(img: np.ndarray, box: Box) -> np.ndarray:
    """Face pixels set to the box's mean value, per channel (the paper's "blank")."""
    x0, y0, x1, y1 = box
    out = img.copy()
    mean = img[y0:y1, x0:x1].reshape(-1, img.shape[2] if img.ndim == 3 else 1).mean(axis=0)
    out[y0:y1, x0:x1] = np.round(mean).astype(img.dtype).reshape(img[0, 0].shape)
    return out


def pixelate(img: np.ndarray, box: Box, size: int = 6) -> np.ndarray:
    """Box resized to size x size (area average), then back up with nearest neighbour."""
    x0, y0, x1, y1 = box
    out = img.copy()
    small = cv2.resize(img[y0:y1, x0:x1], (size, size), interpolation=cv2.INTER_AREA)
    out[y0:y1, x0:x1] = cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_NEAREST)
    return out


def poisson_fill(img: np.ndarray, box: Box) -> np.ndarray:
    """Float solution of the discrete Laplace equation inside `box`, Dirichlet data outside.

    Written here because OpenCV offers only Telea / Navier-Stokes inpainting; neighbours beyond
    the image border are left out of the stencil (zero normal derivative there).
    """
    x0, y0, x1, y1 = box
    h, w = img.shape[:2]
    bw, bh = x1 - x0, y1 - y0
    n = bw * bh
    f = img.astype(np.float64).reshape(h, w, -1)
    idx = np.arange(n).reshape(bh, bw)
    rows, cols, vals = [], [], []
    diag = np.zeros(n)
    rhs = np.zeros((n, f.shape[2]))
    for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
        yy, xx = np.mgrid[y0:y1, x0:x1]
        ny, nx = yy + dy, xx + dx
        valid = (ny >= 0) & (ny < h) & (nx >= 0) & (nx < w)
        diag += valid.ravel()
        inside = valid & (ny >= y0) & (ny < y1) & (nx >= x0) & (nx < x1)
        rows.append(idx[inside])
        cols.append(idx[ny[inside] - y0, nx[inside] - x0])
        vals.append(-np.ones(int(inside.sum())))
        border = valid & ~inside
        rhs[idx[border]] += f[ny[border], nx[border]]
    a = sp.csr_matrix((np.concatenate(vals + [diag]),
                       (np.concatenate(rows + [np.arange(n)]), np.concatenate(cols + [np.arange(n)]))),
                      shape=(n, n))
    sol = spla.splu(a.tocsc()).solve(rhs)
    out = f.copy()
    out[y0:y1, x0:x1] = sol.reshape(bh, bw, -1)
    return out.reshape(img.shape)


def inpaint(img: np.ndarray, box: Box) -> np.ndarray:
    """Poisson inpainting of `box` (paper's "inpaint"), rounded back to the image's dtype."""
    filled = poisson_fill(img, box)
    out = img.copy()
    x0, y0, x1, y1 = box
    out[y0:y1, x0:x1] = np.clip(np.round(filled[y0:y1, x0:x1]), 0, 255).astype(img.dtype)
    return out


def swap(img: np.ndarray, box: Box, faces: np.ndarray | list | None = None, seed: int = 0,
         exclude: Iterable[int] = ()) -> np.ndarray:
    """Face swap: another face from `faces`, Poisson-blended into `box` (the sixth technique, beside Table VIII).

    `faces`: a pool of face crops (gray in [0, 1] or BGR uint8); default the generated set's pool,
    scikit-image's `lfw_subset`. The face is drawn deterministically from `seed` and the box's pixels,
    never one listed in `exclude` (the image's own identity). Poisson blending (Perez et al. 2003):
    the drawn face's gradients inside the box, the image's pixels as boundary, via `poisson_fill`
    (OpenCV's seamlessClone fails on boxes at the image border and touches pixels outside the mask).
    """
    if faces is None:
        faces = lfw_faces()
    banned = {int(i) for i in exclude}
    allowed = [i for i in range(len(faces)) if i not in banned]
    if not allowed:
        raise ValueError("swap: the face pool has no face outside `exclude`")
    x0, y0, x1, y1 = box
    key = int.from_bytes(hashlib.sha256(np.ascontiguousarray(img[y0:y1, x0:x1]).tobytes()).digest()[:8], "little")
    src = np.asarray(faces[allowed[np.random.default_rng([seed, key]).integers(len(allowed))]])
    src = src.astype(np.float64) * (255.0 if src.dtype.kind == "f" else 1.0)
    h, w = img.shape[:2]
    ex0, ey0, ex1, ey1 = max(x0 - 1, 0), max(y0 - 1, 0), min(x1 + 1, w), min(y1 + 1, h)  # box and its ring
    patch = cv2.resize(src, (ex1 - ex0, ey1 - ey0), interpolation=cv2.INTER_AREA).reshape(ey1 - ey0, ex1 - ex0, -1)
    channels = img.shape[2] if img.ndim == 3 else 1
    patch = np.broadcast_to(patch, patch.shape[:2] + (channels,)) if patch.shape[2] == 1 else patch
    guide = img.astype(np.float64).reshape(h, w, channels).copy()
    guide[ey0:ey1, ex0:ex1] = patch
    # u = face + h, with h harmonic inside the box and equal to (image - face) on its ring
    correction = poisson_fill((img.astype(np.float64).reshape(h, w, channels) - guide), box)
    out = img.copy()
    blended = patch[y0 - ey0:y1 - ey0, x0 - ex0:x1 - ex0] + correction[y0:y1, x0:x1]
    out[y0:y1, x0:x1] = np.clip(np.round(blended), 0, 255).astype(img.dtype).reshape(out[y0:y1, x0:x1].shape)
    return out


def keep(img: np.ndarray, box: Box) -> np.ndarray:
    """The null technique: the face left as it is (the copy then measures what writing it costs)."""
    return img


def face_removing() -> tuple[str, ...]:
    """The registered techniques that take the face away (all but the swap): the audit's."""
    return tuple(n for n, spec in registry.TECHNIQUES.items() if spec.removes_face)


def technique_params(technique: str, section=None) -> dict:
    """The keyword arguments technique `technique` takes, from an `anonymization` config section
    (or mapping); without one, none (the function's defaults)."""
    spec = registry.technique(technique)  # unknown names are an error listing the known ones
    return spec.from_config(section) if section is not None else {}


def anonymize_image(img: np.ndarray, boxes: Iterable[Iterable[float]], technique: str = "blur",
                    margin: int = 0, **params) -> np.ndarray:
    """Apply `technique` to every box of one image (boxes as x0, y0, x1, y1)."""
    apply = registry.technique(technique).apply
    out = img
    for b in boxes:
        box = clip_box(b, img.shape, margin)
        if box is not None:
            out = apply(out, box, **params)
    return out


@dataclass(frozen=True)
class Writer:
    """How each image of a copy is written: the technique and its keyword arguments, the margin grown around
    each box, and the encoding. `exact` keeps a JPEG's own coefficients outside the 16x16 blocks (MCUs)
    that overlap a face box, so outside them the copy decodes to the original's pixels (`reidlib.core.jpeg`);
    `reencode` encodes the whole image again at `jpeg_quality`, as anonymization tools do."""

    technique: str = "blur"
    params: dict = field(default_factory=dict)
    margin: int = 0
    jpeg_quality: int = 95
    encode: str = "exact"

    @classmethod
    def of(cls, section: Any, jpeg_quality: int = 95) -> "Writer":
        """The writer an `anonymization` config section describes (the dataset's `jpeg_quality` for reencode)."""
        return cls(section.technique, technique_params(section.technique, section), section.margin, jpeg_quality,
                   section.encode)

    def write(self, raw: bytes, rel: str, boxes: np.ndarray, source: str = "") -> bytes:
        """The copy's bytes of one image file (`raw`, at relative path `rel`) with its face `boxes` anonymized.

        An image the technique leaves unchanged (no box, or the `none` technique) keeps its bytes in exact
        mode; a lossless file (PNG, BMP) is written losslessly, so it is exact outside the boxes anyway.
        """
        suffix = os.path.splitext(rel)[1]
        if self.encode == "exact" and len(boxes) == 0:
            return raw
        img = decode_image(raw, source or rel)
        edited = anonymize_image(img, boxes, self.technique, self.margin, **self.params)
        if self.encode == "reencode":
            return encode_image(edited, suffix, self.jpeg_quality)
        if edited is img or np.array_equal(edited, img):
            return raw
        if suffix.lower() in (".jpg", ".jpeg"):
            changed = [c for c in (clip_box(b, img.shape, self.margin) for b in boxes) if c is not None]
            return jpeg.exact_jpeg(raw, edited, np.asarray(changed, float).reshape(-1, 4), source or rel,
                                   source_path=source or None)
        return encode_image(edited, suffix)


ENCODINGS = ("exact", "reencode")


def _write_one(src: str, out: str, rel: str, boxes, writer: Writer,
               done: tuple[str, str] | None = None) -> tuple[str, str, str]:
    """Anonymize (or copy, for a reader's list file) one file; returns (rel, sha256 of the source, of the copy).

    `done`: the (source, copy) hashes a killed run recorded for this file; when the source still
    has that hash the file is kept, otherwise rewritten. Paths are strings (pathlib's parsing
    cost as much per file as the write).
    """
    source = os.path.join(src, rel)
    with open(source, "rb") as f:
        raw = f.read()
    src_sha = hashlib.sha256(raw).hexdigest()
    if done is not None and done[0] == src_sha:
        return rel, src_sha, done[1]
    data = writer.write(raw, rel, boxes, source) if is_image(rel) else raw
    write_bytes(os.path.join(out, rel), data)
    return rel, src_sha, hashlib.sha256(data).hexdigest()


def _worker_init(parent: int) -> None:
    """A copy worker ends itself once the run that started it is gone (even after kill -9 of that run,
    which would otherwise leave the workers and the fork server behind). Ctrl-C is the run's to handle:
    an idle worker ignores it rather than print a traceback."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)

    def watch() -> None:
        while True:
            time.sleep(0.5)
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _write_chunk(job: tuple) -> list[tuple[str, str, str]]:
    """Worker: one chunk of files (module-level so that process pools can pickle it)."""
    src, out, items, writer = job
    cv2.setNumThreads(1)
    return [_write_one(src, out, rel, boxes, writer, done) for rel, boxes, done in items]


JOURNAL = ".copied.jsonl"  # one line per finished chunk: [[rel, source sha256, copy sha256], ...]


def _read_journal(out: str) -> dict[str, tuple[str, str]]:
    """rel -> (source sha256, copy sha256) for the chunks an interrupted copy finished; a line cut
    short by a kill, and files since deleted, do not count."""
    path = os.path.join(out, JOURNAL)
    if not os.path.exists(path):
        return {}
    present = set(list_files(out))
    done = {}
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                chunk = json.loads(line)
            except json.JSONDecodeError:
                break
            done.update({rel: (s, c) for rel, s, c in chunk if rel in present})
    return done


_POOLS: dict[int, ProcessPoolExecutor] = {}


def _init_writer(parent: int) -> None:
    """Worker start-up: one OpenCV thread per process (the pool provides the parallelism), and the
    watch that ends the worker with the process that started the pool (`_worker_init`)."""
    cv2.setNumThreads(1)
    _worker_init(parent)


def writer_pool(processes: int) -> ProcessPoolExecutor:
    """`processes` copy writers, started once per Python process and reused by every later copy.

    Workers fork from a forkserver that has imported only this module (numpy, OpenCV, pandas, scipy;
    never torch), so a copy pays no interpreter start or import; a broken pool is replaced.
    """
    pool = _POOLS.get(processes)
    if pool is None or getattr(pool, "_broken", False):
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["reidlib.stages.anonymize"])
        pool = _POOLS[processes] = ProcessPoolExecutor(processes, mp_context=ctx, initializer=_init_writer,
                                                       initargs=(os.getpid(),))
    return pool


def anonymize_dataset(src: str | Path, detections: pd.DataFrame, out: str | Path, writer: Writer = Writer(),
                      images: Iterable[str] | None = None, lists: Iterable[str] = (), notes: dict | None = None,
                      progress: bool = True, processes: int = 1, chunk: int = 64,
                      skip_outside: bool = False) -> dict:
    """Write an anonymized copy of dataset `src` to `out`, same relative paths, plus manifest.json.

    The copy holds `images` (relative paths; None: every image under `src`), each written by `writer` with
    its boxes in `detections`, and the files matching `lists` (the reader's list files, `DatasetSpec.list_files`)
    as they are; everything else is left out and listed in the manifest under `omitted`. Links leading
    outside `src` are refused, or with `skip_outside` left out and listed under `outside_links`. Originals
    are only read; `out` may not lie inside `src`. Files are written in chunks, and each finished chunk is
    recorded in a journal (`JOURNAL`), so an interrupted run resumes: recorded files are kept, the rest
    rewritten (callers make sure `out` holds only work of the same settings: `runfiles.output_folder`). The
    manifest (fingerprint of the copied source files, detections hash, the writer, per-file sha256 of the
    copy, `notes`) is written last.
    """
    src, out = Path(src).resolve(), Path(out).resolve()
    if not src.is_dir():
        raise FileNotFoundError(f"dataset folder not found: {src}")
    if out == src or src in out.parents:
        raise ValueError(f"refusing to write the anonymized copy inside the source dataset: {out}")
    registry.technique(writer.technique)  # unknown names fail before anything is written
    if writer.encode not in ENCODINGS:
        raise ValueError(f"unknown encoding '{writer.encode}'; choose {' or '.join(ENCODINGS)}")
    boxes = boxes_by_image(detections)
    skipped: list[str] | None = [] if skip_outside else None
    files = list_files(src, skipped)
    all_images = {r for r in files if is_image(r)}
    wanted = all_images if images is None else set(images)
    missing = sorted(wanted - all_images)
    if missing:
        raise FileNotFoundError(f"image to anonymize not found under {src}: {missing[0]} ({len(missing)} missing)")
    patterns = tuple(lists)
    listed = {r for r in files if r not in all_images and any(fnmatch.fnmatch(r, p) for p in patterns)}
    rels = sorted(wanted | listed)
    omitted = sorted(set(files) - set(rels))
    src_s, out_s = str(src), str(out)
    journaled = _read_journal(out_s)
    none = np.empty((0, 4))
    jobs = [(src_s, out_s, [(r, boxes.get(r, none), journaled.get(r)) for r in rels[i:i + chunk]], writer)
            for i in range(0, len(rels), chunk)]
    done: list[tuple[str, str, str]] = []
    out.mkdir(parents=True, exist_ok=True)
    journal = open(out / JOURNAL, "a", encoding="utf-8")
    try:
        with tqdm(total=len(rels), desc=f"anonymize ({writer.technique}, {writer.encode})", disable=not progress) as bar:
            parts = (writer_pool(processes).map(_write_chunk, jobs) if processes > 1 and len(jobs) > 1
                     else map(_write_chunk, jobs))
            for part in parts:
                journal.write(json.dumps(part) + "\n")  # the chunk's files are whole: a rerun keeps them
                journal.flush()
                done.extend(part)
                bar.update(len(part))
    finally:
        journal.close()
    source_fp = tree_digest((rel, sha) for rel, sha, _ in done if fingerprinted(rel.rsplit("/", 1)[-1]))
    manifest = {"source": str(src), "source_fingerprint": source_fp,
                "detections_sha256": hashlib.sha256(detections.to_csv(index=False).encode()).hexdigest(),
                "technique": writer.technique, "encode": writer.encode,
                "params": {**writer.params, "margin": writer.margin,
                           **({"jpeg_quality": writer.jpeg_quality} if writer.encode == "reencode" else {})},
                "files": {rel: out_sha for rel, _, out_sha in sorted(done)}, "omitted": omitted,
                "outside_links": sorted(skipped or []), **(notes or {})}
    write_json(out / "manifest.json", manifest)
    (out / JOURNAL).unlink()
    return manifest


def audited() -> tuple[str, ...]:
    """The techniques the residual-face audit checks: every registered one that changes the face (not `none`)."""
    return tuple(n for n, spec in registry.TECHNIQUES.items() if spec.changes_face)


def changed_pixels(original: np.ndarray, copy: np.ndarray, boxes: np.ndarray, raw: bytes, rel: str) -> dict:
    """Where a copy differs from its original: pixels changed outside the face boxes, and outside the JPEG blocks
    (MCUs, with the chroma seam) that touch a box, which an exact copy leaves at exactly 0; the largest change
    outside the boxes (grey levels)."""
    diff = np.abs(original.astype(np.int16) - copy.astype(np.int16)).max(axis=-1) if copy.ndim == 3 else \
        np.abs(original.astype(np.int16) - copy.astype(np.int16))
    in_box = np.zeros(diff.shape, bool)
    for x0, y0, x1, y1 in np.asarray(boxes, float).reshape(-1, 4).astype(int):
        in_box[y0:y1, x0:x1] = True
    touched = (jpeg.touched_mask(original.shape, boxes, jpeg.sampling_of(raw))
               if os.path.splitext(rel)[1].lower() in (".jpg", ".jpeg") and len(boxes) else in_box)
    outside, beyond = ~in_box, ~(touched | in_box)
    return {"pixels_outside_boxes": int(outside.sum()), "changed_outside_boxes": int((diff[outside] > 0).sum()),
            "pixels_outside_blocks": int(beyond.sum()), "changed_outside_blocks": int((diff[beyond] > 0).sum()),
            "max_change_outside_boxes": int(diff[outside].max()) if outside.any() else 0}


def owner_distances(original: np.ndarray, copy: np.ndarray, boxes: np.ndarray) -> list[float]:
    """dlib descriptor distance between each face box of the original and the same box of the copy: below
    `faces.VERIFY_DISTANCE` the copy's face still passes for its owner's (the swap's promise, checked)."""
    from ..models import faces

    chips = [(faces.face_chip(cv2.cvtColor(original, cv2.COLOR_BGR2RGB), b),
              faces.face_chip(cv2.cvtColor(copy, cv2.COLOR_BGR2RGB), b)) for b in np.asarray(boxes).reshape(-1, 4)]
    if not chips:
        return []
    d = faces.describe([c for pair in chips for c in pair])
    return [float(x) for x in faces.distance(d[0::2], d[1::2])]


RESIDUAL_COLUMNS = ["image", "split", "technique", "x0", "y0", "x1", "y1", "score", "iou_with_anonymized", "where"]


def residual_audit(root: str | Path, records: pd.DataFrame, detections: pd.DataFrame, detect,
                   writers: dict[str, Writer], progress: bool = True, owners: bool = False
                   ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Each image as each writer writes it into a copy, checked: the detector rerun on it (one row per residual
    box: a face still found), and per image the pixels changed outside its boxes (`changed_pixels`) and, for
    a technique that puts a face there (`owners`, the swap), how close that face is to its owner's.

    A residual box's `where` says whether it overlaps an anonymized box (IoU >= 0.3: the region still looks
    like a face to the detector, which is not the same as the person being recognisable) or lies elsewhere
    (a face the first pass missed, or a false alarm).
    """
    root = Path(root)
    boxes = boxes_by_image(detections)
    rows, per_image = [], []
    for r in tqdm(records.itertuples(), total=len(records), desc="residual-face audit", disable=not progress):
        path = root / r.image
        raw = path.read_bytes()
        img = decode_image(raw, path)
        b = boxes.get(r.image, np.empty((0, 4)))
        for t, w in writers.items():
            anon = decode_image(w.write(raw, r.image, b, str(path)), path)
            changed = [c for c in (clip_box(x, img.shape, w.margin) for x in b) if c is not None]
            info = {"image": r.image, "split": r.split, "technique": t, "faces": len(changed),
                    **changed_pixels(img, anon, np.asarray(changed, float).reshape(-1, 4), raw, r.image)}
            if owners and not registry.technique(t).removes_face and changed:
                dist = owner_distances(img, anon, np.asarray(changed, float))
                info.update(owner_distance=min(dist), matches_owner=int(sum(d < _verify() for d in dist)))
            per_image.append(info)
            found = detect(cv2.cvtColor(anon, cv2.COLOR_BGR2RGB))
            if len(found) == 0:
                continue
            ious = iou_matrix(found[:, :4], b).max(axis=1) if len(b) else np.zeros(len(found))
            for (x0, y0, x1, y1, score), iou in zip(found, ious):
                rows.append(dict(image=r.image, split=r.split, technique=t, x0=float(x0), y0=float(y0),
                                 x1=float(x1), y1=float(y1), score=float(score), iou_with_anonymized=float(iou),
                                 where="anonymized box" if iou >= 0.3 else "elsewhere"))
    return pd.DataFrame(rows, columns=RESIDUAL_COLUMNS), pd.DataFrame(per_image)


def _verify() -> float:
    from ..models import faces

    return faces.VERIFY_DISTANCE


def audit_summary(residual: pd.DataFrame, per_image: pd.DataFrame, records: pd.DataFrame) -> pd.DataFrame:
    """Per technique: the share of images where any face is found again, and where one is found in an anonymized
    box; the share of pixels changed outside the boxes and outside the touched JPEG blocks; for a swap, the
    share of swapped faces that still pass for their owner's (NaN where not measured)."""
    n = len(records)
    rows = []
    for t in dict.fromkeys(per_image.technique) if len(per_image) else ():
        found = residual[residual.technique == t]
        in_box = found[found["where"] == "anonymized box"]
        mine = per_image[per_image.technique == t]
        share = (lambda k: k / n) if n else (lambda k: float("nan"))
        owner = (float(mine.matches_owner.sum() / mine.faces[mine.matches_owner.notna()].sum())
                 if "matches_owner" in mine and mine.matches_owner.notna().any() else float("nan"))
        rows.append(dict(technique=t, images=n,
                         images_with_face_found=found.image.nunique(),
                         share_with_face_found=share(found.image.nunique()),
                         images_with_face_in_box=in_box.image.nunique(),
                         share_with_face_in_box=share(in_box.image.nunique()),
                         max_score_in_box=float(in_box.score.max()) if len(in_box) else 0.0,
                         share_changed_outside_boxes=float(mine.changed_outside_boxes.sum()
                                                           / max(mine.pixels_outside_boxes.sum(), 1)),
                         share_changed_outside_blocks=float(mine.changed_outside_blocks.sum()
                                                            / max(mine.pixels_outside_blocks.sum(), 1)),
                         max_change_outside_boxes=int(mine.max_change_outside_boxes.max()),
                         share_swapped_matching_owner=owner))
    return pd.DataFrame(rows)
