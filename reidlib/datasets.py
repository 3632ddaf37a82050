"""Dataset readers: image records (path, pid, camid, split) from a dataset root on disk.

Market-1501 layout (paper Section III-C): `bounding_box_train/`, `query/`, `bounding_box_test/`,
names `<pid>_c<cam>s<seq>_<frame>_<box>.jpg`; pid -1 (distractors) is kept in the gallery and
pid 0 ("junk") is dropped, as torchreid does.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

MARKET_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
MARKET_NAME = re.compile(r"^(-?\d+)_c(\d)s(\d)_(\d+)_(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)
RECORD_COLUMNS = ["image", "pid", "camid", "split", "dataset"]


class DatasetError(ValueError):
    """A dataset tree that does not have the expected layout or naming."""


@dataclass(frozen=True)
class Record:
    """One image: path relative to the dataset root, identity, camera (1-based) and split."""

    image: str
    pid: int
    camid: int
    split: str
    dataset: str


def read_market(root: str | Path, dataset: str = "market1501") -> pd.DataFrame:
    """Records of a Market-1501-layout tree as a DataFrame with columns RECORD_COLUMNS."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"dataset folder not found: {root}")
    rows = []
    for split, sub in MARKET_DIRS.items():
        d = root / sub
        if not d.is_dir():
            raise DatasetError(f"expected sub-folder missing: {d}")
        for p in sorted(d.iterdir()):
            if p.name.startswith(".") or p.suffix.lower() not in (".jpg", ".jpeg", ".png"):
                continue
            m = MARKET_NAME.match(p.name)
            if not m:
                raise DatasetError(f"file name does not follow Market-1501 naming "
                                   f"'<pid>_c<cam>s<seq>_<frame>_<box>.jpg': {p}")
            pid, cam = int(m.group(1)), int(m.group(2))
            if pid == 0 or (pid == -1 and split != "gallery"):
                continue
            rows.append(Record(f"{sub}/{p.name}", pid, cam, split, dataset))
    df = pd.DataFrame([r.__dict__ for r in rows], columns=RECORD_COLUMNS)
    if df.empty or not (df.split == "train").any():
        raise DatasetError(f"no training images found under {root / MARKET_DIRS['train']}")
    q, g = df[df.split == "query"], df[df.split == "gallery"]
    missing = sorted(set(q.pid) - set(g.pid))
    if missing:
        raise DatasetError(f"query ids absent from the gallery in {root}: {missing[:10]}")
    return df


def summary(records: pd.DataFrame) -> pd.DataFrame:
    """Identities, cameras and images per split (the columns of the paper's Table II)."""
    out = records.groupby("split").agg(identities=("pid", "nunique"), cameras=("camid", "nunique"),
                                       images=("image", "size"))
    return out.reindex(["train", "query", "gallery"]).reset_index()
