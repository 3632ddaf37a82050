"""The one place that talks to torchreid (PyPI `torchreid==0.2.5`, namespace `torchreid.reid`).

Models of the paper (Section IV-A: PCB, MLFN, HACNN, Resnet50Mid, MuDeep) are built through
torchreid's factory, with its quirks handled here: HACNN's unconditional `.cuda()`, fixed input
sizes, `torch.load` without `weights_only`, and ImageNet weights that it would download.
"""
from __future__ import annotations

import contextlib
import io
import types
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from . import checkpoints

with warnings.catch_warnings():  # torchreid warns that its Cython evaluator is absent
    warnings.simplefilter("ignore")
    from torchreid.reid import metrics as _metrics
    from torchreid.reid import models as _models
    from torchreid.reid.data.transforms import Random2DTranslation  # noqa: F401  (re-exported)

# torchreid's models call deprecated torch functions (F.upsample, grid_sample defaults) on every step
warnings.filterwarnings("ignore", category=UserWarning, module=r"torchreid\.")
warnings.filterwarnings("ignore", message=r".*(upsample|align_corners).*", category=UserWarning)



def available_models() -> list[str]:
    """Names the factory accepts (torchreid's model zoo)."""
    return sorted(_models.__model_factory.keys())  # type: ignore[attr-defined]


def _hacnn_theta_on_input_device(model: nn.Module) -> None:
    """Replace HACNN's `transform_theta`, which calls `.cuda()` whenever use_gpu, by a device-aware one."""

    def transform_theta(self, theta_i, region_idx):
        theta = theta_i.new_zeros(theta_i.size(0), 2, 3)
        theta[:, :, :2] = self.scale_factors[region_idx].to(theta_i)
        theta[:, :, -1] = theta_i
        return theta

    model.use_gpu = False
    model.transform_theta = types.MethodType(transform_theta, model)


def load_state_dict(path: str | Path, what: str = "state dict") -> dict[str, torch.Tensor]:
    """Load a checkpoint's state dict safely (`weights_only=True`; `reidlib.models.checkpoints`)."""
    return checkpoints.state_dict(path, what)


def build(name: str, num_classes: int, pretrained: str = "none") -> nn.Module:
    """A torchreid model by name; `pretrained` is 'none' or a local ImageNet weights file.

    Never downloads: torchreid is always called with pretrained=False, and weights are copied in
    from the file where names and shapes match.
    """
    if name not in available_models():
        raise ValueError(f"unknown torchreid model name '{name}'; torchreid has {', '.join(available_models())}")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = _models.build_model(name, num_classes=num_classes, loss="softmax",
                                    pretrained=False, use_gpu=False)
    if name == "hacnn":
        _hacnn_theta_on_input_device(model)
    if pretrained and pretrained != "none":
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(
                f"ImageNet weights for '{name}' not found at {path}. Put the backbone's ImageNet "
                f"state dict there (e.g. torchvision's resnet50-*.pth from the torch cache "
                f"~/.cache/torch/hub/checkpoints/), or set training.pretrained: none")
        load_matching(model, load_state_dict(path, f"{name} ImageNet"), f"{path}")
    return model


def load_matching(model: nn.Module, src: dict[str, torch.Tensor], source: str = "the ImageNet weights") -> int:
    """Copy the tensors of `src` whose names and shapes match the model's; returns how many."""
    own = model.state_dict()
    usable = {k: v for k, v in src.items() if k in own and own[k].shape == v.shape}
    if not usable:
        raise ValueError(f"no parameter of {source} matches model {type(model).__name__}")
    own.update(usable)
    model.load_state_dict(own)
    return len(usable)


def logits_loss(outputs, targets: torch.Tensor, criterion: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """Cross-entropy averaged over a model's logit heads (PCB's parts, HACNN's global/local)."""
    heads = list(outputs) if isinstance(outputs, (tuple, list)) else [outputs]
    loss = sum(criterion(h, targets) for h in heads) / len(heads)
    return loss, heads[0]


def distance_matrix(qf: torch.Tensor, gf: torch.Tensor, metric: str = "euclidean") -> np.ndarray:
    """Query-gallery distances via torchreid ('euclidean' or 'cosine')."""
    return _metrics.compute_distance_matrix(qf, gf, metric).numpy()


def rank_metrics(distmat: np.ndarray, q_pids, g_pids, q_camids, g_camids) -> tuple[np.ndarray, float]:
    """CMC curve and mAP with the Market-1501 rule (same id and camera excluded), via torchreid."""
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    # torchreid's Python evaluator stacks per-query CMC curves cut at max_rank; a query whose
    # same-camera matches are removed has a shorter curve, so cap max_rank at the shortest one.
    removed = ((g_pids[None, :] == q_pids[:, None]) & (g_camids[None, :] == q_camids[:, None])).sum(1)
    max_rank = int(min(50, distmat.shape[1] - removed.max()))
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        cmc, mean_ap = _metrics.evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids,
                                              max_rank=max_rank, use_cython=False)
    return cmc, float(mean_ap)


def image_dataset(image_root: str | Path, records, transform=None, mode: str = "train"):
    """Records (see `reidlib.datasets`) as a torchreid `ImageDataset`, built from local files only.

    Train ids are relabelled 0..N-1 and cameras made 0-based, as torchreid's own readers do; the
    object never downloads (it is built from lists, not through a dataset name).
    """
    from torchreid.reid.data.datasets.dataset import ImageDataset

    root = Path(image_root)
    train = records[records.split == "train"]
    label = {p: i for i, p in enumerate(sorted(train.pid.unique()))}

    def items(df, relabel: bool) -> list[tuple[str, int, int]]:
        return [(str(root / r.image), label[r.pid] if relabel else int(r.pid), int(r.camid) - 1)
                for r in df.itertuples()]

    class Records(ImageDataset):
        """A dataset read by reidlib."""

    return Records(items(train, True), items(records[records.split == "query"], False),
                   items(records[records.split == "gallery"], False), transform=transform, mode=mode,
                   verbose=False)


def triplet_loss(margin: float) -> nn.Module:
    """torchreid's batch-hard triplet loss (hardest positive and negative per anchor)."""
    from torchreid.reid.losses import TripletLoss

    return TripletLoss(margin=margin)


def identity_sampler(labels: list[int], batch_size: int, instances: int):
    """torchreid's RandomIdentitySampler over training labels: batch_size // instances ids x instances images."""
    from torchreid.reid.data.sampler import RandomIdentitySampler

    if len(set(labels)) < batch_size // instances:
        raise ValueError(f"the identity sampler needs at least {batch_size // instances} training ids "
                         f"(batch_size / instances); the data has {len(set(labels))}")
    return RandomIdentitySampler([(None, p, 0, 0) for p in labels], batch_size, instances)
