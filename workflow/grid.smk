"""The paper's grid on a workstation or a cluster: one job per detection, anonymization, training and
evaluation unit (see `reidlib.grid` and `config/paper.yaml`).

    snakemake -s workflow/grid.smk --cores 8                                            # config/paper.yaml
    snakemake -s workflow/grid.smk --configfile my_grid.yaml \
        --workflow-profile workflow/profiles/slurm                                      # SLURM

The grid is the `--configfile` given, and only that file (`--config` overrides still apply); without
one it is config/paper.yaml. A config without `grid.datasets` is a one-dataset grid of its own dataset.
Every job runs `python -m reidlib STAGE --dataset D --technique T ...` in its own process, every path
and value shell-quoted. Outputs are files, never folders, so a failed training job keeps its
per-epoch checkpoint and its rerun resumes from it; finished jobs never rerun. Each job's threads,
memory, GPU and wall time come from the config (`reidlib.resources`); a profile's `set-threads` and
`set-resources` override them.
"""
from pathlib import Path

import yaml

from reidlib.core import config as rconfig
from reidlib.pipeline import grid, resources, table
from reidlib.core import runfiles


include: "common.smk"


try:  # snakemake-executor-plugin-slurm (2.8) takes sacct's "CANCELLED by <uid>" for a running job and would
    # wait for a job cancelled with scancel forever; cut each state to its first word so it fails (and reruns)
    import snakemake_executor_plugin_slurm as _slurm

    if not getattr(_slurm.query_job_status, "first_word", False):
        _query = _slurm.query_job_status

        async def _states_first_word(command, logger):
            states, seconds = await _query(command, logger)
            return ({j: s.split()[0] if s else s for j, s in states.items()} if states is not None else None), seconds

        _states_first_word.first_word = True
        _slurm.query_job_status = _states_first_word
except (ImportError, AttributeError):
    pass

if not workflow.config_settings.configfiles:  # no --configfile: the paper's grid, under any --config
    config.update(rconfig.merge(rconfig.load_data(Path(workflow.basedir).parent / "config" / "paper.yaml"),
                                dict(config)))
config.update(grid.as_grid(dict(config)))

UNITS = grid.units(config)  # a missing dataset root stops here, named
BASE = rconfig.from_dict(config)
RUN = str(BASE.run_path)
MAIN = BASE.anonymization.technique
PARAMS = str(runfiles.params_at(RUN, "grid"))
_text = yaml.safe_dump({"config_file": "", "settings": config}, sort_keys=True)
if not Path(PARAMS).is_file() or Path(PARAMS).read_text() != _text:
    Path(PARAMS).parent.mkdir(parents=True, exist_ok=True)
    Path(PARAMS).write_text(_text)

DATASETS = sorted({u.dataset for u in UNITS})
TECHNIQUES = sorted({u.technique for u in UNITS})
ALL_MODELS = sorted({m for u in UNITS for m in u.models})
BY_UNIT = {(u.dataset, u.technique): u for u in UNITS}
TRAINING = {u.dataset: rconfig.trainings(u.config) for u in UNITS if u.technique == MAIN}


EVAL_FILES = [str(runfiles.model_results_path(u.config, m, s)) for u in UNITS for m in u.models
              for s in rconfig.trainings(u.config)[m].seeds]
RECALL_FILES = [str(runfiles.recall_at(runfiles.unit_root(RUN, d))) for d in DATASETS]
UNIT = runfiles.unit_root(RUN, "{dataset}")  # a job's unit run directory, as a pattern


def unit_log(name):
    """The log of a job of one unit."""
    return str(runfiles.log_at(RUN, f"{{dataset}}/{name}"))


def reidlib(stage, log, **options):
    """The shell command of one stage of this grid."""
    return reidlib_stage(stage, PARAMS, log, **options)


def unit_cfg(w, technique=None):
    """The config of the unit a job belongs to."""
    return BY_UNIT[(w.dataset, technique or getattr(w, "technique", MAIN))].config


