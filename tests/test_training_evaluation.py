import dataclasses
import hashlib
import json

import numpy as np
import pytest
import torch

from reidlib.core import config
from reidlib.models import torchreid_models as trm
from reidlib.models import zoo
from reidlib.stages import datasets, evaluation, training


def test_unknown_model_is_named():
    with pytest.raises(ValueError, match="pcb_p7"):
        trm.build("pcb_p7", 4)


def test_hacnn_runs_without_cuda_and_keeps_theta_on_the_input_device():
    model = trm.build("hacnn", 5)
    theta = model.transform_theta(torch.zeros(2, 2, dtype=torch.float64), 0)
    assert theta.dtype == torch.float64 and theta.device.type == "cpu"
    out = model(torch.randn(2, 3, 160, 64))
    assert isinstance(out, tuple) and out[0].shape == (2, 5)
    model.eval()
    assert model(torch.randn(2, 3, 160, 64)).ndim == 2


def test_fixed_input_sizes():
    assert zoo.input_size("hacnn", (256, 128)) == (160, 64)
    assert zoo.input_size("pcb_p6", (256, 128)) == (256, 128)


def test_missing_pretrained_file_says_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="imagenet.pth"):
        trm.build("resnet50", 3, str(tmp_path / "imagenet.pth"))


def test_pretrained_weights_come_from_a_local_file(tmp_path):
    src = trm.build("osnet_x0_25", 3)
    torch.save({"state_dict": src.state_dict()}, tmp_path / "w.pth")
    model = trm.build("osnet_x0_25", 3, str(tmp_path / "w.pth"))
    for (k, a), b in zip(src.state_dict().items(), model.state_dict().values()):
        assert torch.equal(a, b), k


def test_rank_metrics_on_a_known_ranking():
    q_pids, g_pids = np.array([1, 2]), np.array([1, 2, 3, 1])
    q_cam, g_cam = np.array([1, 1]), np.array([2, 2, 2, 1])  # the last gallery image is same-camera: ignored
    dist = np.array([[0.1, 0.5, 0.9, 0.0], [0.3, 0.2, 0.1, 0.5]])
    cmc, mean_ap = trm.rank_metrics(dist, q_pids, g_pids, q_cam, g_cam)
    assert cmc[0] == 0.5  # query 1 right at rank 1, query 2 has pid 3 first
    assert mean_ap == pytest.approx((1.0 + 0.5) / 2)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_training_writes_its_files_and_resumes_to_the_same_weights(tmp_path, tiny_root, monkeypatch):
    recs = datasets.read_market(tiny_root)
    size = (64, 32)
    cfg = config.TrainingConfig(model="osnet_x0_25", epochs=2, batch_size=8, device="cpu", image_size=size)
    straight = training.train(tiny_root, recs, tmp_path / "a", cfg, seed=1, progress=False)
    log = (tmp_path / "a" / "train_log.csv").read_text().splitlines()
    assert log[0].startswith("epoch,loss,accuracy,lr") and len(log) == 3
    assert not (tmp_path / "a" / "checkpoint.pt").exists()

    real_save, calls = training._save, {"n": 0}

    def killed_on_second_save(obj, path):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        real_save(obj, path)

    monkeypatch.setattr(training, "_save", killed_on_second_save)
    with pytest.raises(KeyboardInterrupt):
        training.train(tiny_root, recs, tmp_path / "b", cfg, seed=1, progress=False)
    assert (tmp_path / "b" / "checkpoint.pt").exists() and not (tmp_path / "b" / "model.pt").exists()
    monkeypatch.setattr(training, "_save", real_save)
    resumed = training.train(tiny_root, recs, tmp_path / "b", cfg, seed=1, progress=False)
    assert _sha(resumed) == _sha(straight)

    model, got_size = zoo.load_trained(tmp_path / "a")
    assert got_size == size
    res = evaluation.evaluate_model(model, size, tiny_root, recs)
    assert 0 <= res["rank1"] <= 100 and 0 < res["mAP"] <= 100 and 0 < res["mINP"] <= 100
    flipped = evaluation.evaluate_model(model, size, tiny_root, recs, config.EvaluationConfig(flip=True))
    assert 0 < flipped["mAP"] <= 100


