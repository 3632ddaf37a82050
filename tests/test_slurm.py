"""The grid on a real single-node SLURM cluster with accounting (.ci/slurm.sh), through workflow/profiles/slurm.

A tiny grid (the generated set, blur and zero, HACNN) runs in a copy of the project: every job must
be a SLURM job in `sacct`, asking what `reidlib.resources` derives (or the profile overrides), the
combined table must exist, a training job cancelled with `scancel` must resume from its checkpoint,
and a second run must submit nothing. Needs root and Debian's packages (installed when missing);
skips, saying why, where it cannot have them.
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_pipeline import project_copy

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
SCRIPT = PROJECT / ".ci" / "slurm.sh"
EPOCHS = 5  # long enough to cancel the training mid-run, after its first checkpoint
GRID = {
    "run_dir": "runs/slurm",
    "seed": 0,
    "dataset": {"name": "synthetic", "train_ids": 4, "test_ids": 4, "cameras": 2, "images_per_camera": 2},
    "anonymization": {"processes": 1, "audit": False},
    "training": {"model": "hacnn", "epochs": EPOCHS, "batch_size": 8, "device": "cpu", "num_workers": 0, "seeds": [0]},
    "models": {},
    "grid": {"techniques": ["blur", "zero"], "technique_models": ["hacnn"]},
}
RECALL_MB = 1500  # the test profile's override of the recall job's memory

pytestmark = pytest.mark.integration


def sh(*args: str, env: dict | None = None, check: bool = True) -> str:
    res = subprocess.run(args, capture_output=True, text=True, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed:\n{res.stdout[-2000:]}{res.stderr[-2000:]}")
    return res.stdout


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A running single-node cluster (munge, MariaDB, slurmdbd, slurmctld, slurmd): the environment to reach it."""
    pytest.importorskip("snakemake_executor_plugin_slurm", reason="the cluster extra is not installed")
    if os.geteuid() != 0:
        pytest.skip("not root: a SLURM cluster (slurmd) cannot be started")
    res = subprocess.run([str(SCRIPT), "install"], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"SLURM could not be installed: {(res.stderr or res.stdout).strip()[-500:]}")
    state = tmp_path_factory.mktemp("slurm")
    try:
        res = subprocess.run([str(SCRIPT), "start", str(state)], capture_output=True, text=True, timeout=180)
        if "already exists" in res.stderr or "another cluster" in res.stderr:
            pytest.skip(res.stderr.strip())
        assert res.returncode == 0, f"the cluster did not start:\n{res.stderr[-3000:]}"
        env = {"PATH": f"{BIN}:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(state), "PYTHONPATH": "",
               "SLURM_CONF": str(state / "slurm.conf")}
        yield env
    finally:
        subprocess.run([str(SCRIPT), "stop", str(state)], capture_output=True, text=True, timeout=120)


def sacct(env: dict) -> pd.DataFrame:
    """Every job the cluster accounted for: id, comment (rule and wildcards), state, CPUs, memory asked."""
    out = sh("sacct", "-X", "-n", "--parsable2", "-S", "2000-01-01T00:00", "-E", "now",
             "--format=JobIDRaw,Comment,State,AllocCPUS,ReqMem", env=env)
    rows = [line.split("|") for line in out.splitlines() if line.strip()]
    df = pd.DataFrame(rows, columns=["id", "comment", "state", "cpus", "mem"])
    df["rule"] = df.comment.str.extract(r"^rule_(\w+?)_wildcards", expand=False).fillna(
        df.comment.str.extract(r"^rule_(\w+)$", expand=False))
    return df


