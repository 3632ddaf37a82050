"""The GPU check: every CUDA path of the project run once, one summary table (under 8 minutes on one H100).

1. training throughput of the six models, fp32 against bfloat16 autocast + channels-last
   (`training_benchmark.throughput`, the paper recipe's losses, full steps);
2. a short BoT run with the paper profile (no ImageNet weights) through `reidlib.training.train` on a
   generated set with Market-1501's 751 training identities: img/s, peak GPU memory, loss per epoch;
3. rank metrics (torch on the GPU against the compiled CPU kernel) on a Market-size problem, and
   k-reciprocal re-ranking on the GPU against the CPU path: times and the largest differences.

Without CUDA it runs the same code on the CPU at a tiny size (`--tiny` forces that size), so a test
can run it to completion.

    python benchmarks/gpu_check.py [--tiny] [--epochs 3] [--models bot hacnn]
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from evaluation_benchmark import problem  # noqa: E402  (the same Market-size problem)
from rerank_benchmark import features  # noqa: E402
from training_benchmark import SIX, throughput  # noqa: E402

from reidlib.core import config, registry  # noqa: E402
from reidlib.stages import datasets, evaluation, synthetic, training  # noqa: E402

ROWS: list[tuple[str, str, str, str]] = []  # (check, setting, result, against)


def row(check: str, setting: str, result: str, against: str = "") -> None:
    ROWS.append((check, setting, result, against))
    print(f"  {check}: {setting}: {result} {against}", flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # CPU: the process's peak RSS


def check_training(device: torch.device, models: list[str], tiny: bool) -> None:
    """fp32 against bf16 + channels-last for each model (on the CPU too when tiny, to run that path)."""
    steps, warmup, size = (1, 0, (64, 32)) if tiny else (20, 3, (256, 128))
    for m in models:
        batch = 2 if tiny else (64 if m == "bot" else 32)
        fp32 = throughput(m, batch, steps, device, amp=False, warmup=warmup, image_size=size)
        mixed = throughput(m, batch, steps, device, amp=True, force_amp=tiny, warmup=warmup, image_size=size)
        layout = "bf16+CL" if registry.model(m).channels_last else "bf16"  # the registry says which refuse it
        row("train img/s", f"{m} batch {batch}", f"fp32 {fp32:.1f}, {layout} {mixed:.1f}", f"x{mixed / fp32:.2f}")


def check_bot_run(device: torch.device, tmp: Path, tiny: bool, epochs: int, workers: int) -> None:
    """BoT with the paper profile through `training.train` on a generated set of Market-1501's training size."""
    ids = 8 if tiny else 751  # Market-1501: 751 training identities, 12,936 images
    dcfg = config.DatasetConfig(train_ids=ids, test_ids=2, cameras=6, images_per_camera=4 if not tiny else 2)
    t0 = time.perf_counter()
    root = synthetic.generate(tmp / "market_size", dcfg, seed=0)
    recs = datasets.read_market(root)
    n_train = int((recs.split == "train").sum())
    row("BoT paper run", "generated set", f"{n_train} train images, {ids} ids", f"{time.perf_counter() - t0:.0f} s")
    over = {"profile": "paper", "model": "bot", "pretrained": "none", "epochs": epochs, "num_workers": workers,
            "device": device.type}
    if tiny:
        over.update(batch_size=8, instances=2, image_size=[64, 32])
    cfg = config.from_dict({"training": over}).training
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    training.train(root, recs, tmp / "bot", cfg, seed=0, progress=False)
    total = time.perf_counter() - t0
    log = pd.read_csv(tmp / "bot" / "train_log.csv")
    rate = log.images_per_s.iloc[-1]
    row("BoT paper run", f"{epochs} epochs, batch {cfg.batch_size}, amp {cfg.amp and device.type == 'cuda'}",
        f"{rate:.0f} img/s (last epoch), peak memory {peak_memory_gb(device):.1f} GB", f"{total:.0f} s in all")
    losses = ", ".join(f"{v:.3f}" for v in log.loss)
    falling = bool(log.loss.iloc[-1] < log.loss.iloc[0])
    row("BoT paper run", "loss per epoch", losses, "falling" if falling else "NOT falling")