def test_bfloat16_autocast_only_where_asked_and_native_and_recorded(tmp_path, tiny_root, monkeypatch):
    recs = datasets.read_market(tiny_root)
    cfg = config.TrainingConfig(model="osnet_x0_25", epochs=1, batch_size=8, device="cpu", image_size=(64, 32))
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert training.autocast(cfg, cuda) == "bfloat16"
    assert training.autocast(config.TrainingConfig(amp=False), cuda) == "float32"
    weights = {}
    for native, cpu_amp, want in ((False, True, "float32"), (True, False, "float32"), (True, True, "bfloat16")):
        monkeypatch.setattr(training, "native_bf16", lambda native=native: native)
        run = dataclasses.replace(cfg, cpu_amp=cpu_amp)
        assert training.autocast(run, cpu) == want
        out = tmp_path / f"{native}_{cpu_amp}"
        training.train(tiny_root, recs, out, run, seed=1, progress=False)
        assert json.loads((out / "pids.json").read_text())["autocast"] == want
        weights[(native, cpu_amp)] = _sha(out / "model.pt")
    assert weights[(False, True)] == weights[(True, False)]  # float32 either way: the same run
    assert weights[(True, True)] != weights[(True, False)]  # bfloat16 arithmetic trains other weights


def test_training_outputs_reach_the_losses_in_float32():
    half = torch.ones(2, 3, dtype=torch.bfloat16)
    out = training._as_float((half, [half, torch.arange(3)]))
    assert out[0].dtype == torch.float32 and out[1][0].dtype == torch.float32
    assert out[1][1].dtype == torch.int64  # labels and indices stay as they are


def test_unknown_model_writes_nothing(tmp_path, tiny_root):
    recs = datasets.read_market(tiny_root)
    with pytest.raises(ValueError, match="nosuchnet"):
        training.train(tiny_root, recs, tmp_path / "m", config.TrainingConfig(model="nosuchnet"), progress=False)
    assert not (tmp_path / "m").exists()


def test_random_ranking_floor_is_low(tiny_root):
    recs = datasets.read_market(tiny_root)
    assert 0 < evaluation.random_ranking_map(recs) < 60


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_rank_metrics_agree_with_torchreid(backend):
    pytest.importorskip("numba") if backend == "numba" else None
    rng = np.random.default_rng(1)
    q, g = 200, 1500
    qp, gp = rng.integers(0, 60, q), rng.integers(-1, 60, g)  # -1: distractors, never a match
    qc, gc = rng.integers(0, 6, q), rng.integers(0, 6, g)
    dist = rng.random((q, g))
    ours = evaluation.rank_metrics(dist, qp, gp, qc, gc, max_rank=50, backend=backend)
    cmc, mean_ap = trm.rank_metrics(dist, qp, gp, qc, gc)
    assert abs(ours.mAP - mean_ap) < 1e-9
    np.testing.assert_allclose(ours.cmc[:len(cmc)], cmc, atol=1e-6)


def test_both_rank_metric_backends_give_the_same_numbers():
    pytest.importorskip("numba")
    rng = np.random.default_rng(4)
    qp, gp = rng.integers(0, 30, 300), rng.integers(0, 30, 900)
    qp[:5] = 99  # queries without any match: skipped by both
    qc, gc = rng.integers(0, 3, 300), rng.integers(0, 3, 900)
    dist = rng.random((300, 900)).astype(np.float32)
    dist[:, :20] = 0.5  # ties
    a = evaluation.rank_metrics(dist, qp, gp, qc, gc, backend="numba")
    b = evaluation.rank_metrics(dist, qp, gp, qc, gc, backend="torch")
    assert a.valid_queries == b.valid_queries == 295
    assert a.mAP == pytest.approx(b.mAP, abs=1e-12) and a.mINP == pytest.approx(b.mINP, abs=1e-12)
    np.testing.assert_array_equal(a.cmc, b.cmc)
    with pytest.raises(ValueError, match="'gpu'"):
        evaluation.rank_metrics(dist, qp, gp, qc, gc, backend="gpu")