def snakemake(root: Path, env: dict) -> subprocess.Popen:
    return subprocess.Popen([str(BIN / "snakemake"), "-s", "workflow/grid.smk", "--configfile", "grid.yaml",
                             "--workflow-profile", "profile"], cwd=root, env={**env, "PYTHONPATH": str(root)},
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def cancel_first_checkpointed_training(root: Path, env: dict, proc: subprocess.Popen) -> dict:
    """Wait for train_orig's first checkpoint, scancel its job, and return the log it had saved by then."""
    import torch

    ckpt = root / "runs" / "slurm" / "synthetic" / "models" / "orig" / "hacnn" / "seed0" / "checkpoint.pt"
    while proc.poll() is None:
        if ckpt.is_file():
            jobs = [line.split("|") for line in sh("squeue", "-h", "-o", "%i|%k", env=env).splitlines()]
            job = next((j for j, c in jobs if c.startswith("rule_train_orig_")), None)
            assert job is not None, "train_orig has a checkpoint but no running SLURM job"
            sh("scancel", job, env=env)
            while sh("squeue", "-h", "-j", job, env=env, check=False).strip():
                time.sleep(0.2)
            log = json.loads(torch.load(ckpt, map_location="cpu", weights_only=True)["log"])
            assert not (ckpt.parent / "model.pt").is_file(), "training finished before its cancel: raise EPOCHS"
            return {"job": job, "log": log}
        time.sleep(0.2)
    raise AssertionError("the workflow ended before train_orig wrote a checkpoint:\n" + proc.stdout.read()[-3000:])


@pytest.fixture(scope="module")
def grid_run(cluster, tmp_path_factory) -> dict:
    """The tiny grid run once through the filled-in SLURM profile, one training cancelled mid-run."""
    root = project_copy(tmp_path_factory.mktemp("project"))
    (root / "grid.yaml").write_text(yaml.safe_dump(GRID))
    profile = yaml.safe_load((root / "workflow" / "profiles" / "slurm" / "config.yaml").read_text())
    profile["default-resources"] = {"slurm_account": "ci", "slurm_partition": "debug"}
    profile["set-resources"] = {r: {"slurm_partition": "debug"} for r in profile["set-resources"]}
    profile["set-resources"]["recall"] = {"mem_mb": RECALL_MB}
    profile["slurm-init-seconds-before-status-checks"] = 1  # a tiny grid: check often
    (root / "profile").mkdir()
    (root / "profile" / "config.yaml").write_text(yaml.safe_dump(profile))
    t0 = time.perf_counter()
    proc = snakemake(root, cluster)
    cancelled = cancel_first_checkpointed_training(root, cluster, proc)
    out, _ = proc.communicate(timeout=900)
    assert proc.returncode == 0, out[-4000:]
    wall = time.perf_counter() - t0
    print(f"\ntiny grid under SLURM: {wall:.0f} s wall, one training cancelled and resumed")
    return {"root": root, "env": cluster, "out": out, "cancelled": cancelled, "wall": wall}


def test_every_job_ran_under_slurm_and_the_table_exists(grid_run):
    out, jobs = grid_run["out"], sacct(grid_run["env"])
    table = out[out.index("Job stats:"):]
    stats = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}
    planned = {k: v for k, v in stats.items() if k not in ("all", "total")}
    assert planned == {"records": 1, "detect": 1, "recall": 1, "anonymize": 2, "train_orig": 1, "train_anon": 2,
                       "evaluate": 2, "collect": 1}
    done = jobs[jobs.state == "COMPLETED"]
    assert Counter(done.rule) == Counter(planned), jobs.to_string()
    assert set(jobs.state.str.split().str[0]) == {"COMPLETED", "CANCELLED"}, jobs.to_string()
    assert len(re.findall(r"has been submitted with SLURM jobid", out)) == len(jobs)
    res = pd.read_csv(grid_run["root"] / "runs" / "slurm" / "results.csv")
    assert len(res) == 2 * 3 and set(res.technique) == {"blur", "zero"} and set(res.model) == {"HACNN"}
    assert (grid_run["root"] / "runs" / "slurm" / "statistics.json").is_file()


def test_jobs_ask_what_the_config_and_profile_say(grid_run):
    """CPUs and memory in sacct are reidlib.resources' for this config, the profile's override where given."""
    from reidlib.core import config
    from reidlib.pipeline import grid, resources

    cfg = grid.units(grid.as_grid(GRID), check_roots=False)[0].config
    jobs = sacct(grid_run["env"]).set_index("rule")
    want = {"train_orig": resources.train(cfg, "hacnn"), "train_anon": resources.train(cfg, "hacnn"),
            "evaluate": resources.evaluate(cfg, "hacnn"), "anonymize": resources.stage(cfg, "anonymize"),
            "detect": resources.stage(cfg, "detect"), "collect": resources.stage(cfg, "collect")}
    for rule, req in want.items():
        for _, job in jobs.loc[[rule]].iterrows():
            assert (int(job.cpus), job.mem) == (req.threads, f"{req.mem_mb}M"), rule
    assert jobs.loc["recall", "mem"] == f"{RECALL_MB}M"
    assert config.trainings(cfg)["hacnn"].device == "cpu" and resources.train(cfg, "hacnn").gpu == 0


def test_cancelled_training_resumed_from_its_checkpoint(grid_run):
    jobs = sacct(grid_run["env"])
    cancelled = grid_run["cancelled"]
    assert jobs.set_index("id").loc[cancelled["job"], "state"].startswith("CANCELLED")
    assert list(jobs[jobs.rule == "train_orig"].state.str.split().str[0]) == ["CANCELLED", "COMPLETED"]
    saved = cancelled["log"]
    assert 1 <= len(saved) < EPOCHS
    log = pd.read_csv(grid_run["root"] / "runs" / "slurm" / "synthetic" / "models" / "orig" / "hacnn" / "seed0" /
                      "train_log.csv")
    assert list(log.epoch) == list(range(1, EPOCHS + 1))
    # the epochs before the cancel are the checkpoint's own rows (their timings too): resumed, not retrained
    pd.testing.assert_frame_equal(log.head(len(saved)), pd.DataFrame(saved)[list(log.columns)], check_dtype=False)


def test_second_run_submits_nothing(grid_run):
    before = len(sacct(grid_run["env"]))
    proc = snakemake(grid_run["root"], grid_run["env"])
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert "Nothing to be done" in out and "submitted with SLURM" not in out
    assert len(sacct(grid_run["env"])) == before


def test_a_job_no_node_can_hold_is_refused_before_submission(grid_run):
    """A request bigger than every node (here from the command line, as a profile's set-resources) stops the
    run at the start, naming the job, instead of leaving it PENDING forever."""
    before = len(sacct(grid_run["env"]))
    proc = subprocess.run([str(BIN / "snakemake"), "-s", "workflow/grid.smk", "--configfile", "grid.yaml",
                           "--workflow-profile", "profile", "--forcerun", "collect",
                           "--set-resources", "collect:mem_mb=99999999"], cwd=grid_run["root"],
                          env={**grid_run["env"], "PYTHONPATH": str(grid_run["root"])},
                          capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "collect asks 1 CPUs, 99999999 MB" in out, out[-3000:]
    assert len(sacct(grid_run["env"])) == before
