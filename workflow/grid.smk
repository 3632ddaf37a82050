"""The paper's grid on a workstation or a cluster: one job per detection, anonymization, training and
evaluation unit (see `reidlib.grid` and `config/paper.yaml`).

    snakemake -s workflow/grid.smk --configfile config/paper.yaml --cores 8            # one machine
    snakemake -s workflow/grid.smk --configfile config/paper.yaml \
        --workflow-profile workflow/profiles/slurm                                      # SLURM

Every job runs `python -m reidlib STAGE --dataset D --technique T ...` in its own process. Outputs
are files, never folders, so a failed training job keeps its per-epoch checkpoint and its rerun
resumes from it; finished jobs never rerun. Training and evaluation jobs ask for one GPU.
"""
import sys
from pathlib import Path

import yaml

from reidlib import config as rconfig
from reidlib import grid, runfiles

configfile: "config/paper.yaml"

UNITS = grid.units(config)  # a missing dataset root stops here, named
BASE = rconfig.from_dict(config)
RUN = str(BASE.run_path)
BIN = Path(sys.executable).parent
MAIN = BASE.anonymization.technique
PARAMS = f"{RUN}/params/grid.yaml"
_text = yaml.safe_dump({"config_file": "", "settings": config}, sort_keys=True)
if not Path(PARAMS).is_file() or Path(PARAMS).read_text() != _text:
    Path(PARAMS).parent.mkdir(parents=True, exist_ok=True)
    Path(PARAMS).write_text(_text)

DATASETS = sorted({u.dataset for u in UNITS})
TECHNIQUES = sorted({u.technique for u in UNITS})
ALL_MODELS = sorted({m for u in UNITS for m in u.models})
BY_UNIT = {(u.dataset, u.technique): u for u in UNITS}
TRAINING = {u.dataset: rconfig.trainings(u.config) for u in UNITS if u.technique == MAIN}


EVAL_FILES = [str(runfiles.model_results_path(u.config, m)) for u in UNITS for m in u.models]
RECALL_FILES = [f"{RUN}/{d}/recall/recall.json" for d in DATASETS]
LIB = [f"reidlib/{m}.py" for m in ("config", "grid", "runfiles", "pipeline", "__main__")]


def reidlib(stage, log, **options):
    """The shell command of one stage."""
    extra = " ".join(f"--{k} {v}" for k, v in options.items())
    return (f"{BIN}/python -m reidlib {stage} --params {PARAMS} {extra} > {log} 2>&1 "
            f"|| (tail -n 40 {log}; exit 1)")


wildcard_constraints:
    dataset="|".join(DATASETS),
    technique="|".join(TECHNIQUES),
    model="|".join(ALL_MODELS),


rule all:
    input:
        f"{RUN}/results.csv",
        f"{RUN}/statistics.json",
        RECALL_FILES,


rule records:
    input:
        LIB,
        "reidlib/datasets.py",
    output:
        f"{RUN}/{{dataset}}/data/records.csv",
    log:
        f"{RUN}/logs/{{dataset}}/records.log",
    resources:
        mem_mb=8000,
        runtime=60,
    run:
        shell(reidlib("records", log[0], dataset=wildcards.dataset, technique=MAIN))


rule detect:
    input:
        rules.records.output,
        "reidlib/detection.py",
    output:
        f"{RUN}/{{dataset}}/detections/detections.csv",
    log:
        f"{RUN}/logs/{{dataset}}/detect.log",
    threads: 8
    resources:
        mem_mb=16000,
        runtime=240,
    run:
        shell(reidlib("detect", log[0], dataset=wildcards.dataset, technique=MAIN))


rule recall:
    input:
        rules.detect.output,
        "reidlib/recall.py",
    output:
        f"{RUN}/{{dataset}}/recall/recall.json",
    log:
        f"{RUN}/logs/{{dataset}}/recall.log",
    resources:
        mem_mb=8000,
        runtime=30,
    run:
        shell(reidlib("recall", log[0], dataset=wildcards.dataset, technique=MAIN))


rule anonymize:
    input:
        rules.detect.output,
        "reidlib/anonymize.py",
    output:
        f"{RUN}/{{dataset}}/anon/{{technique}}/{{dataset}}/manifest.json",
    log:
        f"{RUN}/logs/{{dataset}}/anonymize_{{technique}}.log",
    threads: 8
    resources:
        mem_mb=16000,
        runtime=240,
    run:
        shell(reidlib("anonymize", log[0], dataset=wildcards.dataset, technique=wildcards.technique))


rule train_orig:
    """One model trained on one original dataset."""
    input:
        rules.records.output,
        "reidlib/training.py",
        "reidlib/bot.py",
        "reidlib/torchreid_models.py",
    output:
        f"{RUN}/{{dataset}}/models/orig/{{model}}/model.pt",
    log:
        f"{RUN}/logs/{{dataset}}/train_orig_{{model}}.log",
    threads: 8
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=lambda w: 1440 if w.model in ("bot", "mudeep") else 720,
    run:
        shell(reidlib("train", log[0], dataset=wildcards.dataset, technique=MAIN, variant="orig",
                      model=wildcards.model))


rule train_anon:
    """One model trained on one anonymized copy."""
    input:
        rules.anonymize.output,
        "reidlib/training.py",
        "reidlib/bot.py",
        "reidlib/torchreid_models.py",
    output:
        f"{RUN}/{{dataset}}/models/anon-{{technique}}/{{model}}/model.pt",
    log:
        f"{RUN}/logs/{{dataset}}/train_anon_{{technique}}_{{model}}.log",
    threads: 8
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=lambda w: 1440 if w.model in ("bot", "mudeep") else 720,
    run:
        shell(reidlib("train", log[0], dataset=wildcards.dataset, technique=wildcards.technique,
                      variant="anon", model=wildcards.model))


rule evaluate:
    """One model under the three protocols, for one technique."""
    input:
        f"{RUN}/{{dataset}}/models/orig/{{model}}/model.pt",
        f"{RUN}/{{dataset}}/models/anon-{{technique}}/{{model}}/model.pt",
        "reidlib/evaluation.py",
    output:
        f"{RUN}/{{dataset}}/evaluation/{{technique}}/{{model}}.csv",
    log:
        f"{RUN}/logs/{{dataset}}/evaluate_{{technique}}_{{model}}.log",
    threads: 8
    resources:
        gpu=1,
        mem_mb=32000,
        runtime=120,
    run:
        shell(reidlib("evaluate_model", log[0], dataset=wildcards.dataset, technique=wildcards.technique,
                      model=wildcards.model))


rule collect:
    """Every unit's results in one table, and the paired tests of the paper over it."""
    input:
        EVAL_FILES,
        "reidlib/statistics.py",
    output:
        f"{RUN}/results.csv",
        f"{RUN}/statistics.json",
    log:
        f"{RUN}/logs/collect.log",
    resources:
        mem_mb=4000,
        runtime=10,
    run:
        shell(reidlib("collect", log[0]))