@pytest.mark.parametrize("backend", ["numba", "torch"])
def test_rank_metrics_hand_computed_with_junk_and_invalid_query(backend):
    pytest.importorskip("numba") if backend == "numba" else None
    # query 0 (pid 1, cam 1): gallery ranked by distance: pid1/cam1 (junk, ignored), pid2, pid1/cam2, pid1/cam3
    # query 1 (pid 9): no match in the gallery, skipped
    g_pids, g_cams = np.array([1, 2, 1, 1]), np.array([1, 2, 2, 3])
    dist = np.array([[0.0, 0.1, 0.2, 0.3], [0.1, 0.2, 0.3, 0.4]])
    r = evaluation.rank_metrics(dist, np.array([1, 9]), g_pids, np.array([1, 1]), g_cams, max_rank=3, backend=backend)
    assert r.valid_queries == 1
    assert r.mAP == pytest.approx((1 / 2 + 2 / 3) / 2)  # true matches at ranks 2 and 3
    assert r.mINP == pytest.approx(2 / 3)  # 2 matches, the hardest at rank 3
    np.testing.assert_allclose(r.cmc, [0, 1, 1])


def test_re_ranking_agrees_with_torchreid():
    from torchreid.reid.utils.rerank import re_ranking as torchreid_re_ranking

    rng = np.random.default_rng(2)
    centers = rng.normal(size=(40, 32))
    ids = rng.integers(0, 40, 400)
    feats = (centers[ids] + 0.7 * rng.normal(size=(400, 32))).astype(np.float32)
    nq = 80
    f = torch.as_tensor(feats)
    # the same float32 distances, in the same chunks; torchreid squares what it is given
    d2 = torch.cat([evaluation.squared_distances(f, slice(s, s + 128)) for s in range(0, len(f), 128)])
    d2 = d2.double().sqrt().numpy()
    expected = torchreid_re_ranking(d2[:nq, nq:], d2[:nq, :nq], d2[nq:, nq:], k1=20, k2=6, lambda_value=0.3)
    got = evaluation.re_ranking(feats, nq, k1=20, k2=6, lambda_value=0.3, chunk=128)
    assert got.shape == (nq, 400 - nq)
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_single_gallery_shot_cmc_on_known_cases():
    q_pids, q_cams = np.array([1]), np.array([1])
    # one image per identity: the draw is fixed and the CMC is the plain ranking of identities
    g_pids, g_cams = np.array([1, 2, 3]), np.array([2, 2, 2])
    cmc = evaluation.single_shot_cmc(np.array([[0.5, 0.2, 0.9]]), q_pids, g_pids, q_cams, g_cams)
    assert list(cmc) == [0.0, 1.0, 1.0]
    # identity 2 has a near and a far image: half the draws put identity 1 second, half first-but-one
    g_pids, g_cams = np.array([1, 2, 2, 3, 1]), np.array([2, 2, 2, 2, 1])  # the last is same-camera: removed
    dist = np.array([[0.5, 0.2, 0.9, 0.4, 0.0]])
    cmc = evaluation.single_shot_cmc(dist, q_pids, g_pids, q_cams, g_cams, repeats=4000)
    assert cmc[0] == 0.0 and cmc[1] == pytest.approx(0.5, abs=0.03) and cmc[2] == 1.0
    again = evaluation.single_shot_cmc(dist, q_pids, g_pids, q_cams, g_cams, repeats=4000)
    assert np.array_equal(cmc, again)  # seeded
    with pytest.raises(ValueError, match="valid match"):
        evaluation.single_shot_cmc(dist, np.array([7]), g_pids, q_cams, g_cams)


def test_own_camera_share_finds_a_ranking_by_camera():
    q_cams, g_cams = np.array([0, 1]), np.array([0, 0, 1, 1, 2, 2])
    by_camera = np.array([[0, 1, 5, 5, 5, 5], [5, 5, 0, 1, 5, 5]], float)  # each query's own camera first
    own, base = evaluation.own_camera_share(by_camera, q_cams, g_cams, k=2)
    assert own == 100 and base == pytest.approx(100 / 3)
    blind = np.array([[5, 5, 5, 5, 0, 1], [5, 5, 5, 5, 0, 1]], float)
    assert evaluation.own_camera_share(blind, q_cams, g_cams, k=2)[0] == 0
