"""The library's shape: one registry entry adds a model, a dataset format or a technique; stages never
import each other; the configuration (and so Snakemake's process) loads without torch or OpenCV."""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from reidlib import config, pipeline, registry, runfiles

PROJECT = Path(__file__).resolve().parent.parent
LIB = PROJECT / "reidlib"
STAGES = {"synthetic", "datasets", "detection", "recall", "anonymize", "training", "evaluation", "statistics"}


def imports_of(path: Path) -> set[str]:
    """The reidlib modules a module imports anywhere in it (module level or inside functions)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                out.add(node.module.split(".")[0])
            else:
                out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reidlib"):
            parts = node.module.split(".")
            out.update([parts[1]] if len(parts) > 1 else [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            out.update(a.name.split(".")[1] for a in node.names if a.name.startswith("reidlib."))
    modules = {p.stem for p in LIB.glob("*.py")}
    return out & modules - {path.stem}


def graph() -> dict[str, set[str]]:
    return {p.stem: imports_of(p) for p in LIB.glob("*.py") if p.stem != "__init__"}


def test_no_stage_imports_another_stage():
    for module, deps in graph().items():
        if module in STAGES:
            assert not deps & STAGES, f"stage {module} imports stage(s) {sorted(deps & STAGES)}"


def test_the_import_graph_has_no_cycle():
    g, state = graph(), {}

    def visit(m: str, trail: list[str]) -> None:
        if state.get(m) == "done":
            return
        assert state.get(m) != "open", "import cycle: " + " -> ".join(trail + [m])
        state[m] = "open"
        for d in sorted(g.get(m, ())):
            visit(d, trail + [m])
        state[m] = "done"

    for m in sorted(g):
        visit(m, [])


def test_the_configuration_loads_without_torch_or_opencv():
    code = ("import sys; from reidlib import config, grid, runfiles; "
            "c = config.load('config/default.yaml'); runfiles.anon_root(c); runfiles.model_dir(c, 'anon'); "
            "print(sorted(m for m in ('torch', 'cv2', 'torchvision', 'onnxruntime') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=PROJECT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


# --------------------------------------------------------------------------- one entry each


class ToyNet(nn.Module):
    """A tiny globally pooled CNN: logits in training, the pooled feature in eval."""

    def __init__(self, num_classes: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(8, num_classes)

    def forward(self, x):
        f = self.body(x)
        return self.head(f) if self.training else f


def invert(img: np.ndarray, box, level: int = 255) -> np.ndarray:
    x0, y0, x1, y1 = box
    out = img.copy()
    out[y0:y1, x0:x1] = level - out[y0:y1, x0:x1]
    return out


def read_list(root: Path, section, derived: Path) -> pd.DataFrame:
    """A toy format: `people.csv` (image, person, camera, split) beside the images."""
    t = pd.read_csv(root / "people.csv")
    return pd.DataFrame({"image": t.image, "pid": t.person, "camid": t.camera, "split": t.split,
                         "dataset": section.name})


@pytest.fixture
def toys(monkeypatch):
    monkeypatch.setitem(registry.MODELS, "toy", registry.ModelSpec("toy", "Toy", ToyNet, (32, 16), None))
    monkeypatch.setitem(registry.DATASETS, "peoplelist", registry.DatasetSpec("peoplelist", "People", read_list))
    monkeypatch.setitem(registry.TECHNIQUES, "invert", registry.TechniqueSpec("invert", invert, {"level": "pixelate_size"}))


def test_a_toy_model_dataset_and_technique_run_through_the_stages(tmp_path, toys):
    gen_cfg = config.from_dict({"run_dir": str(tmp_path / "gen"), "dataset": {"train_ids": 4, "test_ids": 4,
                                                                              "cameras": 2}})
    gen = pipeline.stage_generate(gen_cfg)
    root = tmp_path / "people"
    (root / "img").mkdir(parents=True)
    recs = pipeline.records(gen_cfg)
    rows = []
    for k, r in enumerate(recs.itertuples()):
        shutil.copy2(gen / r.image, root / "img" / f"{k:04d}.jpg")
        rows.append((f"img/{k:04d}.jpg", r.pid, r.camid, r.split))
    pd.DataFrame(rows, columns=["image", "person", "camera", "split"]).to_csv(root / "people.csv", index=False)
    cfg = config.from_dict({"run_dir": str(tmp_path / "run"), "dataset": {"name": "peoplelist", "root": str(root)},
                            "anonymization": {"technique": "invert", "pixelate_size": 200, "processes": 1},
                            "training": {"model": "toy", "epochs": 1, "batch_size": 8}, "models": {}})
    out = pd.read_csv(pipeline.stage_evaluate_model(cfg, progress=False))
    assert list(out.protocol) == ["orig_orig", "orig_anon", "anon_anon"] and set(out.model) == {"Toy"}
    assert out.mAP.between(0, 100).all()
    manifest = json.loads((runfiles.anon_root(cfg) / "manifest.json").read_text())
    assert manifest["technique"] == "invert" and manifest["params"]["level"] == 200
    assert set(manifest["files"]) == {r[0] for r in rows} | {"people.csv"}
    detected = pd.read_csv(runfiles.detections_path(cfg)).image.unique()
    assert len(detected) and all((root / i).read_bytes() != (runfiles.anon_root(cfg) / i).read_bytes()
                                 for i in detected)
    model = torch.load(runfiles.model_dir(cfg, "anon", "toy") / "model.pt", weights_only=True)
    assert set(model) == set(ToyNet(2).state_dict())


def test_unknown_names_are_checked_against_the_registries(toys):
    with pytest.raises(config.ConfigError, match="toy"):  # the message lists the registered names
        config.from_dict({"training": {"model": "nosuchnet"}})
    config.from_dict({"training": {"model": "toy"}, "anonymization": {"technique": "invert"}})
    with pytest.raises(config.ConfigError, match="invert"):
        config.from_dict({"anonymization": {"technique": "smudge"}})
