"""Exact anonymized JPEG copies: only the coefficients of the MCUs that overlap a face box change.

Serves the anonymization of Section III-B of Dietlmeier et al., "How important are faces for person
re-identification?" (arXiv 2010.06307), made exact. Re-encoding a whole crop after blurring its face
changes most pixels outside the face (generation loss). Here the original's quantized DCT
coefficients are kept (read and written losslessly by libjpeg through jpeglib's compiled binding),
and only the blocks of the MCUs (minimum coded units: 16x16 pixels at 4:2:0, 8x8 at 4:4:4) that
overlap a box are replaced by the edited pixels' coefficients, quantized with the original's own
tables. Decoded (OpenCV, libjpeg-turbo), the copy equals the original outside those MCUs grown by
`seam_of(sampling)` pixels, as measured: 1 along each axis where chroma is subsampled 2x (fancy
upsampling interpolates between neighbouring chroma samples: 4:2:0 both axes, 4:2:2 columns, 4:4:0
rows), 0 at 4:4:4, 4:1:1 (replicated chroma) and for grayscale; `touched_mask` returns those pixels.
Baseline and extended sequential Huffman JPEGs with 8-bit samples, grayscale or YCbCr, any integral
sampling, are handled; progressive, arithmetic-coded, lossless, 12-bit, RGB, CMYK, truncated and
otherwise damaged headers raise a ValueError naming the file. The copy keeps the quantization tables,
sampling, size, component ids and APPn/COM markers; it gets libjpeg's JFIF header and standard Huffman
tables and loses any restart interval, none of which changes a decoded pixel.

`exact_jpeg` returns the copy's bytes; `write_exact_jpeg` lets libjpeg write the file itself (faster).
Per 64x128 crop they cost about 0.15 ms: libjpeg's coefficient read and write (jpeglib's compiled
binding called through ctypes, skipping its Python wrapper's temporary files and copies) take
most of it, the numpy encoding of the touched MCUs about 0.02 ms.
"""
from __future__ import annotations

import ctypes
import functools
import importlib.util
import math
import os
import threading
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

_SOF_OK = (0xC0, 0xC1)  # baseline and extended sequential Huffman frames
_SOF_REFUSED = {0xC2: "progressive", 0xC3: "lossless", 0xC5: "hierarchical", 0xC6: "hierarchical",
                0xC7: "hierarchical", 0xC9: "arithmetic-coded", 0xCA: "arithmetic-coded progressive",
                0xCB: "arithmetic-coded lossless", 0xCD: "arithmetic-coded hierarchical",
                0xCE: "arithmetic-coded hierarchical", 0xCF: "arithmetic-coded hierarchical"}
_JCS_GRAYSCALE, _JCS_YCBCR = 1, 3  # libjpeg's J_COLOR_SPACE values
_LIBJPEG = "turbo210"  # jpeglib's build with the fastest coefficient writer (6b's takes 1.7x as long)
_DCT8 = np.array([[math.sqrt((1 if u == 0 else 2) / 8) * math.cos((2 * x + 1) * u * math.pi / 16)
                   for x in range(8)] for u in range(8)])  # orthonormal DCT-II = JPEG's FDCT

Sampling = tuple[tuple[int, int], ...]  # (horizontal, vertical) factor per component, Y first


class JpegInfo(NamedTuple):
    """What a JPEG's header says: size, sampling, component ids, and APPn/COM markers to carry over."""
    height: int
    width: int
    sampling: Sampling
    ids: tuple[int, ...]
    markers: tuple[tuple[int, bytes], ...]


def _refuse(path_hint: str, why: str) -> ValueError:
    """The error for an original this module cannot copy exactly, naming the file."""
    return ValueError(f"{path_hint or '<JPEG bytes>'}: {why}; exact copies need a sequential 8-bit JPEG")


_recent_headers: list[tuple[bytes, JpegInfo]] = []  # the last few distinct headers (all bytes up to the scan)


def parse_jpeg(original: bytes, path_hint: str = "") -> JpegInfo:
    """Reads the header of a sequential Huffman 8-bit JPEG; a ValueError naming `path_hint` otherwise."""
    for header, info in _recent_headers:  # a data set's crops mostly share one header
        if original.startswith(header):
            if not original.endswith(b"\xff\xd9") and original.find(b"\xff\xd9", len(header)) < 0:
                raise _refuse(path_hint, "truncated file (no EOI marker after the scan)")
            return info
    info, header_end = _parse_header(original, path_hint)
    _recent_headers.insert(0, (bytes(original[:header_end]), info))
    del _recent_headers[8:]
    return info


