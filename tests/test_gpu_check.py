"""The GPU check script's CPU fallback runs to completion at its tiny size and prints its whole table."""
import os
import subprocess
import sys
from pathlib import Path

from reidlib.core import registry

ROOT = Path(__file__).resolve().parents[1]
SIX = ["pcb_p6", "mlfn", "hacnn", "resnet50mid", "mudeep", "bot"]


def test_gpu_check_cpu_fallback_prints_the_summary(tmp_path):
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": str(ROOT), "TMPDIR": str(tmp_path)}
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "gpu_check.py"), "--tiny"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    table = out[out.index("\nsummary ("):].splitlines()
    assert table[2].split() == ["check", "setting", "result", "against"]
    rows = table[4:]
    trained = [r for r in rows if r.startswith("train img/s")]
    assert [r.split()[2] for r in trained] == SIX  # every model, fp32 and bf16 + channels-last
    for r in trained:  # channels-last wherever the registry allows it (MuDeep's and PCB's .view refuse it)
        assert "fp32" in r and "bf16" in r and ("bf16+CL" in r) == registry.model(r.split()[2]).channels_last, r
    bot = [r for r in rows if r.startswith("BoT paper run")]
    assert len(bot) == 3 and "img/s" in bot[1] and "loss per epoch" in bot[2]
    for check in ("rank metrics", "re-ranking"):  # the device path against the CPU path, within 1e-6
        (line,) = [r for r in rows if r.startswith(check)]
        assert "(ok)" in line, line
