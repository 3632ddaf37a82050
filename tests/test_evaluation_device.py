"""Rank metrics and re-ranking through the device code path (CPU here; CUDA too where present)."""
import numpy as np
import pytest
import scipy.sparse as sp
import torch

from reidlib.stages import evaluation

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _problem(seed: int = 3, q: int = 150, g: int = 700):
    rng = np.random.default_rng(seed)
    qp, gp = rng.integers(0, 40, q), rng.integers(-1, 40, g)
    qc, gc = rng.integers(0, 5, q), rng.integers(0, 5, g)
    return rng.random((q, g)).astype(np.float32), qp, gp, qc, gc


@pytest.mark.parametrize("device", DEVICES)
def test_rank_metrics_on_a_device_match_the_compiled_kernel(device):
    pytest.importorskip("numba")
    dist, qp, gp, qc, gc = _problem()
    cpu = evaluation.rank_metrics(dist, qp, gp, qc, gc, backend="numba")
    dev = evaluation.rank_metrics(dist, qp, gp, qc, gc, backend="torch", device=device)
    auto = evaluation.rank_metrics(dist, qp, gp, qc, gc, device=device)  # CUDA: torch there; CPU: numba
    assert dev.valid_queries == cpu.valid_queries == auto.valid_queries
    for r in (dev, auto):
        assert abs(r.mAP - cpu.mAP) <= 1e-6 and abs(r.mINP - cpu.mINP) <= 1e-6
        np.testing.assert_allclose(r.cmc, cpu.cmc, atol=1e-6)


def test_jaccard_rows_match_a_dense_computation():
    """The sparse min-sum behind the Jaccard distance, checked against the dense formula."""
    rng = np.random.default_rng(5)
    dense = rng.random((30, 30)).astype(np.float32) * (rng.random((30, 30)) < 0.2)
    v = sp.csr_matrix(dense)
    nq = 7
    got = evaluation._jaccard_rows(v, v.tocsc(), slice(2, 6), nq, torch.device("cpu")).numpy()
    want = np.minimum(dense[2:6, None, :], dense[None, nq:, :]).sum(2)
    assert got.shape == (4, 30 - nq)
    np.testing.assert_allclose(got, want, atol=1e-6)


@pytest.mark.parametrize("device", DEVICES)
def test_re_ranking_on_a_device_matches_the_cpu_path(device):
    rng = np.random.default_rng(6)
    centres = rng.normal(size=(25, 16))
    feats = (centres[rng.integers(0, 25, 260)] + 0.6 * rng.normal(size=(260, 16))).astype(np.float32)
    cpu = evaluation.re_ranking(feats, 60, chunk=100)
    dev = evaluation.re_ranking(feats, 60, chunk=100, device=device)
    assert dev.shape == (60, 200) and dev.dtype == np.float32
    np.testing.assert_allclose(dev, cpu, atol=1e-6)
    assert 0 < np.abs(cpu - evaluation.re_ranking(feats, 60, k1=10, chunk=100, device=device)).max()


def test_the_compiled_kernel_leaves_a_one_thread_job_on_one_thread():
    """numba's OpenMP layer shares torch's libgomp: started at every core, it would leave torch there, and two
    one-thread jobs side by side would spin on each other (a fresh process: the layer starts once per process)."""
    pytest.importorskip("numba")
    import os
    import subprocess
    import sys
    code = ("import numpy as np, torch\nfrom reidlib.stages import evaluation\n"
            "rng = np.random.default_rng(0)\n"
            "evaluation.rank_metrics(rng.random((20, 60)), np.arange(20) % 6, np.arange(60) % 6,"
            " np.zeros(20, int), np.ones(60, int), backend='numba')\n"
            "print(torch.get_num_threads())")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "NUMBA_NUM_THREADS": "2"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split()[-1] == "1"
