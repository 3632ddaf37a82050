"""The library's shape: folders in layers, each importing only from the layers below it; stages never
import each other; one registry entry adds a model, a dataset format or a technique; the configuration
(and so Snakemake's process) loads without torch or OpenCV."""
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

from reidlib.core import config, registry, runfiles
from reidlib.pipeline import rundir

PROJECT = Path(__file__).resolve().parent.parent
LIB = PROJECT / "reidlib"
# the rooms of the library, bottom first: a folder imports only from its own and the folders before it
LAYERS = ("core", "book", "models", "stages", "pipeline", "analyses", "pages")


def module_name(path: Path) -> str:
    """'core.config' for reidlib/core/config.py, '__main__' for reidlib/__main__.py."""
    return ".".join(path.relative_to(LIB).with_suffix("").parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in LIB.rglob("*.py") if p.stem != "__init__"}


def imports_of(path: Path) -> set[str]:
    """The reidlib modules ('folder.module') a module imports anywhere in it (module level or inside functions)."""
    known = set(modules())
    here = module_name(path).split(".")[:-1]  # the importing module's package, relative to reidlib
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[:len(here) - (node.level - 1)] if node.level > 1 else here
                parts = base + (node.module.split(".") if node.module else [])
            elif (node.module or "").startswith("reidlib"):
                parts = node.module.split(".")[1:]
            else:
                continue
            prefix = ".".join(parts)
            if prefix in known:
                out.add(prefix)
            for a in node.names:
                name = f"{prefix}.{a.name}" if prefix else a.name
                if name in known:
                    out.add(name)
        elif isinstance(node, ast.Import):
            out.update(".".join(a.name.split(".")[1:3]) for a in node.names if a.name.startswith("reidlib."))
    return (out & known) - {module_name(path)}


def graph() -> dict[str, set[str]]:
    return {m: imports_of(p) for m, p in modules().items()}


def test_every_module_sits_in_a_layer():
    loose = [m for m in modules() if m != "__main__" and m.split(".")[0] not in LAYERS]
    assert not loose, f"modules outside the layers {LAYERS}: {loose}"


def test_a_folder_imports_only_from_the_folders_below_it():
    bad = []
    for module, deps in graph().items():
        if module == "__main__":
            continue
        mine = LAYERS.index(module.split(".")[0])
        bad += [f"{module} imports {d}" for d in deps if LAYERS.index(d.split(".")[0]) > mine]
    assert not bad, bad


def test_the_import_walker_sees_upward_imports(tmp_path):
    """The layer test can fail: a core module importing an analysis is seen."""
    fake = LIB / "core" / "config.py"
    deps = imports_of(fake)
    assert "core.registry" in deps and "core.paths" in deps
    src = tmp_path / "x.py"
    src.write_text("from ..analyses import findings\nfrom reidlib.stages.anonymize import clip_box\n")
    original = module_name
    try:
        globals()["module_name"] = lambda p: "core.x" if p == src else original(p)
        assert {"analyses.findings", "stages.anonymize"} <= imports_of(src)
    finally:
        globals()["module_name"] = original


def test_no_stage_imports_another_stage():
    stages = {m for m in modules() if m.startswith("stages.")}
    for module, deps in graph().items():
        if module in stages:
            assert not deps & stages, f"stage {module} imports stage(s) {sorted(deps & stages)}"


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
    code = ("import sys; from reidlib.core import config, runfiles; from reidlib.pipeline import grid, table; "
            "table.conf(config.Config(), 'attribution'); table.toc(); "
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
    monkeypatch.setitem(registry.DATASETS, "peoplelist", registry.DatasetSpec("peoplelist", "People", read_list,
                                                                                   list_files=("people.csv",)))
    monkeypatch.setitem(registry.TECHNIQUES, "invert", registry.TechniqueSpec("invert", invert, {"level": "pixelate_size"}))


def test_a_toy_model_dataset_and_technique_run_through_the_stages(tmp_path, toys):
    gen_cfg = config.from_dict({"run_dir": str(tmp_path / "gen"), "dataset": {"train_ids": 4, "test_ids": 4,
                                                                              "cameras": 2}})
    gen = rundir.stage_generate(gen_cfg)
    root = tmp_path / "people"
    (root / "img").mkdir(parents=True)
    recs = rundir.records(gen_cfg)
    rows = []
    for k, r in enumerate(recs.itertuples()):
        shutil.copy2(gen / r.image, root / "img" / f"{k:04d}.jpg")
        rows.append((f"img/{k:04d}.jpg", r.pid, r.camid, r.split))
    pd.DataFrame(rows, columns=["image", "person", "camera", "split"]).to_csv(root / "people.csv", index=False)
    cfg = config.from_dict({"run_dir": str(tmp_path / "run"), "dataset": {"name": "peoplelist", "root": str(root)},
                            "anonymization": {"technique": "invert", "pixelate_size": 200, "processes": 1},
                            "training": {"model": "toy", "epochs": 1, "batch_size": 8}, "models": {}})
    out = pd.read_csv(rundir.stage_evaluate_model(cfg, progress=False))
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
