"""Rank-metric speed and agreement on a random Market-1501-size problem, in one process.

3,368 queries x 19,732 gallery images, 6 cameras, 750 identities and 2,000 distractors (pid -1):
reidlib.evaluation.rank_metrics against torchreid's evaluate_rank (its Python path; its compiled
one too when importable). Prints both times, their ratio and the largest differences.

    python benchmarks/evaluation_benchmark.py [--queries 3368] [--gallery 19732]
"""
from __future__ import annotations

import argparse
import time
import warnings

import numpy as np

from reidlib.stages import evaluation

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torchreid.reid.metrics import rank as tr_rank


def problem(queries: int, gallery: int, ids: int = 750, cams: int = 6, distractors: int = 2000, seed: int = 0):
    """Random ids, cameras and distances; distractors carry pid -1 and match nothing."""
    rng = np.random.default_rng(seed)
    q_pids = rng.integers(0, ids, queries)
    g_pids = np.concatenate([rng.integers(0, ids, gallery - distractors), np.full(distractors, -1)])
    q_cams, g_cams = rng.integers(0, cams, queries), rng.integers(0, cams, gallery)
    dist = rng.random((queries, gallery), dtype=np.float32)
    return dist, q_pids, g_pids, q_cams, g_cams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queries", type=int, default=3368)
    ap.add_argument("--gallery", type=int, default=19732)
    args = ap.parse_args()
    dist, qp, gp, qc, gc = problem(args.queries, args.gallery)
    # every query has >= 50 kept gallery images here, so torchreid's curves stack at max_rank 50
    evaluation.rank_metrics(dist[:4], qp[:4], gp, qc[:4], gc, backend="auto")  # compile the kernel first
    t0 = time.perf_counter()
    ours = evaluation.rank_metrics(dist, qp, gp, qc, gc, max_rank=50, backend="auto")
    t_ours = time.perf_counter() - t0
    t0 = time.perf_counter()
    vec = evaluation.rank_metrics(dist, qp, gp, qc, gc, max_rank=50, backend="torch")
    t_vec = time.perf_counter() - t0
    print(f"problem: {args.queries} x {args.gallery}, valid queries {ours.valid_queries}")
    print(f"reidlib rank_metrics (numba)   {t_ours:8.2f} s   mAP {ours.mAP:.6f}  mINP {ours.mINP:.6f}")
    print(f"reidlib rank_metrics (torch)   {t_vec:8.2f} s   mAP {vec.mAP:.6f}  max |d mAP| vs numba "
          f"{abs(vec.mAP - ours.mAP):.2e}  max |d CMC| {np.abs(vec.cmc - ours.cmc).max():.2e}")
    print(f"target: 5x faster than torchreid's compiled evaluator (about 5 s) -> at most 1.0 s: "
          f"{'met' if t_ours <= 1.0 else 'not met'} ({5.0 / t_ours:.1f}x)")
    runs = [("torchreid evaluate_rank (Python)", False)]
    if tr_rank.IS_CYTHON_AVAI:
        runs.append(("torchreid evaluate_rank (compiled)", True))
    else:
        print("torchreid's compiled evaluator is not importable here (PyPI torchreid ships none)")
    for name, cy in runs:
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cmc, mean_ap = tr_rank.evaluate_rank(dist, qp, gp, qc, gc, max_rank=50, use_cython=cy)
        t = time.perf_counter() - t0
        print(f"{name:32s} {t:8.2f} s   mAP {mean_ap:.6f}   speed-up {t / t_ours:6.1f}x   "
              f"max |d mAP| {abs(mean_ap - ours.mAP):.2e}   max |d CMC| {np.abs(cmc - ours.cmc).max():.2e}")


if __name__ == "__main__":
    main()
