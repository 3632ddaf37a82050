"""Anonymization throughput: img/s per technique writing a full dataset copy (file I/O included).

Generates at least 2,000 64x128 crops, takes their true face boxes as the detections, and times
`reidlib.stages.anonymize.anonymize_dataset` with 2 processes for each technique, and blur with 1, in both
encodings: `exact` (only the JPEG blocks touching a face rewritten, the default) and `reencode` (the whole
image encoded again, as anonymization tools do); as the peer, deface's own `anonymize_frame` (its blur, one
process, same boxes, same reading and writing, the whole image re-encoded).
Then the writer's costs one by one: fixed (worker pool start, listing, boxes, manifest) and per image.

    python benchmarks/anonymize_benchmark.py [--images 2000] [--processes 2] [--repeat 3] [--techniques blur]
        [--tmp DIR]

Files are written under --tmp, by default a memory-backed folder (/dev/shm) where there is one: the
ratio measures the writers' own work, and a virtual machine's disk made single runs swing two- to
threefold (both sides write the same files; pass a disk folder to include it).
"""
from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from reidlib.core import config, images, registry
from reidlib.core.boxes import boxes_by_image
from reidlib.core.runfiles import atomic_write_bytes, write_bytes
from reidlib.stages import anonymize, datasets, synthetic


def make_dataset(root: Path, images: int) -> Path:
    """A generated dataset of at least `images` crops (6 cameras, 4 images per camera and id)."""
    ids = 4
    while True:
        cfg = config.DatasetConfig(train_ids=ids, test_ids=ids, cameras=6, images_per_camera=4)
        if len(synthetic.plan(cfg, seed=0)) >= images:
            return synthetic.generate(root, cfg, seed=0)
        ids += 1


def deface_copy(src: Path, out: Path, dets: pd.DataFrame) -> None:
    """The peer: deface's anonymize_frame (Gaussian blur of each box) over the same files."""
    from deface.deface import anonymize_frame

    boxes = boxes_by_image(dets)
    for rel in datasets.read_market(src).image:
        img = images.read_image(src / rel)
        b = boxes.get(rel, np.empty((0, 4)))
        d = np.hstack([b, np.ones((len(b), 1))]) if len(b) else np.empty((0, 5))
        anonymize_frame(d, img, mask_scale=1.0, replacewith="blur", ellipse=False, draw_scores=False,
                        replaceimg=None, mosaicsize=6)
        atomic_write_bytes(out / rel, images.encode_image(img, ".jpg"))


