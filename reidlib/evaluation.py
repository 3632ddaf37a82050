"""Protocol evaluation (paper Section IV-B): mAP and Rank-1 under the paper's three protocols.

orig_orig: trained and tested on original; orig_anon: trained on original, tested on the
anonymized copy; anon_anon: trained and tested on the anonymized copy.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch.utils.data import DataLoader

from . import torchreid_models as trm
from .training import ReidImages, load_trained, test_transform

PROTOCOLS = {"orig_orig": ("orig", "orig"), "orig_anon": ("orig", "anon"), "anon_anon": ("anon", "anon")}
RESULT_COLUMNS = ["dataset", "model", "protocol", "train_variant", "test_variant", "mAP", "rank1", "rank5"]


@torch.no_grad()
def extract(model: torch.nn.Module, root: str | Path, records: pd.DataFrame, size: tuple[int, int],
            batch_size: int = 64) -> torch.Tensor:
    """Features of `records` (model in eval mode), as a CPU float tensor."""
    device = next(model.parameters()).device
    loader = DataLoader(ReidImages(root, records, test_transform(size)), batch_size=batch_size)
    model.eval()
    return torch.cat([model(x.to(device)).float().cpu() for x, _ in loader])


def evaluate_model(model: torch.nn.Module, size: tuple[int, int], root: str | Path, records: pd.DataFrame,
                   metric: str = "euclidean", batch_size: int = 64) -> dict[str, float]:
    """mAP, Rank-1 and Rank-5 (percent) of a model on the query/gallery split of one dataset copy."""
    q = records[records.split == "query"]
    g = records[records.split == "gallery"]
    dist = trm.distance_matrix(extract(model, root, q, size, batch_size),
                               extract(model, root, g, size, batch_size), metric)
    cmc, mean_ap = trm.rank_metrics(dist, q.pid, g.pid, q.camid, g.camid)
    return {"mAP": 100 * mean_ap, "rank1": 100 * float(cmc[0]),
            "rank5": 100 * float(cmc[min(4, len(cmc) - 1)])}


def evaluate_protocols(model_dirs: dict[str, Path], roots: dict[str, Path], records: pd.DataFrame,
                       dataset: str, metric: str = "euclidean", batch_size: int = 64,
                       device: str = "cpu") -> pd.DataFrame:
    """One row per protocol; `model_dirs` and `roots` are keyed by variant ('orig', 'anon')."""
    rows, cache = [], {}
    for protocol, (train_v, test_v) in PROTOCOLS.items():
        if train_v not in cache:
            cache[train_v] = load_trained(model_dirs[train_v], device)
        model, size = cache[train_v]
        arch = json.loads((Path(model_dirs[train_v]) / "pids.json").read_text())["model"]
        name = trm.PAPER_MODELS.get(arch, arch)
        res = evaluate_model(model, size, roots[test_v], records, metric, batch_size)
        rows.append(dict(dataset=dataset, model=name, protocol=protocol, train_variant=train_v,
                         test_variant=test_v, **res))
    out = pd.DataFrame(rows, columns=RESULT_COLUMNS)
    out[["mAP", "rank1", "rank5"]] = out[["mAP", "rank1", "rank5"]].astype(float).round(4)
    return out


def random_ranking_map(records: pd.DataFrame, seed: int = 0, draws: int = 20) -> float:
    """Expected mAP (percent) of a random ranking on this split: the chance floor for the plots."""
    rng = np.random.default_rng(seed)
    q = records[records.split == "query"]
    g = records[records.split == "gallery"]
    vals = []
    for _ in range(draws):
        dist = rng.random((len(q), len(g)))
        vals.append(trm.rank_metrics(dist, q.pid, g.pid, q.camid, g.camid)[1])
    return 100 * float(np.mean(vals))
