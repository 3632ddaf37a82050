"""The paper's six models and their recipes (stage 4): smoke training, overfitting, schedules, shapes."""
import hashlib

import pytest
import torch
from torchvision.models import resnet50

from reidlib.core import config, registry
from reidlib.models import transforms, zoo
from reidlib.stages import datasets, training

SIX = ["pcb_p6", "mlfn", "hacnn", "resnet50mid", "mudeep", "bot"]


def smoke(model: str, **kw) -> config.TrainingConfig:
    return config.from_dict({"training": {"profile": "smoke", "model": model, "device": "cpu", **kw}}).training


@pytest.mark.parametrize("model", SIX)
def test_each_model_trains_one_smoke_epoch(model, tiny_root, tmp_path):
    recs = datasets.read_market(tiny_root)
    out = training.train(tiny_root, recs, tmp_path / model, smoke(model), progress=False)
    log = (tmp_path / model / "train_log.csv").read_text().splitlines()
    assert len(log) == 2 and out.is_file()
    if model == "bot":
        assert log[0].startswith("epoch,loss,ce,triplet,center,accuracy,lr")
    net, size = zoo.load_trained(tmp_path / model)
    with torch.no_grad():
        feats = net(torch.randn(2, 3, *size))
    assert feats.ndim == 2 and feats.shape[0] == 2 and torch.isfinite(feats).all()


@pytest.mark.parametrize("model", SIX)
def test_loss_falls_on_a_fixed_batch(model, tiny_root):
    """Overfit check: a few steps on one tiny batch lower the recipe's loss."""
    cfg = smoke(model, lr=1e-3 if model != "bot" else 3.5e-4)
    recs = datasets.read_market(tiny_root)
    train = recs[recs.split == "train"].groupby("pid").head(2).head(8)
    labels = {p: i for i, p in enumerate(sorted(train.pid.unique()))}
    size = zoo.input_size(model, cfg.image_size)
    data = transforms.ReidImages(tiny_root, train, transforms.test_transform(size), labels)
    x = torch.stack([data[i][0] for i in range(len(data))])
    y = torch.tensor([data[i][1] for i in range(len(data))])
    torch.manual_seed(0)
    net = zoo.build_model(model, len(labels))
    losses = training.Losses(cfg, len(labels))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    net.train()
    history = []
    for _ in range(6):
        loss, _, _ = losses(net(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    assert history[-1] < history[0], history


def test_bot_learning_rate_schedule_is_the_papers():
    cfg = config.from_dict({"training": {"profile": "paper", "model": "bot"}}).training
    lr = {t: cfg.lr * training.lr_factor(t - 1, cfg) for t in range(1, cfg.epochs + 1)}
    assert cfg.epochs == 120 and cfg.batch_size == 64 and cfg.instances == 4
    assert lr[1] == pytest.approx(3.5e-5) and lr[10] == pytest.approx(3.5e-4)
    assert lr[5] == pytest.approx(3.5e-4 * 5 / 10)
    assert lr[11] == lr[40] == pytest.approx(3.5e-4)
    assert lr[41] == lr[70] == pytest.approx(3.5e-5)
    assert lr[71] == lr[120] == pytest.approx(3.5e-6)
    assert (cfg.label_smoothing, cfg.triplet_margin, cfg.center_weight, cfg.erasing) == (0.1, 0.3, 5e-4, 0.5)


def test_torchreid_paper_recipe_and_overrides():
    cfg = config.from_dict({"training": {"profile": "paper", "model": "pcb_p6", "epochs": 7}}).training
    assert (cfg.epochs, cfg.batch_size, cfg.lr, cfg.lr_decay, cfg.augment) == (7, 32, 0.003, 0.1, "translate")
    with pytest.raises(config.ConfigError, match="'fast'"):
        config.from_dict({"training": {"profile": "fast"}})


def test_feature_shapes_of_pcb_and_bot():
    pcb = zoo.build_model("pcb_p6", 10)
    pcb.train()
    heads = pcb(torch.randn(2, 3, 256, 128))
    assert len(heads) == 6 and all(h.shape == (2, 10) for h in heads)  # six parts, one classifier each
    pcb.eval()
    assert pcb(torch.randn(2, 3, 256, 128)).shape == (2, 6 * 2048)
    net = zoo.build_model("bot", 10)
    assert net.base(torch.randn(1, 3, 256, 128)).shape == (1, 2048, 16, 8)  # last stride 1
    net.train()
    logits, feat = net(torch.randn(2, 3, 256, 128))
    assert logits.shape == (2, 10) and feat.shape == (2, 2048)
    assert net.classifier.bias is None and not net.bottleneck.bias.requires_grad
    net.eval()
    assert net(torch.randn(2, 3, 256, 128)).shape == (2, 2048)


def test_imagenet_weights_come_only_from_the_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    with pytest.raises(FileNotFoundError, match=r"resnet50-0676ba61\.pth.*checkpoints"):
        zoo.build_model("bot", 5, "imagenet")
    assert zoo.imagenet_file("hacnn") is None  # torchreid trains it from scratch
    src = resnet50(weights=None)
    (tmp_path / "checkpoints").mkdir()
    torch.save(src.state_dict(), tmp_path / "checkpoints" / registry.RESNET50[0])
    net = zoo.build_model("bot", 5, "imagenet")
    assert torch.equal(net.base[4][0].conv1.weight, src.layer1[0].conv1.weight)
    assert torch.equal(net.base[0].weight, src.conv1.weight)


def test_triplet_needs_bot():
    with pytest.raises(ValueError, match="hacnn"):
        training.Losses(config.TrainingConfig(model="hacnn", triplet_margin=0.3), 4)


def test_bot_resumes_to_the_same_weights(tmp_path, tiny_root, monkeypatch):
    recs = datasets.read_market(tiny_root)
    cfg = smoke("bot", epochs=2, image_size=[64, 32])
    straight = training.train(tiny_root, recs, tmp_path / "a", cfg, seed=3, progress=False)
    real_save = training._save

    def killed(obj, path):
        if "epoch" in obj and obj["epoch"] == 2:
            raise KeyboardInterrupt
        real_save(obj, path)

    monkeypatch.setattr(training, "_save", killed)
    with pytest.raises(KeyboardInterrupt):
        training.train(tiny_root, recs, tmp_path / "b", cfg, seed=3, progress=False)
    monkeypatch.setattr(training, "_save", real_save)
    resumed = training.train(tiny_root, recs, tmp_path / "b", cfg, seed=3, progress=False)
    assert hashlib.sha256(resumed.read_bytes()).digest() == hashlib.sha256(straight.read_bytes()).digest()


@pytest.mark.parametrize("model", sorted(set(registry.MODELS) - set(SIX)))
def test_a_model_marked_channels_last_embeds_channels_last_tensors(model):
    """zoo.load_trained converts models whose entry allows it: their eval forward must accept that layout."""
    spec = registry.model(model)
    net = spec.build(3).eval()
    x = torch.randn(2, 3, *registry.input_size(model, (256, 128)))
    if spec.channels_last:
        net, x = net.to(memory_format=torch.channels_last), x.to(memory_format=torch.channels_last)
    with torch.no_grad():
        feats = net(x)
    assert feats.ndim == 2 and feats.shape[0] == 2 and torch.isfinite(feats).all()
