"""k-reciprocal re-ranking: time and peak memory at Market-1501 size, and agreement with torchreid.

1. reidlib.evaluation.re_ranking on 3,368 queries + 19,732 gallery images (2048-d features, as
   BoT's): wall time and the process's peak RSS (torchreid's dense version is not run at this
   size: it needs several 23,100 x 23,100 float32 matrices).
2. 1,000 x 5,000: reidlib against torchreid's `re_ranking` on the same distances, both timed,
   with the largest absolute difference.

    python benchmarks/rerank_benchmark.py [--full-queries 3368] [--full-gallery 19732] [--dim 2048]
"""
from __future__ import annotations

import argparse
import resource
import time
import warnings

import numpy as np
import torch

from reidlib.stages import evaluation

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from torchreid.reid.utils.rerank import re_ranking as torchreid_re_ranking


def features(n: int, dim: int, ids: int, seed: int = 0) -> np.ndarray:
    """Clustered random features: one centre per identity plus noise."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(ids, dim)).astype(np.float32)
    return centres[rng.integers(0, ids, n)] + rng.normal(scale=0.8, size=(n, dim)).astype(np.float32)


def peak_rss_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full-queries", type=int, default=3368)
    ap.add_argument("--full-gallery", type=int, default=19732)
    ap.add_argument("--dim", type=int, default=2048)
    args = ap.parse_args()
    torch.set_num_threads(2)

    f = features(args.full_queries + args.full_gallery, args.dim, ids=1501)
    t0 = time.perf_counter()
    out = evaluation.re_ranking(f, args.full_queries)
    t = time.perf_counter() - t0
    print(f"full size {args.full_queries} + {args.full_gallery}, dim {args.dim}: reidlib {t:.1f} s, "
          f"peak RSS {peak_rss_gb():.2f} GB, output {out.shape}")
    del f, out

    nq, ng, dim = 1000, 5000, 256
    f = features(nq + ng, dim, ids=700, seed=1)
    ft = torch.as_tensor(f)
    t0 = time.perf_counter()
    ours = evaluation.re_ranking(f, nq, chunk=1024)
    t_ours = time.perf_counter() - t0
    d = torch.cat([evaluation.squared_distances(ft, slice(s, s + 1024)) for s in range(0, len(f), 1024)])
    d = d.double().sqrt().numpy()  # the same float32 distances; torchreid squares its input
    t0 = time.perf_counter()
    ref = torchreid_re_ranking(d[:nq, nq:], d[:nq, :nq], d[nq:, nq:], k1=20, k2=6, lambda_value=0.3)
    t_ref = time.perf_counter() - t0
    print(f"{nq} x {ng}: reidlib {t_ours:.1f} s, torchreid {t_ref:.1f} s, ratio {t_ref / t_ours:.1f}x, "
          f"max |difference| {np.abs(ours - ref).max():.2e}")


if __name__ == "__main__":
    main()
