"""Anonymization throughput: img/s per technique writing a full dataset copy (file I/O included).

Generates at least 2,000 64x128 crops, takes their true face boxes as the detections, and times
`reidlib.anonymize.anonymize_dataset` with 2 processes for each technique; as the peer, deface's
own `anonymize_frame` (its blur, one process, same boxes, same reading and writing).

    python benchmarks/anonymize_benchmark.py [--images 2000] [--processes 2] [--repeat 3]
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from reidlib import anonymize, config, datasets, images, registry, synthetic
from reidlib.boxes import boxes_by_image
from reidlib.runfiles import atomic_write_bytes


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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=2000)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = make_dataset(tmp / "src", args.images)
        n = len(datasets.read_market(src))
        dets = pd.read_csv(src / "face_boxes.csv").assign(score=1.0)
        print(f"{n} crops, {len(dets)} faces, processes={args.processes}")
        print(f"best of {args.repeat} runs, each into an empty folder")

        def best(run) -> float:
            times = []
            for i in range(args.repeat):
                t0 = time.perf_counter()
                run(tmp / f"out{i}-{time.perf_counter_ns()}")
                times.append(time.perf_counter() - t0)
            return n / min(times)

        peer = best(lambda out: deface_copy(src, out, dets))
        print(f"{'deface blur (peer, 1 process)':32s} {peer:8.0f} img/s")
        for t in registry.TECHNIQUES:
            params = anonymize.technique_params(t)
            rate = best(lambda out: anonymize.anonymize_dataset(src, dets, out, t, progress=False,
                                                                processes=args.processes, **params))
            print(f"{'reidlib ' + t:32s} {rate:8.0f} img/s   ratio to peer {rate / peer:5.2f}")


if __name__ == "__main__":
    cv2.setNumThreads(1)
    main()