def stage_req(name):
    """A per-dataset stage's request, as a function of the job's wildcards."""
    return lambda w: resources.stage(unit_cfg(w, MAIN) if hasattr(w, "dataset") else BASE, name)


def train_req(technique=None):
    return lambda w: resources.train(unit_cfg(w, technique), w.model)


def eval_req(w):
    return resources.evaluate(unit_cfg(w), w.model)


wildcard_constraints:
    dataset="|".join(DATASETS),
    technique="|".join(TECHNIQUES),
    model="|".join(ALL_MODELS),
    seed=r"\d+",


rule all:
    input:
        str(runfiles.grid_results_path(BASE)),
        str(runfiles.grid_statistics_path(BASE)),
        RECALL_FILES,
        LIB,


rule records:
    input:
        LIB,
    output:
        str(runfiles.records_at(UNIT)),
    params:
        conf=lambda w: table.conf(unit_cfg(w, MAIN), "records"),
    log:
        unit_log("records"),
    threads: lambda w: stage_req("records")(w).threads
    resources:
        mem_mb=lambda w: stage_req("records")(w).mem_mb,
        runtime=lambda w: stage_req("records")(w).runtime,
    run:
        shell(reidlib("records", log[0], dataset=wildcards.dataset, technique=MAIN))


rule detect:
    input:
        rules.records.output,
        LIB,
    output:
        str(runfiles.detections_at(UNIT)),
    params:
        conf=lambda w: table.conf(unit_cfg(w, MAIN), "detect"),
    log:
        unit_log("detect"),
    threads: lambda w: stage_req("detect")(w).threads
    resources:
        mem_mb=lambda w: stage_req("detect")(w).mem_mb,
        runtime=lambda w: stage_req("detect")(w).runtime,
    run:
        shell(reidlib("detect", log[0], dataset=wildcards.dataset, technique=MAIN))


rule recall:
    input:
        rules.detect.output,
        LIB,
    output:
        str(runfiles.recall_at(UNIT)),
    params:
        conf=lambda w: table.conf(unit_cfg(w, MAIN), "recall"),
    log:
        unit_log("recall"),
    threads: lambda w: stage_req("recall")(w).threads
    resources:
        mem_mb=lambda w: stage_req("recall")(w).mem_mb,
        runtime=lambda w: stage_req("recall")(w).runtime,
    run:
        shell(reidlib("recall", log[0], dataset=wildcards.dataset, technique=MAIN))


rule anonymize:
    input:
        rules.detect.output,
        LIB,
    output:
        str(runfiles.manifest_at(UNIT, "{technique}", "{dataset}")),
    params:
        conf=lambda w: table.conf(unit_cfg(w), "anonymize"),
    log:
        unit_log("anonymize_{technique}"),
    threads: lambda w: stage_req("anonymize")(w).threads
    resources:
        mem_mb=lambda w: stage_req("anonymize")(w).mem_mb,
        runtime=lambda w: stage_req("anonymize")(w).runtime,
    run:
        shell(reidlib("anonymize", log[0], dataset=wildcards.dataset, technique=wildcards.technique))


rule train_orig:
    """One model trained on one original dataset."""
    input:
        rules.records.output,
        LIB,
    output:
        str(runfiles.model_file_at(UNIT, runfiles.trained_on("orig", MAIN), "{model}", "{seed}")),
    params:
        conf=lambda w: table.conf(unit_cfg(w, MAIN), "train", w.model, "orig"),
    log:
        unit_log("train_orig_{model}_seed{seed}"),
    threads: lambda w: train_req(MAIN)(w).threads
    resources:
        mem_mb=lambda w: train_req(MAIN)(w).mem_mb,
        runtime=lambda w: train_req(MAIN)(w).runtime,
        gpu=lambda w: train_req(MAIN)(w).gpu,
    run:
        shell(reidlib("train", log[0], dataset=wildcards.dataset, technique=MAIN, variant="orig",
                      model=wildcards.model, seed=wildcards.seed))