def _parse_header(original: bytes, path_hint: str) -> tuple[JpegInfo, int]:
    """parse_jpeg's work, and where the header ends (the first scan's data begins)."""
    data = original
    n = len(data)
    if n < 4 or data[0] != 0xFF or data[1] != 0xD8:
        raise _refuse(path_hint, "not a JPEG file (no SOI marker)")
    pos, frame, markers, adobe, jfif = 2, None, [], None, False
    while True:
        while pos + 1 < n and data[pos] == 0xFF and data[pos + 1] == 0xFF:
            pos += 1  # fill bytes
        if pos + 4 > n or data[pos] != 0xFF:
            raise _refuse(path_hint, f"corrupt or truncated header at byte {pos}")
        code = data[pos + 1]
        end = pos + 2 + ((data[pos + 2] << 8) | data[pos + 3])
        if end < pos + 4 or end > n:
            raise _refuse(path_hint, f"corrupt or truncated marker 0x{code:02X} at byte {pos}")
        if code == 0xDA:  # start of scan: entropy-coded data follows
            if frame is None:
                raise _refuse(path_hint, "scan before the frame header")
            if data.find(b"\xff\xd9", end) < 0:
                raise _refuse(path_hint, "truncated file (no EOI marker after the scan)")
            break
        if code in _SOF_OK:
            count = data[pos + 9] if end >= pos + 10 else 0
            if frame is not None or end != pos + 10 + 3 * count:
                raise _refuse(path_hint, "corrupt frame header")
            if data[pos + 4] != 8:
                raise _refuse(path_hint, f"{data[pos + 4]}-bit samples")
            if count not in (1, 3):
                raise _refuse(path_hint, f"{count} colour components (CMYK/YCCK or unusual)")
            height, width = (data[pos + 5] << 8) | data[pos + 6], (data[pos + 7] << 8) | data[pos + 8]
            if height == 0 or width == 0:
                raise _refuse(path_hint, "zero image size (DNL marker) in the frame header")
            ids = tuple(data[pos + 10:end:3])
            sampling = tuple((f >> 4, f & 15) for f in data[pos + 11:end:3])
            frame = (height, width, sampling, ids)
        elif code in _SOF_REFUSED:
            raise _refuse(path_hint, f"{_SOF_REFUSED[code]} JPEG (SOF marker 0x{code:02X})")
        elif code == 0xE0 and data[pos + 4:pos + 9] == b"JFIF\x00":
            jfif = True  # libjpeg writes its own JFIF header
        elif code == 0xEE and data[pos + 4:pos + 9] == b"Adobe" and end >= pos + 16:
            adobe = data[pos + 15]  # colour transform: 0 none (RGB or CMYK), 1 YCbCr, 2 YCCK
        elif 0xE0 <= code <= 0xEF or code == 0xFE:  # other APPn and COM markers are carried over
            markers.append((code, data[pos + 4:end]))
        elif code == 0xD9 or code == 0x01 or 0xD0 <= code <= 0xD8:
            raise _refuse(path_hint, f"unexpected marker 0x{code:02X} in the header")
        pos = end
    height, width, sampling, ids = frame
    if len(ids) == 3 and (adobe == 0 or (adobe is None and not jfif and ids == (82, 71, 66))):
        raise _refuse(path_hint, "RGB (not YCbCr) colour components")
    hmax, vmax = max(h for h, _ in sampling), max(v for _, v in sampling)
    if any(not 1 <= h <= 4 or not 1 <= v <= 4 or hmax % h or vmax % v for h, v in sampling):
        raise _refuse(path_hint, f"unsupported sampling factors {sampling}")
    return JpegInfo(height, width, sampling, ids, tuple(markers)), end


def sampling_of(original: bytes) -> Sampling:
    """The (horizontal, vertical) sampling factors per component, Y first: 4:2:0 is ((2, 2), (1, 1), (1, 1))."""
    return parse_jpeg(original).sampling


@functools.lru_cache(maxsize=64)
def mcu_size(sampling: Sampling) -> tuple[int, int]:
    """The (height, width) of an MCU in pixels: 8 times the largest vertical and horizontal factors."""
    return 8 * max(v for _, v in sampling), 8 * max(h for h, _ in sampling)


