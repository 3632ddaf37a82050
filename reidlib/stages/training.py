"""Training one re-ID model on one dataset variant (paper Section IV-A), resumable per epoch.

One run = one (dataset variant, model, recipe). The torchreid recipe of the paper: cross-entropy,
random flip and 2-D translation, Adam (0.9, 0.999), step decay 0.1. BoT's: label-smoothed
cross-entropy + batch-hard triplet + center loss, 16 ids x 4 images, warmup, random erasing.
"""
from __future__ import annotations

import io
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from torch.utils.data import DataLoader
from tqdm.auto import tqdm

from ..core import registry
from ..core.config import TrainingConfig
from ..core.runfiles import atomic_write_bytes, atomic_write_text, write_json
from ..models import bot, checkpoints
from ..models import torchreid_models as trm
from ..models.transforms import ReidImages, train_transform
from ..models.zoo import build_model, input_size, resolve_device


def lr_factor(epoch: int, cfg: TrainingConfig) -> float:
    """The learning rate of 0-based `epoch` as a multiple of `cfg.lr` (paper Section IV-A).

    Epoch t = epoch + 1 runs at t / warmup_epochs during warmup (BoT: 3.5e-5 rising to 3.5e-4; the
    paper's printed formula drops a factor 10, its prose does not), then decays by lr_decay after
    each of lr_milestones (t > m), or every lr_step epochs when no milestones are given.
    """
    t = epoch + 1
    if t <= cfg.warmup_epochs:
        return t / cfg.warmup_epochs
    if cfg.lr_milestones:
        return cfg.lr_decay ** sum(t > m for m in cfg.lr_milestones)
    return cfg.lr_decay ** (epoch // max(cfg.lr_step, 1))


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _save(obj, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


class Losses(nn.Module):
    """The recipe's loss terms on a model's training outputs; returns (total, logits, terms)."""

    def __init__(self, cfg: TrainingConfig, num_classes: int, feature_dim: int = bot.FEATURE_DIM):
        super().__init__()
        self.cfg = cfg
        self.ce = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
        self.triplet = trm.triplet_loss(cfg.triplet_margin) if cfg.triplet_margin > 0 else None
        self.center = bot.CenterLoss(num_classes, feature_dim) if cfg.center_weight > 0 else None
        self.metric = registry.model(cfg.model).metric_losses
        if (self.triplet or self.center) and not self.metric:
            raise ValueError(f"triplet and center losses need a model that returns features in training "
                             f"(as bot does); '{cfg.model}' is trained with cross-entropy")

    def forward(self, outputs, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        if self.metric:  # (logits, feature) in training
            logits, feat = outputs
            ce = self.ce(logits.float(), y)
            terms = {"ce": ce}
            if self.triplet is not None:
                terms["triplet"] = self.triplet(feat.float(), y)
            if self.center is not None:
                terms["center"] = self.cfg.center_weight * self.center(feat, y)
            total = sum(terms.values())
        else:
            total, logits = trm.logits_loss(outputs, y, self.ce)
            terms = {}
        return total, logits, {k: float(v.detach()) for k, v in terms.items()}


def _loader(data: "ReidImages", cfg: TrainingConfig, labels: list[int], seed: int, device: torch.device) -> DataLoader:
    """Shuffled batches, or torchreid's identity sampler (ids_per_batch x instances) when asked."""
    common = dict(batch_size=cfg.batch_size, num_workers=cfg.num_workers, pin_memory=device.type == "cuda",
                  persistent_workers=False)
    if cfg.sampler == "identity":
        return DataLoader(data, sampler=trm.identity_sampler(labels, cfg.batch_size, cfg.instances), drop_last=True,
                          **common)
    if cfg.sampler != "random":
        raise ValueError(f"unknown training.sampler '{cfg.sampler}'; choose random or identity")
    return DataLoader(data, shuffle=True, drop_last=len(data) > cfg.batch_size,
                      generator=torch.Generator().manual_seed(seed), **common)


@dataclass
class Trainer:
    """What one training run updates: the model, its losses (with BoT's centres) and their optimizers."""

    cfg: TrainingConfig
    device: torch.device
    model: nn.Module
    losses: Losses
    opt: torch.optim.Optimizer
    opt_center: torch.optim.Optimizer | None

    def state(self, epoch: int, log: list[dict]) -> dict:
        """The checkpoint after `epoch` epochs."""
        state = {"model": self.model.state_dict(), "losses": self.losses.state_dict(),
                 "optimizer": self.opt.state_dict(), "epoch": epoch, "log": json.dumps(log)}
        if self.opt_center is not None:
            state["optimizer_center"] = self.opt_center.state_dict()
        return state

    def resume(self, ckpt: Path) -> tuple[int, list[dict]]:
        """Load a checkpoint when there is one; the epoch to start from and the log so far."""
        if not ckpt.is_file():
            return 0, []
        state = checkpoints.read(ckpt, "training-resume", self.device)
        self.model.load_state_dict(state["model"])
        self.losses.load_state_dict(state["losses"])
        self.opt.load_state_dict(state["optimizer"])
        if self.opt_center is not None:
            self.opt_center.load_state_dict(state["optimizer_center"])
        return int(state["epoch"]), json.loads(state["log"])

    def step(self, x: torch.Tensor, y: torch.Tensor, amp) -> tuple[torch.Tensor, torch.Tensor, dict[str, float]]:
        """One optimisation step on a batch; the loss, logits and loss terms."""
        x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        if channels_last(self.cfg):  # on the CPU too: MobileNetV2 and HACNN train about 1.3x faster
            x = x.to(memory_format=torch.channels_last)
        with amp:
            outputs = self.model(x)
        loss, logits, terms = self.losses(_as_float(outputs), y)
        self.opt.zero_grad(set_to_none=True)
        if self.opt_center is not None:
            self.opt_center.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        if self.opt_center is not None:  # BoT: centres move by the unweighted center-loss gradient
            for q in self.losses.center.parameters():
                q.grad.mul_(1.0 / self.cfg.center_weight)
            self.opt_center.step()
        return loss, logits, terms

    def epoch(self, loader: DataLoader, epoch: int, progress: bool = True) -> dict:
        """Train one epoch (0-based `epoch`, its learning rate set first); its log row."""
        cfg, cuda = self.cfg, self.device.type == "cuda"
        for g in self.opt.param_groups:
            g["lr"] = cfg.lr * lr_factor(epoch, cfg)
        amp = torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=autocast(cfg, self.device) == "bfloat16")
        self.model.train()
        t0, seen, correct, sums = time.perf_counter(), 0, 0, {}
        for x, y in tqdm(loader, desc=f"{cfg.model} epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                         leave=False):
            loss, logits, terms = self.step(x, y, amp)
            y = y.to(logits.device)
            seen += len(y)
            correct += int((logits.argmax(1) == y).sum())
            for k, v in {"loss": float(loss.detach()), **terms}.items():
                sums[k] = sums.get(k, 0.0) + v * len(y)
        if cuda:
            torch.cuda.synchronize()
        dt = time.perf_counter() - t0
        return dict(epoch=epoch + 1, **{k: v / max(seen, 1) for k, v in sums.items()},
                    accuracy=correct / max(seen, 1), lr=self.opt.param_groups[0]["lr"],
                    images_per_s=seen / dt, seconds=dt)


def native_bf16() -> bool:
    """Whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX tiles); emulated, it would be slower."""
    cpu = torch.cpu
    return any(bool(getattr(cpu, f, lambda: False)()) for f in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"))


def autocast(cfg: TrainingConfig, device: torch.device) -> str:
    """The forward pass's precision in training: bfloat16 on CUDA (`amp`) and on a CPU with native bfloat16
    (`cpu_amp`), else float32. Losses and optimizer steps stay in float32 either way."""
    on = cfg.amp if device.type == "cuda" else cfg.cpu_amp and device.type == "cpu" and native_bf16()
    return "bfloat16" if on else "float32"


def _as_float(outputs):
    """A model's training outputs (a tensor or a tuple of them) in float32, for the losses."""
    if isinstance(outputs, (tuple, list)):
        return type(outputs)(_as_float(o) for o in outputs)
    return outputs.float() if torch.is_tensor(outputs) and outputs.is_floating_point() else outputs


def channels_last(cfg: TrainingConfig) -> bool:
    """Whether a run uses the channels-last layout: asked for, and the model takes it."""
    return cfg.channels_last and registry.model(cfg.model).channels_last


def make_trainer(cfg: TrainingConfig, num_classes: int, device: torch.device) -> Trainer:
    """The model (bad names fail here, before anything is written), its losses and optimizers."""
    model = build_model(cfg.model, num_classes, cfg.pretrained).to(device)
    if cfg.frozen_blocks:  # (the configuration refuses it for a model without a trunk: TrainingConfig)
        model.freeze(cfg.frozen_blocks)
    losses = Losses(cfg, num_classes, getattr(model, "feature_dim", bot.FEATURE_DIM)).to(device)
    if channels_last(cfg):
        model = model.to(memory_format=torch.channels_last)
    params = [q for q in model.parameters() if q.requires_grad]
    opt = torch.optim.Adam(params, lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)
    opt_center = torch.optim.SGD(losses.center.parameters(), lr=cfg.center_lr) if losses.center is not None else None
    return Trainer(cfg, device, model, losses, opt, opt_center)


def train(root: str | Path, records: pd.DataFrame, out_dir: str | Path, cfg: TrainingConfig,
          seed: int = 0, progress: bool = True) -> Path:
    """Train `cfg.model` on the train split of `records`; write model.pt, train_log.csv, pids.json.

    A checkpoint is saved after every epoch; a rerun resumes from it, and each epoch reseeds from
    (seed, epoch), so an interrupted run ends with the same weights as an uninterrupted one on CPU.
    `amp` (CUDA) and `cpu_amp` (a CPU with native bfloat16) run the forward pass in bfloat16 (`autocast`, recorded
    in pids.json); `channels_last` changes the memory layout on any device.
    """
    out_dir = Path(out_dir)
    final = out_dir / "model.pt"
    if final.is_file():
        return final
    device = resolve_device(cfg.device)
    train_recs = records[records.split == "train"].reset_index(drop=True)
    pids = sorted(int(p) for p in train_recs.pid.unique())
    labels = {p: i for i, p in enumerate(pids)}
    size = input_size(cfg.model, cfg.image_size)
    _seed_all(seed)
    trainer = make_trainer(cfg, len(pids), device)
    out_dir.mkdir(parents=True, exist_ok=True)
    ckpt = out_dir / "checkpoint.pt"
    start, log = trainer.resume(ckpt)
    data = ReidImages(root, train_recs, train_transform(size, cfg.augment, cfg.erasing), labels)
    targets = [labels[int(p)] for p in train_recs.pid]
    for epoch in range(start, cfg.epochs):
        _seed_all(seed * 1000 + epoch)
        loader = _loader(data, cfg, targets, seed * 1000 + epoch, device)
        log.append(trainer.epoch(loader, epoch, progress))
        _save(trainer.state(epoch + 1, log), ckpt)
    atomic_write_text(out_dir / "train_log.csv", pd.DataFrame(log).to_csv(index=False, lineterminator="\n"))
    write_json(out_dir / "pids.json", {"model": cfg.model, "input_size": list(size), "pids": pids,
                                        "autocast": autocast(cfg, device)})
    _save({k: v.contiguous() for k, v in trainer.model.state_dict().items()}, final)
    ckpt.unlink(missing_ok=True)
    return final
