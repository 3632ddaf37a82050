"""What each job of the paper's grid (`workflow/grid.smk`) asks a scheduler for, derived from its config.

Threads follow `anonymization.processes` (detection, anonymization) and each model's
`training.num_workers` (training, evaluation); memory follows the model, its input size and batch
size; a GPU is asked for only when the model's `device` names CUDA (`cpu` and `auto` ask for none).
These are estimates: a workflow profile's `set-threads` / `set-resources` override them per rule.
`unfit` names the jobs no node of a SLURM partition can hold (grid.smk checks before submitting).
Pure configuration: no torch.
"""
from __future__ import annotations

from dataclasses import dataclass

from ..core import registry
from ..core.config import Config, TrainingConfig, trainings

BASE_MB = 2000  # Python, torch and the model itself
WORKER_MB = 500  # each data-loader worker or anonymization process
CUDA_HOST_MB = 4000  # host side of a GPU job: CUDA context, pinned batches
RERANK_MB = 8000  # k-reciprocal re-ranking's (query + gallery)^2 matrices at Market-1501 size


@dataclass(frozen=True)
class Request:
    """One job's request: CPUs, memory (MB), GPUs and wall time (minutes)."""

    threads: int
    mem_mb: int
    gpu: int
    runtime: int


def _round(mb: float) -> int:
    return int(-(-mb // 500) * 500)  # up to a multiple of 500 MB


def uses_gpu(t: TrainingConfig) -> int:
    """1 when the model's `device` names CUDA, else 0 (`auto` asks for none: say `cuda` to get one)."""
    return int(str(t.device).startswith("cuda"))


def _pixels(t: TrainingConfig) -> float:
    h, w = registry.model(t.model).fixed_input or t.image_size
    return h * w / (256 * 128)


def _mb_per_image(t: TrainingConfig) -> float:
    """Training memory per image at the run's input size (the model's registry entry, per 256x128 image)."""
    return registry.model(t.model).train_mb_per_image * _pixels(t)


def train(cfg: Config, model: str) -> Request:
    """Training one model (Section IV-A): activations in host memory unless it trains on a GPU."""
    t = trainings(cfg)[model]
    workers = max(0, t.num_workers)
    gpu = uses_gpu(t)
    act = 0 if gpu else t.batch_size * _mb_per_image(t)
    mem = BASE_MB + WORKER_MB * workers + (CUDA_HOST_MB if gpu else act)
    long = registry.model(model).long_training or t.epochs > 100
    return Request(max(1, workers), _round(mem), gpu, 1440 if long else 720)


def evaluate(cfg: Config, model: str) -> Request:
    """Testing one model under the three protocols (Section IV-B); re-ranked models need the distance matrices."""
    t = trainings(cfg)[model]
    gpu = uses_gpu(t)
    act = 0 if gpu else cfg.evaluation.batch_size * _mb_per_image(t) / 4
    mem = BASE_MB + (CUDA_HOST_MB if gpu else act) + (RERANK_MB if model in cfg.evaluation.rerank_models else 0)
    return Request(max(1, t.num_workers), _round(mem), gpu, 120)


def stage(cfg: Config, name: str) -> Request:
    """A per-dataset stage: records, detect, recall, anonymize or collect."""
    p = max(1, cfg.anonymization.processes)
    table = {
        "records": Request(1, 2000, 0, 60),
        "detect": Request(p, _round(BASE_MB + 2000), 0, 240),  # detections kept in parts of 2,000 images
        "recall": Request(1, 2000, 0, 30),
        "anonymize": Request(p, _round(BASE_MB + WORKER_MB * p), 0, 240),
        "collect": Request(1, 2000, 0, 10),
    }
    if name not in table:
        raise KeyError(f"no resource rule for stage '{name}'; known: {', '.join(table)}")
    return table[name]


def slurm_nodes(sinfo: str) -> list[dict]:
    """Nodes from `sinfo -h -N -o '%P|%c|%m|%G'`: partition, CPUs, memory (MB), GPUs (from gres gpu[:type]:N)."""
    out = []
    for line in sinfo.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4:
            continue
        part, cpus, mem, gres = parts
        gpus = sum(int(g.split("(")[0].split(":")[-1]) for g in gres.split(",")
                   if g.startswith("gpu") and g.split("(")[0].split(":")[-1].isdigit())
        out.append({"partition": part.rstrip("*"), "default": part.endswith("*"), "cpus": int(cpus),
                    "mem_mb": int(mem.rstrip("+")), "gpus": gpus})
    return out


def unfit(jobs: dict[str, tuple[str, int, int, int]], nodes: list[dict]) -> list[str]:
    """The jobs (name -> partition, threads, mem_mb, gpus; partition '' = the default) that no node of
    their partition can hold: SLURM would keep them PENDING forever."""
    problems = []
    for name, (part, threads, mem, gpus) in sorted(jobs.items()):
        pool = [n for n in nodes if (n["partition"] == part if part else n["default"])]
        if not pool:
            problems.append(f"{name}: partition '{part or '(default)'}' has no nodes")
        elif not any(threads <= n["cpus"] and mem <= n["mem_mb"] and gpus <= n["gpus"] for n in pool):
            big = max(pool, key=lambda n: (n["gpus"], n["cpus"], n["mem_mb"]))
            problems.append(f"{name} asks {threads} CPUs, {mem} MB, {gpus} GPUs; the largest node of "
                            f"'{part or '(default)'}' has {big['cpus']} CPUs, {big['mem_mb']} MB, {big['gpus']} GPUs")
    return problems
