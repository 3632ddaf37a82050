"""Run configuration: one nested dataclass per stage, loaded from YAML with strict key checking.

Every knob of every stage lives here with its default; `config/default.yaml` mirrors these
defaults, and an unknown key anywhere is an error that names it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any

import yaml


class ConfigError(ValueError):
    """A configuration key or value that the pipeline does not know."""


@dataclass
class DatasetConfig:
    """The generated default dataset (see `reidlib.synthetic`)."""

    name: str = "synthetic"
    root: str = ""  # a Market-1501-layout folder to use instead of generating (read only)
    train_ids: int = 24
    test_ids: int = 24
    cameras: int = 4
    images_per_camera: int = 2
    face_identity_share: float = 0.5  # share of identities whose clothing copies another's
    turned_away: float = 0.2  # share of images showing the back of the head (no face)
    face_size: tuple[int, int] = (8, 20)  # min/max face width in pixels
    jpeg_quality: int = 95


@dataclass
class DetectionConfig:
    """Stage 1: face detection (paper Section III-A)."""

    detector: str = "centerface"
    threshold: float = 0.3
    upscale: int = 2


@dataclass
class RecallConfig:
    """Stage 2: detector recall against ground truth (paper Section III-A)."""

    iou: float = 0.5
    confidence: float = 0.95


@dataclass
class AnonymizationConfig:
    """Stage 3: face anonymization (paper Sections III-B and IV-C)."""

    technique: str = "blur"
    blur_width_ratio: float = 0.125  # Gaussian sigma = ratio x face-box width
    pixelate_size: int = 6
    margin: int = 0
    processes: int = 2  # worker processes writing the anonymized copy
    audit: bool = True  # rerun the detector on all five techniques' output (residual faces)


@dataclass
class TrainingConfig:
    """Stage 4: model training (paper Section IV-A), CPU-sized by default."""

    model: str = "hacnn"
    epochs: int = 6
    batch_size: int = 16
    lr: float = 0.003
    weight_decay: float = 5e-4
    lr_decay: float = 0.1
    lr_step: int = 4
    pretrained: str = "none"
    device: str = "auto"
    num_workers: int = 0


@dataclass
class EvaluationConfig:
    """Stage 5: protocol evaluation (paper Section IV-B)."""

    batch_size: int = 64
    metric: str = "euclidean"  # or cosine
    flip: bool = False  # average each feature with that of the mirrored image


@dataclass
class StatisticsConfig:
    """Stage 6: paired one-sided t-tests (paper Section IV-B)."""

    alpha: float = 0.05


@dataclass
class Config:
    """The whole run: where outputs go, the seed, and one section per stage."""

    run_dir: str = "runs/default"
    seed: int = 0
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    detection: DetectionConfig = field(default_factory=DetectionConfig)
    recall: RecallConfig = field(default_factory=RecallConfig)
    anonymization: AnonymizationConfig = field(default_factory=AnonymizationConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    statistics: StatisticsConfig = field(default_factory=StatisticsConfig)

    @property
    def run_path(self) -> Path:
        """The run directory as an absolute path (relative ones are taken from the project root)."""
        p = Path(self.run_dir)
        return p if p.is_absolute() else project_root() / p


def project_root() -> Path:
    """The folder holding this project's `pyproject.toml`, found upward from the working directory."""
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "reidlib").is_dir():
            return d
    return here


def _build(cls: type, data: dict[str, Any], where: str) -> Any:
    """Instantiate dataclass `cls` from `data`, refusing unknown keys and coercing simple types."""
    if not isinstance(data, dict):
        raise ConfigError(f"config section '{where or 'top level'}' must be a mapping, got {data!r}")
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    if unknown:
        path = ", ".join(f"{where}.{k}" if where else k for k in unknown)
        raise ConfigError(f"unknown config key(s): {path}; known keys here: {', '.join(known)}")
    kwargs = {}
    for name, value in data.items():
        f = known[name]
        default = getattr(cls(), name)
        key = f"{where}.{name}" if where else name
        if is_dataclass(default):
            kwargs[name] = _build(type(default), value, key)
        elif isinstance(default, tuple):
            if not isinstance(value, (list, tuple)) or len(value) != len(default):
                raise ConfigError(f"config key {key} must be a list of {len(default)} values, got {value!r}")
            kwargs[name] = tuple(type(d)(v) for d, v in zip(default, value))
        elif isinstance(default, bool) or value is None:
            kwargs[name] = value
        elif isinstance(default, (int, float, str)):
            try:
                kwargs[name] = type(default)(value)
            except (TypeError, ValueError) as e:
                raise ConfigError(f"config key {key} must be {type(default).__name__}, got {value!r}") from e
        else:
            kwargs[name] = value
    return cls(**kwargs)


def merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursively merge mapping `over` into a copy of `base`."""
    out = dict(base)
    for k, v in (over or {}).items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def from_dict(data: dict[str, Any] | None = None) -> Config:
    """A validated Config from a (possibly partial) nested mapping."""
    return _build(Config, data or {}, "")


def load(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> Config:
    """Load a YAML config file (or defaults when None) and apply nested overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_absolute() and not p.exists():
            p = project_root() / p
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        data = yaml.safe_load(p.read_text()) or {}
    return from_dict(merge(data, overrides or {}))


def to_dict(cfg: Any) -> dict[str, Any]:
    """A plain nested dict (tuples as lists) of a config dataclass, for YAML and JSON."""

    def plain(v: Any) -> Any:
        if isinstance(v, tuple):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        return v

    return plain(dataclasses.asdict(cfg))
