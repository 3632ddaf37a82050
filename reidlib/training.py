"""Training one re-ID model on one dataset variant (paper Section IV-A), resumable per epoch.

The torchreid recipe of the paper: cross-entropy, random horizontal flip and random 2-D
translation (enlarge by 1/8 with p = 0.5, then crop), Adam (0.9, 0.999), step decay 0.1.
"""
from __future__ import annotations

import io
import json
import random
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torch import nn
from torch.utils.data import DataLoader, Dataset
from torchvision import transforms as T
from tqdm.auto import tqdm

from . import torchreid_models as trm
from .config import TrainingConfig
from .runfiles import atomic_write_bytes, atomic_write_text, write_json

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


class ReidImages(Dataset):
    """Images of `records` under `root`, labelled by `labels[pid]` (or the pid itself)."""

    def __init__(self, root: str | Path, records: pd.DataFrame, transform, labels: dict[int, int] | None = None):
        self.root, self.records, self.transform = Path(root), records.reset_index(drop=True), transform
        self.labels = labels

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, i: int):
        r = self.records.iloc[i]
        path = self.root / r.image
        try:
            img = Image.open(path).convert("RGB")
        except (OSError, ValueError) as e:
            raise ValueError(f"cannot read image (corrupt or missing): {path}") from e
        label = self.labels[int(r.pid)] if self.labels is not None else int(r.pid)
        return self.transform(img), label


def train_transform(size: tuple[int, int]) -> T.Compose:
    """Flip + torchreid's Random2DTranslation (the paper's augmentation), then normalise."""
    h, w = size
    return T.Compose([trm.Random2DTranslation(h, w, p=0.5), T.RandomHorizontalFlip(),
                      T.ToTensor(), T.Normalize(MEAN, STD)])


def test_transform(size: tuple[int, int]) -> T.Compose:
    """Resize and normalise."""
    return T.Compose([T.Resize(tuple(size)), T.ToTensor(), T.Normalize(MEAN, STD)])


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def _seed_all(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _save(obj, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def train(root: str | Path, records: pd.DataFrame, out_dir: str | Path, cfg: TrainingConfig,
          seed: int = 0, image_size: tuple[int, int] = (256, 128), progress: bool = True) -> Path:
    """Train `cfg.model` on the train split of `records`; write model.pt, train_log.csv, pids.json.

    A checkpoint is saved after every epoch; a rerun resumes from it, and each epoch reseeds from
    (seed, epoch), so an interrupted run ends with the same weights as an uninterrupted one on CPU.
    """
    out_dir = Path(out_dir)
    final = out_dir / "model.pt"
    if final.is_file():
        return final
    device = resolve_device(cfg.device)
    train_recs = records[records.split == "train"]
    pids = sorted(int(p) for p in train_recs.pid.unique())
    labels = {p: i for i, p in enumerate(pids)}
    size = trm.input_size(cfg.model, image_size)
    _seed_all(seed)
    model = trm.build(cfg.model, len(pids), cfg.pretrained).to(device)  # bad names fail before any write
    out_dir.mkdir(parents=True, exist_ok=True)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), weight_decay=cfg.weight_decay)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=cfg.lr_step, gamma=cfg.lr_decay)
    criterion = nn.CrossEntropyLoss()
    ckpt, log_path = out_dir / "checkpoint.pt", out_dir / "train_log.csv"
    start, log = 0, []
    if ckpt.is_file():
        state = torch.load(ckpt, map_location=device, weights_only=True)
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, log = int(state["epoch"]), json.loads(state["log"])
    data = ReidImages(root, train_recs, train_transform(size), labels)
    for epoch in range(start, cfg.epochs):
        _seed_all(seed * 1000 + epoch)
        loader = DataLoader(data, batch_size=cfg.batch_size, shuffle=True, drop_last=len(data) > cfg.batch_size,
                            num_workers=cfg.num_workers, generator=torch.Generator().manual_seed(seed * 1000 + epoch))
        model.train()
        t0, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
        for x, y in tqdm(loader, desc=f"{cfg.model} epoch {epoch + 1}/{cfg.epochs}", disable=not progress,
                         leave=False):
            x, y = x.to(device), y.to(device)
            loss, logits = trm.logits_loss(model(x), y, criterion)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
            loss_sum += loss.item() * len(y)
            correct += int((logits.argmax(1) == y).sum())
        dt = time.perf_counter() - t0
        log.append(dict(epoch=epoch + 1, loss=loss_sum / seen, accuracy=correct / seen,
                        lr=opt.param_groups[0]["lr"], images_per_s=seen / dt, seconds=dt))
        sched.step()
        _save({"model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
               "epoch": epoch + 1, "log": json.dumps(log)}, ckpt)
    atomic_write_text(log_path, pd.DataFrame(log).to_csv(index=False, lineterminator="\n"))
    write_json(out_dir / "pids.json", {"model": cfg.model, "input_size": list(size), "pids": pids})
    _save(model.state_dict(), final)
    ckpt.unlink(missing_ok=True)
    return final


def load_trained(out_dir: str | Path, device: str = "cpu") -> tuple[nn.Module, tuple[int, int]]:
    """Rebuild a model trained by `train` from its folder (weights loaded with weights_only=True)."""
    out_dir = Path(out_dir)
    info = json.loads((out_dir / "pids.json").read_text())
    model = trm.build(info["model"], len(info["pids"]), "none")
    model.load_state_dict(trm.load_state_dict(out_dir / "model.pt"))
    return model.to(resolve_device(device)).eval(), tuple(info["input_size"])
