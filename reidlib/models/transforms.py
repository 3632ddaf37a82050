"""Re-ID crops as tensors: the dataset of a records table, and the paper's train and test transforms
(Section IV-A), shared by training (stage 4) and evaluation (stage 5).
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd
from PIL import Image
from torch.utils.data import Dataset
from torchvision import transforms as T

from . import torchreid_models as trm

MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]  # ImageNet's, as torchreid and BoT normalise


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


def train_transform(size: tuple[int, int], augment: str = "translate", erasing: float = 0.0) -> T.Compose:
    """The paper's training augmentation, then normalisation (and random erasing, when p > 0).

    translate: torchreid's Random2DTranslation (enlarge by 1/8 with p = 0.5, random crop) and flip;
    pad_crop: BoT's resize, flip, 10-pixel pad and random crop. Erasing fills with 0 after
    normalisation, i.e. with the ImageNet mean, as BoT does.
    """
    h, w = size
    if augment == "translate":
        steps = [trm.Random2DTranslation(h, w, p=0.5), T.RandomHorizontalFlip()]
    elif augment == "pad_crop":
        steps = [T.Resize((h, w)), T.RandomHorizontalFlip(), T.Pad(10), T.RandomCrop((h, w))]
    else:
        raise ValueError(f"unknown training.augment '{augment}'; choose translate or pad_crop")
    steps += [T.ToTensor(), T.Normalize(MEAN, STD)]
    if erasing > 0:
        steps.append(T.RandomErasing(p=erasing, scale=(0.02, 0.4), ratio=(0.3, 3.33), value=0))
    return T.Compose(steps)


def test_transform(size: tuple[int, int]) -> T.Compose:
    """Resize and normalise."""
    return T.Compose([T.Resize(tuple(size)), T.ToTensor(), T.Normalize(MEAN, STD)])
