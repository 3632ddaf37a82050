"""Model files read back safely: `torch.load(weights_only=True)` only, and one clear line when a file is not
the checkpoint it should be (a crafted pickle, a script, another network's weights), naming the file."""
from __future__ import annotations

import pickle
import warnings
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn


class CheckpointError(ValueError):
    """A file that is not the checkpoint a stage expects."""


def read(path: str | Path, what: str, map_location: str | torch.device = "cpu") -> Any:
    """The object a checkpoint file holds (tensors and plain containers only), or a CheckpointError
    `<path> is not a <what> checkpoint (<why>)`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} checkpoint not found: {path}")
    try:
        with warnings.catch_warnings():  # a foreign pickle protocol is refused below if it holds code
            warnings.simplefilter("ignore", UserWarning)
            return torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, zipfile.BadZipFile, EOFError, RuntimeError, ValueError, AttributeError,
            TypeError, KeyError, IndexError, UnicodeDecodeError, OSError) as e:
        text = str(e)
        if "invalid load key" in text or "Unsupported operand" in text or isinstance(
                e, (zipfile.BadZipFile, EOFError, UnicodeDecodeError)):
            why = "not a PyTorch file"
        elif "Weights only load failed" in text or isinstance(e, pickle.UnpicklingError):
            why = "it holds objects other than tensors, which are never unpickled"
        else:
            why = (text.strip().splitlines() or [type(e).__name__])[0][:160]
        raise CheckpointError(f"{path} is not a {what} checkpoint ({why})") from None


def state_dict(path: str | Path, what: str) -> dict[str, torch.Tensor]:
    """A state dict from a checkpoint file (a `state_dict` or `model` key unwrapped, `module.` prefixes dropped)."""
    obj = read(path, what)
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path} is not a {what} checkpoint (it holds a {type(obj).__name__}, not a state dict "
                              f"of tensors)")
    return {str(k).removeprefix("module."): v for k, v in obj.items()}


def load_into(module: nn.Module, state: dict[str, torch.Tensor], path: str | Path, what: str) -> nn.Module:
    """`module.load_state_dict(state)`, with a mismatch told in one line: how many keys are missing, unexpected
    or of another shape, and a few of each (not the thousands torch lists)."""
    own = module.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [k for k in own if k in state and tuple(own[k].shape) != tuple(state[k].shape)]
    if missing or unexpected or shapes:
        parts = [f"{len(v)} {label} (e.g. {', '.join(v[:3])})" for label, v in
                 (("missing keys", missing), ("unexpected keys", unexpected), ("keys of another shape", shapes)) if v]
        raise CheckpointError(f"{path} is not a {what} checkpoint: {'; '.join(parts)}")
    module.load_state_dict(state)
    return module