def costs(src: Path, dets: pd.DataFrame, tmp: Path) -> None:
    """Where one process's time goes: fixed costs per copy and per-image costs (blur), one at a time."""
    import hashlib
    import multiprocessing
    import subprocess
    import sys
    from concurrent.futures import ProcessPoolExecutor

    rels = sorted(p.relative_to(src).as_posix() for p in src.rglob("*") if p.is_file())
    n = len(rels)

    def timed(label, fn, per_image=True):
        t0 = time.perf_counter()
        out = fn()
        dt = time.perf_counter() - t0
        print(f"  {label:44s} {dt * 1e3:8.1f} ms" + (f"   {dt / n * 1e6:7.1f} us/image" if per_image else ""))
        return out

    print("fixed costs of one copy")
    code = "import reidlib.stages.anonymize"
    timed("import reidlib.stages.anonymize (a fresh interpreter)",
          lambda: subprocess.run([sys.executable, "-c", code], check=True), False)

    def new_pool():  # what each copy paid before the pool was kept: a pool started and stopped
        with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("forkserver")) as pool:
            list(pool.map(abs, range(4)))
    timed("a pool of 2 started and stopped", new_pool, False)
    timed("the kept pool, reused", lambda: list(anonymize.writer_pool(2).map(abs, range(4))), False)
    timed("listing the files (pathlib rglob)", lambda: sorted(p.relative_to(src).as_posix() for p in src.rglob("*")
                                                              if p.is_file()), False)
    timed("listing the files (the copy's os.scandir)", lambda: images.list_files(src), False)
    boxes = timed("boxes by image (pandas groupby)", lambda: boxes_by_image(dets), False)
    print(f"per-image costs ({n} files, one process)")
    raws = timed("read", lambda: [(src / r).read_bytes() for r in rels])
    imgs = timed("decode", lambda: [images.decode_image(b, r) if r.endswith(".jpg") else None
                                    for b, r in zip(raws, rels)])
    blurred = timed("blur", lambda: [anonymize.anonymize_image(im, boxes.get(r, np.empty((0, 4))), "blur")
                                     if im is not None else None for im, r in zip(imgs, rels)])
    data = timed("encode (JPEG 95)", lambda: [images.encode_image(a, ".jpg") if a is not None else b
                                              for a, b in zip(blurred, raws)])
    timed("sha256 of source and copy", lambda: [(hashlib.sha256(a).digest(), hashlib.sha256(b).digest())
                                                for a, b in zip(raws, data)])
    timed("atomic write (temporary file, rename: the peer)", lambda: [atomic_write_bytes(tmp / "w" / r, d)
                                                                      for r, d in zip(rels, data)])
    timed("write in place (the copy's, chunks journaled)", lambda: [write_bytes(f"{tmp}/w2/{r}", d)
                                                                    for r, d in zip(rels, data)])
    for encode in ("exact", "reencode"):
        timed(f"whole copy, 1 process, {encode}", lambda e=encode: anonymize.anonymize_dataset(
            src, dets, tmp / f"c1-{e}", anonymize.Writer("blur", encode=e), progress=False, processes=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--techniques", nargs="+", default=list(registry.TECHNIQUES))
    shm = Path("/dev/shm")
    ap.add_argument("--tmp", default=str(shm) if shm.is_dir() and os.access(shm, os.W_OK) else None,
                    help="folder for the dataset and the copies (default: /dev/shm when present)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        src = make_dataset(tmp / "src", args.images)
        n = len(datasets.read_market(src))
        dets = pd.read_csv(src / "face_boxes.csv").assign(score=1.0)
        print(f"{n} crops, {len(dets)} faces, processes={args.processes}, files under {tmp}")
        print(f"best of {args.repeat} runs, each into an empty folder")

        def timed(run) -> float:
            """Seconds of one run into a new folder, removed afterwards (memory-backed folders stay small)."""
            out = tmp / f"out-{time.perf_counter_ns()}"
            t0 = time.perf_counter()
            run(out)
            dt = time.perf_counter() - t0
            shutil.rmtree(out)
            return dt

        def best(run) -> float:
            return n / min(timed(run) for _ in range(args.repeat))

        def ours(t: str, processes: int, encode: str = "exact"):
            writer = anonymize.Writer(t, anonymize.technique_params(t), encode=encode)
            return lambda out: anonymize.anonymize_dataset(src, dets, out, writer, progress=False, processes=processes)

        # the peer and reidlib's blur take turns, so a busy moment of the machine hits all of them
        runs = {"deface blur (peer, 1 process)": lambda out: deface_copy(src, out, dets),
                f"reidlib blur, {args.processes} processes, exact": ours("blur", args.processes),
                f"reidlib blur, {args.processes} processes, reencode": ours("blur", args.processes, "reencode"),
                "reidlib blur, 1 process, exact": ours("blur", 1)}
        times = {name: float("inf") for name in runs}
        for i in range(args.repeat):
            for name, run in runs.items():
                times[name] = min(times[name], timed(run))
        peer = n / times["deface blur (peer, 1 process)"]
        for name, t in times.items():
            print(f"{name:42s} {n / t:8.0f} img/s   ratio to peer {n / t / peer:5.2f}")
        for t in args.techniques:
            if t != "blur":
                rate = best(ours(t, args.processes))
                print(f"{'reidlib ' + t + f', {args.processes} processes, exact':42s} {rate:8.0f} img/s   "
                      f"ratio to peer {rate / peer:5.2f}")
        costs(src, dets, tmp)


if __name__ == "__main__":
    cv2.setNumThreads(1)
    main()