rule train_anon:
    """One model trained on one anonymized copy."""
    input:
        rules.anonymize.output,
        LIB,
    output:
        str(runfiles.model_file_at(UNIT, runfiles.trained_on("anon", "{technique}"), "{model}", "{seed}")),
    params:
        conf=lambda w: table.conf(unit_cfg(w), "train", w.model, "anon"),
    log:
        unit_log("train_anon_{technique}_{model}_seed{seed}"),
    threads: lambda w: train_req()(w).threads
    resources:
        mem_mb=lambda w: train_req()(w).mem_mb,
        runtime=lambda w: train_req()(w).runtime,
        gpu=lambda w: train_req()(w).gpu,
    run:
        shell(reidlib("train", log[0], dataset=wildcards.dataset, technique=wildcards.technique,
                      variant="anon", model=wildcards.model, seed=wildcards.seed))


rule evaluate:
    """One training seed of one model under the three protocols, for one technique."""
    input:
        str(runfiles.model_file_at(UNIT, runfiles.trained_on("orig", MAIN), "{model}", "{seed}")),
        str(runfiles.model_file_at(UNIT, runfiles.trained_on("anon", "{technique}"), "{model}", "{seed}")),
        LIB,
    output:
        str(runfiles.results_at(UNIT, "{technique}", "{model}", "{seed}")),
    params:
        conf=lambda w: table.conf(unit_cfg(w), "evaluate_model", w.model),
    log:
        unit_log("evaluate_{technique}_{model}_seed{seed}"),
    threads: lambda w: eval_req(w).threads
    resources:
        mem_mb=lambda w: eval_req(w).mem_mb,
        runtime=lambda w: eval_req(w).runtime,
        gpu=lambda w: eval_req(w).gpu,
    run:
        shell(reidlib("evaluate_model", log[0], dataset=wildcards.dataset, technique=wildcards.technique,
                      model=wildcards.model, seed=wildcards.seed))


rule collect:
    """Every unit's results in one table, and the paired tests of the paper over it."""
    input:
        EVAL_FILES,
        LIB,
    output:
        str(runfiles.grid_results_path(BASE)),
        str(runfiles.grid_statistics_path(BASE)),
    log:
        str(runfiles.log_at(RUN, "collect")),
    threads: lambda w: stage_req("collect")(w).threads
    resources:
        mem_mb=lambda w: stage_req("collect")(w).mem_mb,
        runtime=lambda w: stage_req("collect")(w).runtime,
    run:
        shell(reidlib("collect", log[0]))


onstart:
    # on SLURM, a job that no node of its partition can hold would stay PENDING without a word: refuse it here
    import shutil
    from snakemake.exceptions import WorkflowError
    import subprocess

    plugin = getattr(workflow, "executor_plugin", None)
    if getattr(plugin, "name", "") == "slurm" and shutil.which("sinfo"):
        nodes = resources.slurm_nodes(subprocess.run(["sinfo", "-h", "-N", "-o", "%P|%c|%m|%G"],
                                                     capture_output=True, text=True).stdout)
        jobs = {}
        for job in workflow.dag.needrun_jobs():
            if job.is_local:
                continue
            r = job.resources
            wc = ",".join(f"{k}={v}" for k, v in job.wildcards_dict.items())
            jobs[f"{job.rule.name}({wc})" if wc else job.rule.name] = (
                str(r.get("slurm_partition") or ""), int(job.threads), int(r.get("mem_mb") or 0), int(r.get("gpu") or 0))
        problems = resources.unfit(jobs, nodes) if nodes else []
        if problems:
            raise WorkflowError("jobs no node can run (lower them in the config or the profile's "
                                "set-threads / set-resources):\n  " + "\n  ".join(problems))
