"""Training throughput of the paper's six models (images per second), in one process.

Each model takes full training steps (forward, the recipe's losses, backward, Adam) on random
batches at its input size, with the `paper` recipe's losses and 751 classes (Market-1501's train
ids). Each model runs in fp32 and in mixed precision (bfloat16 autocast + channels-last; MuDeep without
channels-last), and the ratio is printed: on CUDA (`training.amp`), and on a CPU that computes bfloat16
natively (`training.cpu_amp`, `training.native_bf16`); on another CPU fp32 only.

    python benchmarks/training_benchmark.py [--models bot hacnn] [--batch 32] [--steps 10]
    python benchmarks/training_benchmark.py --models hacnn bot_mnv2 --batch 16   # the default run's models
"""
from __future__ import annotations

import argparse
import time

import torch

from reidlib.core import config, registry
from reidlib.models import bot, zoo
from reidlib.stages import training

SIX = [n for n, m in registry.MODELS.items() if m.paper]  # the paper's six models (Section IV-A)


def throughput(model_name: str, batch: int, steps: int, device: torch.device, amp: bool,
               force_amp: bool = False, warmup: int = 2, image_size: tuple[int, int] = (256, 128),
               channels_last: bool | None = None) -> float:
    """Training images per second over `steps` timed steps (after `warmup` untimed ones).

    `amp`: bfloat16 autocast + channels-last, on CUDA only unless `force_amp` (to run that path on a CPU).
    `image_size`: (height, width) for the models that do not fix their own. `channels_last`: the layout whatever
    the precision (None: with `amp`), to time bfloat16 alone as a CPU run trains (channels-last either way).
    """
    cfg = config.from_dict({"training": {"profile": "paper", "model": model_name, "pretrained": "none",
                                         "batch_size": batch, "instances": min(4, batch // 2)}}).training
    torch.manual_seed(0)
    net = zoo.build_model(model_name, 751).to(device)
    losses = training.Losses(cfg, 751, getattr(net, "feature_dim", bot.FEATURE_DIM)).to(device)
    mixed = amp and (device.type == "cuda" or force_amp)
    cl = (mixed if channels_last is None else channels_last) and registry.model(model_name).channels_last
    if cl:
        net = net.to(memory_format=torch.channels_last)
    opt = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], lr=cfg.lr)
    h, w = zoo.input_size(model_name, tuple(image_size))
    x = torch.randn(batch, 3, h, w, device=device)
    if cl:
        x = x.to(memory_format=torch.channels_last)
    y = torch.arange(batch, device=device) // max(cfg.instances, 1)  # ids_per_batch x instances, as the sampler gives
    net.train()

    def step():
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=mixed):
            out = net(x)
        loss, _, _ = losses(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    for _ in range(warmup):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return batch * steps / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=SIX)
    ap.add_argument("--batch", type=int, default=None, help="default: 32 on CUDA (BoT 64), 8 on CPU")
    ap.add_argument("--steps", type=int, default=None, help="default: 20 on CUDA, 3 on CPU")
    args = ap.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    name = torch.cuda.get_device_name() if device.type == "cuda" else (
        f"CPU ({torch.get_num_threads()} threads, bfloat16 {'native' if training.native_bf16() else 'not native'})")
    steps = args.steps or (20 if device.type == "cuda" else 3)
    print(f"device: {name}; torch {torch.__version__}; {steps} timed steps per model")
    print(f"{'model':<12} {'batch':>5} {'input':>8} {'fp32 img/s':>11} {'bf16 img/s':>11} {'ratio':>6}")
    for m in args.models:
        batch = args.batch or ((64 if m == "bot" else 32) if device.type == "cuda" else 8)
        h, w = zoo.input_size(m, (256, 128))
        layout = None if device.type == "cuda" else True  # a CPU run trains channels-last in both precisions
        fp32 = throughput(m, batch, steps, device, amp=False, channels_last=layout)
        if device.type == "cuda" or training.native_bf16():
            mixed = throughput(m, batch, steps, device, amp=True, force_amp=True, channels_last=layout)
            print(f"{m:<12} {batch:>5} {f'{h}x{w}':>8} {fp32:>11.1f} {mixed:>11.1f} {mixed / fp32:>6.2f}")
        else:
            print(f"{m:<12} {batch:>5} {f'{h}x{w}':>8} {fp32:>11.1f} {'-':>11} {'-':>6}")


if __name__ == "__main__":
    main()