def seam_of(sampling: Sampling) -> tuple[int, int]:
    """Pixels (rows, columns) past a replaced MCU that decoding may change: 1 along an axis whose chroma is
    subsampled 2x (libjpeg-turbo's fancy upsampling interpolates neighbouring chroma samples), else 0."""
    hmax, vmax = max(h for h, _ in sampling), max(v for _, v in sampling)
    ratios = {(hmax // h, vmax // v) for h, v in sampling}  # fancy: h2v1, h2v2, h1v2; others replicate
    return int(bool(ratios & {(2, 2), (1, 2)})), int(bool(ratios & {(2, 2), (2, 1)}))


def _mcu_rects(height: int, width: int, boxes, mh: int, mw: int) -> list[tuple[int, int, int, int]]:
    """(row0, row1, col0, col1) MCU index rectangles, ends exclusive, of the boxes that meet the image."""
    rows = boxes.reshape(-1, 4).tolist() if isinstance(boxes, np.ndarray) else boxes
    rects = []
    for x0, y0, x1, y1 in rows:
        x0, y0 = max(math.floor(x0), 0), max(math.floor(y0), 0)
        x1, y1 = min(math.ceil(x1), width), min(math.ceil(y1), height)
        if x1 > x0 and y1 > y0:
            rects.append((y0 // mh, (y1 - 1) // mh + 1, x0 // mw, (x1 - 1) // mw + 1))
    return rects


def touched_mcus(shape: tuple[int, ...], boxes, sampling: Sampling) -> np.ndarray:
    """Nx4 MCU index rectangles (row0, row1, col0, col1; ends exclusive) that the boxes overlap."""
    rects = _mcu_rects(shape[0], shape[1], boxes, *mcu_size(sampling))
    return np.array(rects, dtype=np.int64).reshape(-1, 4)


def touched_mask(shape: tuple[int, ...], boxes, sampling: Sampling) -> np.ndarray:
    """Boolean HxW mask of the pixels an exact copy may change: the boxes' MCUs grown by the seam."""
    mask = np.zeros(shape[:2], dtype=bool)
    mh, mw = mcu_size(sampling)
    sy, sx = seam_of(sampling)
    for r0, r1, c0, c1 in _mcu_rects(shape[0], shape[1], boxes, mh, mw):
        mask[max(r0 * mh - sy, 0):r1 * mh + sy, max(c0 * mw - sx, 0):c1 * mw + sx] = True
    return mask


# --- the edited pixels' coefficients, in numpy ---

# JFIF's YCbCr as weights of (B, G, R) after a level shift of 128: the chroma weights sum to 0
_WEIGHTS = np.array([[0.114, 0.587, 0.299], [0.5, -0.331264, -0.168736], [-0.081312, -0.418688, 0.5]])


@functools.lru_cache(maxsize=256)
def _transform(pixels: int, factor: int) -> np.ndarray:
    """Matrix taking `pixels` samples to the 8-point DCTs of the blocks of their `factor`-sample means."""
    average = np.kron(np.eye(pixels // factor), np.full((1, factor), 1 / factor))
    return np.kron(np.eye(pixels // (8 * factor)), _DCT8) @ average


@functools.lru_cache(maxsize=64)
def _plan(channels: int, sampling: Sampling, tables: bytes, table_of: tuple[int, ...]
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[tuple[slice, slice, int, int], ...]]:
    """How to encode one MCU of pixels minus 128 as left @ pixels @ right. The right matrix converts
    colours, subsamples horizontally and takes the row DCTs of every component, side by side; the left one
    subsamples vertically and takes the column DCTs, one stacked part per vertical factor. Then the
    divisor (each component's table where its blocks land) and per component its rows, columns, v and h."""
    hmax, vmax = max(h for h, _ in sampling), max(v for _, v in sampling)
    qt = np.frombuffer(tables, dtype=np.uint16).reshape(4, 8, 8).astype(np.float64)
    factors = list(dict.fromkeys(vmax // v for _, v in sampling))  # vertical subsampling, as met
    lefts = [_transform(8 * vmax, f) for f in factors]
    row_starts = np.cumsum([0] + [m.shape[0] for m in lefts])
    rights, parts, at = [], [], 0
    divisor = np.ones((row_starts[-1], 8 * sum(h for h, _ in sampling)))
    for c, (h, v) in enumerate(sampling):
        right = _transform(8 * hmax, hmax // h).T
        rights.append(np.kron(right, _WEIGHTS[c][:, None]) if channels == 3 else right)
        g = factors.index(vmax // v)
        rows, cols = slice(row_starts[g], row_starts[g] + 8 * v), slice(at, at + 8 * h)
        divisor[rows, cols] = np.tile(qt[table_of[c]], (v, h))
        parts.append((rows, cols, v, h))
        at += 8 * h
    return (np.vstack(lefts).astype(np.float32), np.hstack(rights).astype(np.float32),
            divisor[:, None, :].astype(np.float32), tuple(parts))


def _mcu_region(edited: np.ndarray, r0: int, r1: int, c0: int, c1: int) -> np.ndarray:
    """edited[r0:r1, c0:c1], its last row and column repeated past the image's edge as libjpeg pads."""
    height, width = edited.shape[:2]
    if r1 <= height and c1 <= width:
        return edited[r0:r1, c0:c1]
    return edited[np.minimum(np.arange(r0, r1), height - 1)][:, np.minimum(np.arange(c0, c1), width - 1)]


def _encode_region(region: np.ndarray, sampling: Sampling, tables: bytes, table_of: tuple[int, ...],
                   targets: Sequence[np.ndarray]) -> None:
    """Writes the quantized DCT blocks of an MCU-aligned BGR or gray region into each component's target
    (rows, cols, 8, 8) int16 view; blocks that a target lacks (libjpeg's dummies past the edge) are dropped."""
    height, width = region.shape[:2]
    channels = region.shape[2] if region.ndim == 3 else 1
    left, right, divisor, parts = _plan(channels, sampling, tables, table_of)
    mh, mw = mcu_size(sampling)
    across, down = width // mw, height // mh
    pixels = np.subtract(region, 128, dtype=np.float32).reshape(height * across, mw * channels)
    grid = np.matmul(left, (pixels @ right).reshape(down, mh, -1)).reshape(down, left.shape[0], across, -1)
    grid /= divisor
    np.rint(grid, out=grid)
    for target, (rows, cols, v, h) in zip(targets, parts):
        blocks = grid[:, rows, :, cols].reshape(down, v, 8, across, h, 8).transpose(0, 1, 3, 4, 2, 5)
        if target.shape[:2] == (down * v, across * h):
            target.reshape(down, v, across, h, 8, 8)[...] = blocks
        else:  # the image's last MCUs: drop the dummy blocks
            full = np.empty((down * v, across * h, 8, 8), dtype=np.int16)
            full.reshape(down, v, across, h, 8, 8)[...] = blocks
            target[...] = full[:target.shape[0], :target.shape[1]]


def quantized_blocks(image: np.ndarray, sampling: Sampling, tables: Sequence[np.ndarray]) -> list[np.ndarray]:
    """Per component, the int16 quantized DCT blocks (rows, cols, 8, 8) of a BGR or gray image, padded to MCUs."""
    mh, mw = mcu_size(sampling)
    rows, cols = -(-image.shape[0] // mh), -(-image.shape[1] // mw)  # in MCUs
    out = [np.zeros((rows * v, cols * h, 8, 8), np.int16) for h, v in sampling]
    table_bytes = np.zeros((4, 8, 8), np.uint16)
    table_bytes[:len(tables)] = tables
    _replace(out, table_bytes.tobytes(), tuple(range(len(tables))), sampling, image, [(0, rows, 0, cols)])
    return out


def _replace(blocks: Sequence[np.ndarray], tables: bytes, table_of: tuple[int, ...], sampling: Sampling,
             edited: np.ndarray, rects: list[tuple[int, int, int, int]]) -> None:
    """Overwrites, in place, the blocks of the MCU rectangles with the edited pixels' coefficients."""
    mh, mw = mcu_size(sampling)
    for r0, r1, c0, c1 in rects:
        targets = [comp[r0 * v:r1 * v, c0 * h:c1 * h] for comp, (h, v) in zip(blocks, sampling)]
        _encode_region(_mcu_region(edited, r0 * mh, r1 * mh, c0 * mw, c1 * mw), sampling, tables, table_of, targets)


# --- libjpeg, through jpeglib's compiled binding without its Python wrapper ---

_lib: ctypes.CDLL | None = None
_local = threading.local()


def _cjpeglib() -> ctypes.CDLL:
    """jpeglib's compiled libjpeg binding, loaded once, with the argument types of its two DCT functions."""
    global _lib
    if _lib is None:
        spec = importlib.util.find_spec("jpeglib")  # its folder, without importing its Python wrapper
        if spec is None or spec.origin is None:
            raise ImportError("exact JPEG copies need the jpeglib package (pip install jpeglib)")
        folder = os.path.join(os.path.dirname(spec.origin), "cjpeglib")
        name = next(f for f in sorted(os.listdir(folder)) if f.startswith(f"cjpeglib_{_LIBJPEG}."))
        lib = ctypes.CDLL(os.path.join(folder, name))
        p, i = ctypes.c_void_p, ctypes.c_int
        lib.read_jpeg_dct.argtypes = [ctypes.c_char_p, p, p, p, p, p, p]
        lib.read_jpeg_dct.restype = i
        lib.write_jpeg_dct.argtypes = [ctypes.c_char_p, ctypes.c_char_p, p, p, p, p, p, p, p, i, i, p,
                                       ctypes.c_short, p, i, p, p, p, ctypes.c_uint, ctypes.c_uint]
        lib.write_jpeg_dct.restype = i
        _lib = lib
    return _lib


class _Workspace:
    """One thread's reusable int16 buffer for one image geometry, which libjpeg reads into and writes from:
    every component's blocks, then the 4 quantization tables (natural order), then each component's table."""

    def __init__(self, height: int, width: int, sampling: Sampling) -> None:
        hmax, vmax = max(h for h, _ in sampling), max(v for _, v in sampling)
        shapes = [(-(-height * v // (8 * vmax)), -(-width * h // (8 * hmax))) for h, v in sampling]
        sizes = [rows * cols * 64 for rows, cols in shapes]
        total = sum(sizes)
        self.buffer = np.empty(total + 260, dtype=np.int16)
        base = self.buffer.ctypes.data
        offsets = [sum(sizes[:c]) for c in range(len(sizes))]
        self.blocks = [self.buffer[o:o + n].reshape(r, c, 8, 8) for o, n, (r, c) in zip(offsets, sizes, shapes)]
        self.tables = self.buffer[total:total + 256].view(np.uint16).reshape(4, 8, 8)
        self.table_numbers = self.buffer[total + 256:]
        self.pointers = [base + 2 * o for o in offsets] + [None] * (4 - len(offsets))
        self.tables_at, self.numbers_at = base + 2 * total, base + 2 * (total + 256)
        self.dims = np.zeros(14, dtype=np.int32)  # image (h, w), then blocks (rows, cols), factors (v, h) per component
        self.dims[:2] = height, width
        for c, ((rows, cols), (h, v)) in enumerate(zip(shapes, sampling)):
            self.dims[2 + 2 * c:4 + 2 * c] = rows, cols
            self.dims[8 + 2 * c:10 + 2 * c] = v, h
        self.dims_at = self.dims.ctypes.data
        self.color_space = _JCS_GRAYSCALE if len(sampling) == 1 else _JCS_YCBCR

    def read(self, source: bytes, path_hint: str) -> tuple[int, ...]:
        """Reads a JPEG file's coefficients and tables; returns each component's table number."""
        self.table_numbers[:] = -1
        if not _cjpeglib().read_jpeg_dct(source, *self.pointers, self.tables_at, self.numbers_at):
            raise _refuse(path_hint or os.fsdecode(source), "libjpeg could not read its DCT coefficients")
        return tuple(self.table_numbers[:len(self.blocks)].tolist())

    def write(self, destination: bytes, table_of: tuple[int, ...], markers: tuple[tuple[int, bytes], ...]) -> None:
        """Writes the coefficients as a sequential JPEG with the tables, the sampling and APPn/COM markers."""
        qt, kept = self.tables_at, None
        if max(table_of) > 1:  # jpeglib's writer reads a new table slot (2, 3) at its component's index
            if any(t > 1 and c in table_of and c != t for c, t in enumerate(table_of)):
                raise ValueError(f"unsupported quantization table assignment {table_of}")
            kept = self.tables.copy()
            for c, t in enumerate(table_of):
                kept[c] = kept[t] if t > 1 else kept[c]
            qt = kept.ctypes.data
        kinds = lengths = payload = None
        if markers:
            kept = (np.array([m[0] for m in markers], np.int32), np.array([len(m[1]) for m in markers], np.int32), kept)
            kinds, lengths, payload = kept[0].ctypes.data, kept[1].ctypes.data, b"".join(m[1] for m in markers)
        if not _cjpeglib().write_jpeg_dct(None, destination, *self.pointers, self.dims_at, self.dims_at + 8,
                                          self.dims_at + 32, self.color_space, len(self.blocks), qt, -1,
                                          self.numbers_at, len(markers), kinds, lengths, payload, 0, 0xFFFFFFFF):
            raise OSError(f"libjpeg could not write DCT coefficients to {os.fsdecode(destination)}")


def _workspace(height: int, width: int, sampling: Sampling) -> _Workspace:
    """This thread's workspace for the geometry (forked children get copies of the parent's buffers)."""
    spaces = getattr(_local, "workspaces", None)
    if spaces is None:
        spaces = _local.workspaces = {}
    key = (height, width, sampling)
    space = spaces.get(key)
    if space is None:
        if len(spaces) >= 16:
            spaces.clear()
        space = spaces[key] = _Workspace(height, width, sampling)
    return space


def _id_patches(written: bytes, ids: tuple[int, ...]) -> tuple[tuple[int, bytes], ...]:
    """Where and what to write so that a JPEG that jpeglib wrote (component ids 0, 1, 2) has the original's ids."""
    pos, patches = 2, []
    while True:
        code, end = written[pos + 1], pos + 2 + ((written[pos + 2] << 8) | written[pos + 3])
        if code in _SOF_OK or code == 0xDA:
            start, step = (pos + 10, 3) if code != 0xDA else (pos + 5, 2)
            spec = bytearray(written[start:end if code != 0xDA else start + step * written[pos + 4]])
            spec[::step] = bytes(ids[i] for i in spec[::step])
            patches.append((start, bytes(spec)))
            if code == 0xDA:
                return tuple(patches)
        pos = end


_known_patches: dict[tuple, tuple[tuple[int, bytes], ...]] = {}  # by everything that shapes the written header


def _remember_patches(key: tuple, written: bytes) -> tuple[tuple[int, bytes], ...]:
    """Finds and keeps the id patches of a written header's layout."""
    if len(_known_patches) >= 256:
        _known_patches.clear()
    return _known_patches.setdefault(key, _id_patches(written, key[0]))


def _patched(written: bytes, key: tuple) -> bytes:
    """The written JPEG with the original's component ids."""
    patches = _known_patches.get(key)
    if patches is None:
        patches = _remember_patches(key, written)
    if not patches:
        return written
    out = bytearray(written)
    for at, spec in patches:
        out[at:at + len(spec)] = spec
    return bytes(out)


def _patch_file(path: str, key: tuple) -> None:
    """Gives the JPEG file that jpeglib wrote the original's component ids."""
    patches = _known_patches.get(key)
    if patches is None:
        with open(path, "rb") as f:
            patches = _remember_patches(key, f.read())
    if patches:
        fd = os.open(path, os.O_WRONLY)
        try:
            for at, spec in patches:
                os.pwrite(fd, spec, at)
        finally:
            os.close(fd)


def read_coefficients(path: str) -> tuple[list[np.ndarray], np.ndarray, tuple[int, ...]]:
    """A JPEG file's quantized DCT blocks (rows, cols, 8, 8) per component, its 4 tables (natural order), their use."""
    with open(path, "rb") as f:
        info = parse_jpeg(f.read(), path)
    space = _Workspace(info.height, info.width, info.sampling)
    table_of = space.read(os.fsencode(path), path)
    return space.blocks, space.tables, table_of


class _Scratch:
    """This process and thread's input and output file for libjpeg: anonymous memory files opened by /proc
    path where Linux has them, else two files in a private temporary folder."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        if hasattr(os, "memfd_create") and os.path.isdir("/proc/self/fd"):
            self.fds = [os.memfd_create(f"reidlib-jpeg-{k}", os.MFD_CLOEXEC) for k in ("in", "out")]
            self.paths = [f"/proc/self/fd/{fd}".encode() for fd in self.fds]
        else:
            import atexit
            import shutil
            import tempfile
            self.fds, folder = None, tempfile.mkdtemp(prefix="reidlib-jpeg-")
            self.paths = [os.fsencode(os.path.join(folder, k)) for k in ("in.jpg", "out.jpg")]
            atexit.register(shutil.rmtree, folder, True)

    def put(self, data: bytes) -> bytes:
        """The path of the input file, now holding `data`."""
        if self.fds is None:
            with open(self.paths[0], "wb") as f:
                f.write(data)
        else:
            os.ftruncate(self.fds[0], 0)
            os.pwrite(self.fds[0], data, 0)
        return self.paths[0]

    def take(self) -> bytes:
        """What libjpeg wrote to the output file."""
        if self.fds is None:
            with open(self.paths[1], "rb") as f:
                return f.read()
        return os.pread(self.fds[1], os.fstat(self.fds[1]).st_size, 0)

    def __del__(self) -> None:
        if self.fds is not None and os.getpid() == self.pid:
            for fd in self.fds:
                os.close(fd)


def _scratch() -> _Scratch:
    """This thread's scratch files (new ones after a fork)."""
    scratch = getattr(_local, "scratch", None)
    if scratch is None or scratch.pid != os.getpid():
        scratch = _local.scratch = _Scratch()
    return scratch


def _check_edited(edited: np.ndarray, info: JpegInfo, path_hint: str) -> None:
    """Refuses an edited image that is not the original's size in uint8 BGR (or gray for a gray JPEG)."""
    if not (isinstance(edited, np.ndarray) and edited.dtype == np.uint8
            and edited.shape[:2] == (info.height, info.width)
            and (edited.ndim == 3 and edited.shape[2] == 3 or edited.ndim == 2 and len(info.ids) == 1)):
        got = f"{edited.dtype} {edited.shape}" if isinstance(edited, np.ndarray) else type(edited).__name__
        raise ValueError(f"{path_hint or '<JPEG bytes>'}: the edited image ({got}) is not the JPEG's "
                         f"{info.height}x{info.width} uint8 BGR{' or gray' if len(info.ids) == 1 else ''} pixels")


def _prepare(original: bytes, edited: np.ndarray, boxes, path_hint: str
             ) -> tuple[JpegInfo, list[tuple[int, int, int, int]]] | None:
    """The header and the boxes' MCU rectangles; None when no box meets the image (the copy is the original)."""
    if boxes is None or np.size(boxes) == 0:
        return None
    info = parse_jpeg(original, path_hint)
    _check_edited(edited, info, path_hint)
    rects = _mcu_rects(info.height, info.width, boxes, *mcu_size(info.sampling))
    return (info, rects) if rects else None


def _transcode(source: bytes, destination: bytes, info: JpegInfo, edited: np.ndarray,
               rects: list[tuple[int, int, int, int]], path_hint: str) -> tuple:
    """Reads the source's coefficients, replaces the rectangles' MCUs with the edited pixels', writes the
    destination; returns what decides the layout of the written header (for _patched and _patch_file)."""
    space = _workspace(info.height, info.width, info.sampling)
    table_of = space.read(source, path_hint)
    tables = space.tables.tobytes()
    _replace(space.blocks, tables, table_of, info.sampling, edited, rects)
    space.write(destination, table_of, info.markers)
    return info.ids, info.sampling, table_of, tables, tuple((k, len(m)) for k, m in info.markers)


def exact_jpeg(original: bytes, edited: np.ndarray, boxes, path_hint: str = "", source_path: str | None = None
               ) -> bytes:
    """The original JPEG with only the MCUs that the boxes overlap re-encoded from `edited`; itself if none.

    `source_path`, a file holding exactly `original`, lets libjpeg read that instead of a scratch copy.
    """
    hint = path_hint or source_path or ""
    prepared = _prepare(original, edited, boxes, hint)
    if prepared is None:
        return original
    scratch = _scratch()
    source = os.fsencode(source_path) if source_path else scratch.put(original)
    key = _transcode(source, scratch.paths[1], prepared[0], edited, prepared[1], hint)
    return _patched(scratch.take(), key)


def write_exact_jpeg(original: bytes, edited: np.ndarray, boxes, destination: str, path_hint: str = "",
                     source_path: str | None = None) -> None:
    """Writes exact_jpeg's copy to `destination`, libjpeg writing the file itself (no copy through Python)."""
    hint = path_hint or source_path or ""
    prepared = _prepare(original, edited, boxes, hint)
    if prepared is None:
        with open(destination, "wb") as f:
            f.write(original)
        return
    source = os.fsencode(source_path) if source_path else _scratch().put(original)
    key = _transcode(source, os.fsencode(destination), prepared[0], edited, prepared[1], hint)
    _patch_file(destination, key)
