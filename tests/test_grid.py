"""The paper's grid (config/paper.yaml, workflow/grid.smk) against fixture dataset trees, dry-run only."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from dataset_trees import airport_tree, cuhk03_tree, duke_tree, market_tree, viper_tree

from reidlib.core import config
from reidlib.pipeline import grid

PROJECT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
TREES = {"market1501": market_tree, "dukemtmcreid": duke_tree, "cuhk03": cuhk03_tree, "viper": viper_tree,
         "airport": airport_tree}
# 5 datasets x 6 models x (orig + blur), plus BoT on Market1501 under zero, blank, inpaint, pixelate;
# every training and evaluation once per seed (config/paper.yaml: training.seeds [0, 1, 2])
SIX = ("pcb_p6", "mlfn", "hacnn", "resnet50mid", "mudeep", "bot")
SEEDS = 3
EXPECTED = {"records": 5, "detect": 5, "recall": 5, "anonymize": 9, "train_orig": 30 * SEEDS,
            "train_anon": 34 * SEEDS, "evaluate": 34 * SEEDS, "collect": 1, "all": 1}


@pytest.fixture(scope="module")
def paper_config(tmp_path_factory) -> Path:
    """config/paper.yaml with its dataset roots pointed at fixture trees."""
    tmp = tmp_path_factory.mktemp("grid")
    data = yaml.safe_load((PROJECT / "config" / "paper.yaml").read_text())
    for name, make in TREES.items():
        data["grid"]["datasets"][name]["root"] = str(make(tmp / "data" / name))
    data["run_dir"] = str(tmp / "run")
    path = tmp / "paper.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_units_of_the_paper_grid(paper_config):
    units = grid.units(config.load_data(paper_config))
    assert len(units) == 9
    assert {(u.dataset, u.technique) for u in units if u.technique != "blur"} == \
        {("market1501", t) for t in ("zero", "blank", "inpaint", "pixelate")}
    blur = [u for u in units if u.technique == "blur"]
    assert len(blur) == 5 and all(sorted(u.models) == sorted(SIX) for u in blur)
    assert all(u.models == ("bot",) for u in units if u.technique != "blur")
    bot = config.trainings(blur[0].config)["bot"]
    assert (bot.epochs, bot.triplet_margin, bot.sampler) == (120, 0.3, "identity")
    assert all(u.config.run_path.name == u.dataset for u in units)


def test_missing_root_is_named(paper_config, tmp_path):
    data = config.load_data(paper_config)
    data["grid"]["datasets"]["viper"]["root"] = str(tmp_path / "no_viper")
    with pytest.raises(config.ConfigError, match="no_viper"):
        grid.units(data)


def dry_run(paper_config: Path, *extra: str) -> str:
    res = subprocess.run([str(BIN / "snakemake"), "-s", "workflow/grid.smk", "--configfile", str(paper_config),
                          "-n", "--cores", "8", *extra], cwd=PROJECT, capture_output=True, text=True,
                         env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(paper_config.parent),
                              "PYTHONPATH": str(PROJECT)})
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    return res.stdout + res.stderr


def job_counts(out: str) -> dict[str, int]:
    table = out[out.index("Job stats:"):]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", table, re.M)}


def test_paper_grid_dry_run_job_counts_and_gpus(paper_config):
    out = dry_run(paper_config)
    counts = job_counts(out)
    assert {k: counts.get(k) for k in EXPECTED} == EXPECTED
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", out)
    gpu_rules = [b for b in blocks if re.match(r"(local)?rule (train_orig|train_anon|evaluate):", b)]
    assert len(gpu_rules) == (30 + 34 + 34) * SEEDS
    assert all(re.search(r"resources:.*\bgpu=1\b", b) for b in gpu_rules)
    assert not any("gpu=1" in b for b in blocks if re.match(r"(local)?rule (detect|anonymize|records):", b))


def test_slurm_profile_dry_run(paper_config):
    pytest.importorskip("snakemake_executor_plugin_slurm")
    out = dry_run(paper_config, "--workflow-profile", "workflow/profiles/slurm")
    assert job_counts(out)["train_anon"] == 34 * SEEDS


def test_collect_gathers_every_evaluation_job(paper_config):
    import pandas as pd

    from reidlib.core import runfiles
    from reidlib.pipeline import rundir

    data = config.load_data(paper_config)
    units = grid.units(data)
    rng = np.random.default_rng(0)
    for u in units:
        for m in u.models:
            for seed in config.trainings(u.config)[m].seeds:
                path = runfiles.model_results_path(u.config, m, seed)
                path.parent.mkdir(parents=True, exist_ok=True)
                pd.DataFrame({"dataset": u.dataset, "model": m, "seed": seed,
                              "protocol": ["orig_orig", "orig_anon", "anon_anon"], "technique": u.technique,
                              "mAP": rng.uniform(40, 60, 3), "rank1": rng.uniform(50, 70, 3)}).to_csv(path, index=False)
    out = rundir.collect_grid(units, config.from_dict(data))
    table = pd.read_csv(out)
    assert len(table) == 34 * SEEDS * 3 and set(table[table.technique != "blur"].model) == {"bot"}
    assert sorted(table.seed.unique()) == [0, 1, 2]
    stats = json.loads(out.with_name("statistics.json").read_text())
    assert {r["dataset"] for r in stats["run"]} == {"all", *TREES}


def test_a_grid_reads_only_its_own_config_file(tmp_path):
    """A one-dataset grid (a plain config, the generated set) is not merged into config/paper.yaml."""
    cfg = tmp_path / "one.yaml"
    cfg.write_text(yaml.safe_dump({"run_dir": str(tmp_path / "run"), "training": {"model": "hacnn", "seeds": [0]},
                                   "models": {},
                                   "grid": {"techniques": ["blur", "zero"], "technique_models": ["hacnn"]}}))
    counts = job_counts(dry_run(cfg))
    assert {k: counts.get(k) for k in ("records", "anonymize", "train_orig", "train_anon", "evaluate")} == \
        {"records": 1, "anonymize": 2, "train_orig": 1, "train_anon": 2, "evaluate": 2}
    assert "dukemtmcreid" not in (tmp_path / "run" / "params" / "grid.yaml").read_text()


def test_resources_follow_the_config_and_the_profile_overrides_them(paper_config, tmp_path):
    """Threads from num_workers / processes, memory from model and batch, a GPU only for device cuda;
    `--set-threads` / `--set-resources` (what a profile's set-threads / set-resources become) win."""
    from reidlib.pipeline import resources

    data = config.load_data(paper_config)
    data["anonymization"]["processes"] = 1
    data["models"]["mlfn"] = {"profile": "paper", "device": "cpu", "num_workers": 2}
    cfg = grid.units(data)[0].config
    assert resources.stage(cfg, "anonymize").threads == 1 and resources.stage(cfg, "detect").threads == 1
    pcb, mlfn = resources.train(cfg, "pcb_p6"), resources.train(cfg, "mlfn")
    assert (pcb.threads, pcb.gpu, mlfn.threads, mlfn.gpu) == (8, 1, 2, 0)
    assert mlfn.mem_mb > resources.train(config.from_dict({"training": {"model": "mlfn", "batch_size": 8}}), "mlfn").mem_mb
    path = tmp_path / "paper.yaml"
    path.write_text(yaml.safe_dump(data))
    out = dry_run(path, "--set-threads", "train_orig=3", "--set-resources", "train_orig:mem_mb=1234")
    blocks = re.split(r"\n(?=(?:local)?rule \w+:)", out)

    def jobs(rule, model):
        return [b for b in blocks if b.startswith(f"rule {rule}:") and f"model={model}" in b]

    assert all("threads: 3" in b and "mem_mb=1234" in b for b in jobs("train_orig", "pcb_p6"))
    anon_mlfn = jobs("train_anon", "mlfn")
    assert anon_mlfn and all(f"mem_mb={mlfn.mem_mb}," in b and "gpu=0" in b for b in anon_mlfn)
    assert all("threads: 2" in b for b in anon_mlfn)


def test_shell_commands_quote_every_path(tmp_path):
    """A run_dir with spaces, a quote and `$(...)` is a path, never shell syntax (one real job, no SLURM)."""
    from test_pipeline import project_copy

    root = project_copy(tmp_path / "project")
    run_dir = "runs/it's a b $(touch PWNED); echo"
    (root / "one.yaml").write_text(yaml.safe_dump({"run_dir": run_dir, "dataset": {"train_ids": 4, "test_ids": 4,
                                                                                 "cameras": 2, "images_per_camera": 2}}))
    target = str(root / run_dir / "synthetic" / "data" / "records.csv")
    res = subprocess.run([str(BIN / "snakemake"), "-s", "workflow/grid.smk", "--configfile", "one.yaml", "--cores", "1",
                          target], cwd=root, capture_output=True, text=True,
                         env={"PATH": f"{BIN}:/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(root)})
    assert res.returncode == 0, (res.stdout + res.stderr)[-3000:]
    assert Path(target).is_file() and (root / run_dir / "logs" / "synthetic" / "records.log").is_file()
    assert not list(root.rglob("PWNED")) and not (Path.home() / "PWNED").exists()


def test_jobs_no_node_can_hold_are_named():
    """sinfo's nodes parsed (gres gpu[:type]:N), and a job bigger than every node of its partition named."""
    from reidlib.pipeline import resources

    nodes = resources.slurm_nodes("cpu*|16|64000|(null)\ngpu|32|256000+|gpu:a100:4(S:0-1)\ngpu|8|32000|gpu:1\n")
    assert [(n["partition"], n["cpus"], n["mem_mb"], n["gpus"]) for n in nodes] == \
        [("cpu", 16, 64000, 0), ("gpu", 32, 256000, 4), ("gpu", 8, 32000, 1)]
    jobs = {"detect": ("", 8, 4000, 0), "train": ("gpu", 8, 100000, 1), "huge": ("gpu", 64, 1000, 1),
            "gpu_on_cpu": ("cpu", 1, 1000, 1), "lost": ("nowhere", 1, 1, 0)}
    problems = resources.unfit(jobs, nodes)
    assert [p.split()[0] for p in problems] == ["gpu_on_cpu", "huge", "lost:"]
    assert "has 32 CPUs, 256000 MB, 4 GPUs" in problems[1]


def test_an_unknown_grid_unit_is_named_with_what_was_asked():
    data = {"run_dir": "/tmp/grid-config-only", "grid": {"techniques": ["zero"], "technique_datasets": ["synthetic"],
                                                       "technique_models": ["hacnn"]}}
    with pytest.raises(config.ConfigError, match="no grid unit any dataset/pixelate; the grid has synthetic/blur, synthetic/zero"):
        grid.unit(grid.as_grid(data), technique="pixelate")


def test_the_command_line_addresses_a_one_dataset_grids_technique_units():
    from reidlib import __main__ as cli
    data = {"run_dir": "/tmp/grid-config-only", "grid": {"techniques": ["zero"], "technique_models": ["hacnn"]}}
    assert cli.unit_config(data, None, "zero").anonymization.technique == "zero"
    assert cli.unit_config(data, None, None).run_dir == cli.unit_config(data, None, None).run_dir
    assert cli.unit_config(data, None, None).anonymization.technique == "blur"
