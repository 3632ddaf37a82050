"""Under Snakemake, a training job killed mid-run keeps its checkpoint, and its rerun resumes from it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import torch
from test_pipeline import project_copy

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent
EPOCHS = 4
CONFIG = """run_dir: runs/resume
dataset: {train_ids: 4, test_ids: 4, cameras: 2, images_per_camera: 2}
training: {model: hacnn, epochs: %d, batch_size: 8, seeds: [0]}
models: {}
anonymization: {audit: false, processes: 1}
grid: {techniques: []}
""" % EPOCHS


def start(root: Path, snakefile: str, target: Path) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "snakemake"), "-s", snakefile, "--cores", "1", str(target),
                             "--configfile", "config/resume.yaml"], cwd=root, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(root)})


@pytest.mark.parametrize("snakefile, model_dir", [
    ("workflow/Snakefile", "runs/resume/models/orig/hacnn/seed0"),
    ("workflow/grid.smk", "runs/resume/synthetic/models/orig/hacnn/seed0"),
])
def test_a_killed_training_job_resumes_from_its_checkpoint(tmp_path, snakefile, model_dir):
    root = project_copy(tmp_path / "project")
    (root / "config" / "resume.yaml").write_text(CONFIG)
    out = root / model_dir
    target = out / "model.pt"
    proc = start(root, snakefile, target)
    ckpt, seen = out / "checkpoint.pt", 0
    deadline = time.time() + 600
    while time.time() < deadline and proc.poll() is None and seen < 2:
        if ckpt.is_file():
            try:
                seen = torch.load(ckpt, weights_only=True)["epoch"]
            except (RuntimeError, EOFError, OSError):
                pass
        time.sleep(0.05)
    assert proc.poll() is None and seen >= 2, f"no epoch-2 checkpoint seen: {proc.communicate()[0][-3000:]}"
    os.killpg(proc.pid, signal.SIGKILL)  # Snakemake and the job with it
    proc.wait()
    time.sleep(1)
    state = torch.load(ckpt, weights_only=True)
    done, log_then = int(state["epoch"]), json.loads(state["log"])
    assert 2 <= done < EPOCHS and not target.exists()
    unlock = subprocess.run([str(BIN / "snakemake"), "-s", snakefile, "--cores", "1", "--unlock", "--configfile",
                             "config/resume.yaml"], cwd=root, capture_output=True, text=True,
                            env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(root)})
    assert unlock.returncode == 0, unlock.stdout[-2000:] + unlock.stderr[-2000:]
    rerun = start(root, snakefile, target)
    text = rerun.communicate(timeout=900)[0]
    assert rerun.returncode == 0, text[-3000:]
    log = pd.read_csv(out / "train_log.csv")
    assert list(log.epoch) == list(range(1, EPOCHS + 1))
    # epochs 1..done come from the checkpoint, unchanged: the rerun started at epoch done + 1
    assert list(log.seconds[:done]) == pytest.approx([e["seconds"] for e in log_then], rel=0, abs=1e-9)