def check_evaluation(device: torch.device, tiny: bool) -> None:
    """Rank metrics and re-ranking on `device` against the CPU paths, same inputs."""
    nq, ng = (200, 1200) if tiny else (3368, 19732)
    dist, qp, gp, qc, gc = problem(nq, ng, distractors=100 if tiny else 2000)
    evaluation.rank_metrics(dist[:4], qp[:4], gp, qc[:4], gc)  # compile the CPU kernel first
    evaluation.rank_metrics_torch(dist[:4], qp[:4], gp, qc[:4], gc, device=device)  # and warm the device up
    t0 = time.perf_counter()
    cpu = evaluation.rank_metrics(dist, qp, gp, qc, gc)
    t_cpu = time.perf_counter() - t0
    sync(device)
    t0 = time.perf_counter()
    dev = evaluation.rank_metrics(dist, qp, gp, qc, gc, backend="torch", device=device)
    sync(device)
    t_dev = time.perf_counter() - t0
    diff = max(abs(dev.mAP - cpu.mAP), abs(dev.mINP - cpu.mINP), float(np.abs(dev.cmc - cpu.cmc).max()))
    row("rank metrics", f"{nq} x {ng}", f"{device.type} torch {t_dev:.2f} s, CPU {t_cpu:.2f} s, mAP {dev.mAP:.6f}",
        f"max |d| {diff:.1e} ({'ok' if diff <= 1e-6 else 'OVER 1e-6'})")

    nq, ng, dim = (60, 300, 64) if tiny else (3368, 19732, 2048)
    f = features(nq + ng, dim, ids=20 if tiny else 1501)
    times, outs = {}, {}
    for d in dict.fromkeys([torch.device("cpu"), device]):
        sync(d)
        t0 = time.perf_counter()
        outs[d.type] = evaluation.re_ranking(f, nq, device=d)
        sync(d)
        times[d.type] = time.perf_counter() - t0
    diff = float(np.abs(outs[device.type] - outs["cpu"]).max())
    row("re-ranking", f"{nq} + {ng}, dim {dim}", f"{device.type} {times[device.type]:.1f} s, CPU {times['cpu']:.1f} s",
        f"max |d| {diff:.1e} ({'ok' if diff <= 1e-6 else 'OVER 1e-6'})")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="the CPU fallback's size, also on a GPU")
    ap.add_argument("--models", nargs="+", default=SIX)
    ap.add_argument("--epochs", type=int, default=None, help="BoT run epochs (default 3; tiny 2)")
    ap.add_argument("--workers", type=int, default=None, help="data-loader workers of the BoT run")
    ap.add_argument("--skip", nargs="*", default=[], choices=["training", "bot", "evaluation"])
    a = ap.parse_args(argv)
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    tiny = a.tiny or device.type == "cpu"
    name = torch.cuda.get_device_name() if device.type == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"GPU check on {name}, torch {torch.__version__}{', tiny size' if tiny else ''}", flush=True)
    start = time.perf_counter()
    if "training" not in a.skip:
        check_training(device, a.models, tiny)
    if "bot" not in a.skip:
        workers = a.workers if a.workers is not None else (0 if tiny else 8)
        with tempfile.TemporaryDirectory() as tmp:
            check_bot_run(device, Path(tmp), tiny, a.epochs or (2 if tiny else 3), workers)
    if "evaluation" not in a.skip:
        check_evaluation(device, tiny)
    widths = [max(len(r[i]) for r in ROWS + [("check", "setting", "result", "against")]) for i in range(4)]
    line = "  ".join("{:<%d}" % w for w in widths)
    print(f"\nsummary ({name}, {time.perf_counter() - start:.0f} s)")
    print(line.format("check", "setting", "result", "against"))
    print(line.format(*("-" * w for w in widths)))
    for r in ROWS:
        print(line.format(*r))


if __name__ == "__main__":
    main()
