import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from reidlib.analyses import attribution
from reidlib.core import images as images_api
from reidlib.core import images
from reidlib.models import zoo
from reidlib.models.bot import BoT
from reidlib.stages import anonymize


def _randomize_bn(model: nn.Module, seed: int = 0) -> None:
    """Running statistics and affine parameters away from their init, so BN shifts are not zero."""
    g = torch.Generator().manual_seed(seed)
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=g) * 0.1)
            m.running_var.copy_(torch.rand(m.running_var.shape, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.weight.shape, generator=g) + 0.5)
            m.bias.data.copy_(torch.randn(m.bias.shape, generator=g) * 0.1)


@pytest.mark.parametrize("name", ["bot", "resnet50mid"])
def test_contributions_sum_to_the_cosine_similarity(name):
    torch.manual_seed(0)
    model = zoo.build_model(name, 5).eval()
    _randomize_bn(model)
    x = torch.randn(3, 3, 64, 32)
    with torch.no_grad():
        emb = model(x).double()
    g = attribution.location_features(model, x)
    torch.testing.assert_close(g.mean((2, 3)), emb, atol=1e-4, rtol=1e-4)  # the embedding (up to float32)
    for i, j in ((0, 1), (1, 2), (2, 0)):
        cq, cg, cos = attribution.contributions(g[i], g[j])
        expected = float(torch.nn.functional.cosine_similarity(emb[i:i + 1], emb[j:j + 1]))
        assert abs(float(cos) - expected) < 1e-5
        assert abs(float(cq.sum()) - expected) < 1e-5 and abs(float(cg.sum()) - expected) < 1e-5
        assert cq.abs().max() > 0 and not torch.allclose(cq, cq.mean().expand_as(cq))
        # many gallery images at once give the same query maps
        torch.testing.assert_close(attribution.query_maps(g[i], emb[[j]])[0], cq)


def test_models_without_a_pooled_embedding_are_refused():
    model = zoo.build_model("hacnn", 5)
    assert not attribution.decomposable("hacnn") and attribution.decomposable("bot_r18")
    with pytest.raises(ValueError, match="HACNN"):
        attribution.location_features(model, torch.zeros(1, 3, 160, 64))


def _pixel_model() -> BoT:
    """A BoT whose trunk works pixel by pixel: a gate (zero where every channel is dark) then a random 1x1 map."""
    model = BoT(3)
    gate = nn.Conv2d(3, 3, 1)
    gate.weight.data = torch.eye(3).reshape(3, 3, 1, 1)
    gate.bias.data = torch.full((3,), 1.0)  # normalised values below -1 (pixels darker than ~45) give 0
    mix = nn.Conv2d(3, 2048, 1, bias=False)
    mix.weight.data = torch.randn(2048, 3, 1, 1, generator=torch.Generator().manual_seed(1))
    model.base = nn.Sequential(gate, nn.ReLU(), mix)
    return model.eval()


@pytest.mark.parametrize("technique", ["blur", "zero", "blank", "inpaint", "pixelate"])
def test_an_intervention_on_a_zero_contribution_region_changes_no_similarity(technique):
    rng = np.random.default_rng(0)
    size = (64, 32)
    images = [rng.integers(100, 150, size=(64, 32, 3), dtype=np.uint8) for _ in range(3)]
    for k, im in enumerate(images):  # each image its own dominant colour: distinct embeddings
        im[..., k] = rng.integers(200, 256, size=(64, 32))
    box = (8, 10, 24, 30)
    for im in images:  # a dark, textured region around and inside the box: normalised input < 0 there
        im[0:44] = rng.integers(0, 40, size=(44, 32, 3))
    recs = pd.DataFrame({"image": ["a.png", "b.png", "c.png"], "pid": [1, 2, 3]})
    boxes = {"a.png": np.array([box]), "b.png": np.array([box]), "c.png": np.array([box])}
    model = _pixel_model()
    x = attribution.to_input(images, size)
    g = attribution.location_features(model, x)
    mask = attribution.box_mask(boxes["a.png"], (64, 32), size)
    for i, j in ((0, 1), (1, 2)):
        cq, cg, _ = attribution.contributions(g[i], g[j])
        assert float(cq.abs().sum()) > 0
        assert float((cq.abs() * torch.as_tensor(mask)).sum()) == 0 and float((cg.abs() * torch.as_tensor(mask)).sum()) == 0
    files = [images_api.encode_image(im, ".png") for im in images]  # lossless: the copy changes only the box
    anon = attribution.anonymized_copy(files, recs, boxes, anonymize.Writer(technique, anonymize.technique_params(technique)))
    assert any(a != b for a, b in zip(anon, files))  # pixels did change in the box
    before = attribution.cosine(attribution.embed(model, x), attribution.embed(model, x))
    fa = attribution.embed(model, attribution.to_input(anon, size))
    f0 = attribution.embed(model, x)
    for after in (attribution.cosine(fa, f0), attribution.cosine(f0, fa), attribution.cosine(fa, fa)):
        np.testing.assert_allclose(after, before, atol=1e-6)
    # the same change on a region that contributes does change the similarity
    bright = [im.copy() for im in images]
    for im in bright:
        im[6:32, 6:26] = rng.integers(150, 256, size=(26, 20, 3))
    moved = attribution.anonymized_copy([images_api.encode_image(im, ".png") for im in bright], recs, boxes,
                                        anonymize.Writer("zero"))
    fb, fm = attribution.embed(model, attribution.to_input(bright, size)), attribution.embed(
        model, attribution.to_input(moved, size))
    assert np.abs(attribution.cosine(fm, fb) - attribution.cosine(fb, fb)).max() > 1e-4


def _face_image(face: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    rng = np.random.default_rng(3)
    img = rng.integers(90, 160, size=(96, 64, 3), dtype=np.uint8)
    box = (16, 20, 48, 52)
    patch = np.clip(face * 255, 0, 255).astype(np.uint8)
    import cv2

    img[20:52, 16:48] = cv2.resize(patch, (32, 32), interpolation=cv2.INTER_LINEAR)[..., None]
    return img, box


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    import cv2

    a = cv2.resize(a.astype(np.float64), (25, 25), interpolation=cv2.INTER_AREA).ravel()
    return float(np.corrcoef(a, b.astype(np.float64).ravel())[0, 1])


def test_swap_changes_only_the_box_and_puts_another_identitys_face_there():
    faces = images.lfw_faces()
    own, other = faces[0], faces[1]
    img, box = _face_image(own)
    out = anonymize.swap(img, box, faces=np.stack([own, other]), seed=0, exclude=[0])
    x0, y0, x1, y1 = box
    outside = np.ones(img.shape[:2], bool)
    outside[y0:y1, x0:x1] = False
    assert out.dtype == img.dtype and out.shape == img.shape
    assert np.array_equal(out[outside], img[outside])  # bit-identical outside the box
    before, after = img[y0:y1, x0:x1].mean(2), out[y0:y1, x0:x1].mean(2)
    assert _corr(after, other) > 0.6 and _corr(after, other) > _corr(after, own) + 0.25
    assert _corr(before, own) > 0.9 and _corr(before, other) < 0.6
    # deterministic, never the excluded face, and in the technique registry
    assert np.array_equal(out, anonymize.swap(img, box, faces=np.stack([own, other]), seed=0, exclude=[0]))
    assert np.array_equal(anonymize.anonymize_image(img, [box], "swap", faces=np.stack([own, other]), exclude=[0]),
                          out)
    with pytest.raises(ValueError, match="exclude"):
        anonymize.swap(img, box, faces=np.stack([own]), exclude=[0])


def test_swap_at_the_image_border_with_a_colour_pool():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(128, 64, 3), dtype=np.uint8)
    pool = [rng.integers(0, 256, size=(20, 16, 3), dtype=np.uint8) for _ in range(3)]
    box = (0, 0, 14, 12)
    out = anonymize.swap(img, box, faces=pool, seed=1)
    assert np.array_equal(out[12:], img[12:]) and np.array_equal(out[:, 14:], img[:, 14:])
    assert not np.array_equal(out[:12, :14], img[:12, :14])


def test_face_share_ratio():
    mask = np.zeros((8, 4), np.float32)
    mask[0:2, 0:2] = 1  # an eighth of the area
    assert attribution.face_share(np.ones((4, 2)), mask) == pytest.approx(1.0)  # uniform: as any patch
    inside = np.zeros((4, 2))
    inside[0, 0] = 1.0
    assert attribution.face_share(inside, mask) == pytest.approx(8.0)  # everything in the face
    assert attribution.face_share(np.ones((4, 2)), np.zeros((8, 4), np.float32)) != attribution.face_share(
        np.ones((4, 2)), mask)  # no face: NaN


def test_bootstrap_interval_brackets_the_mean():
    v = np.random.default_rng(0).normal(2.0, 1.0, 200)
    m, lo, hi = attribution.bootstrap_ci(v)
    assert lo < m < hi and lo < 2.0 < hi and hi - lo < 0.5
    assert attribution.bootstrap_ci([np.nan, 1.0]) == (1.0, 1.0, 1.0)


def test_gradcam_with_a_similarity_target_on_hacnn():
    torch.manual_seed(0)
    model = zoo.build_model("hacnn", 4).eval()
    x = torch.randn(2, 3, 160, 64)
    feats = attribution.embed(model, x)
    maps = attribution.gradcam_maps(model, x, feats.flip(0))
    assert maps.shape == (2, 160, 64) and np.isfinite(maps).all() and (maps >= 0).all() and maps.max() > 0
    # only activations' gradients were computed, and the weights are left as they were found
    assert all(q.requires_grad and q.grad is None for q in model.parameters())
    np.testing.assert_allclose(attribution.gradcam_maps(model, x, feats.flip(0)), maps, atol=1e-6)
    # the graph starts at the layer's output: the same maps as the package's own pass through the whole network
    from pytorch_grad_cam import GradCAM
    layer = attribution.gradcam_layer(model)
    assert not layer._forward_hooks  # the cut is removed again
    with GradCAM(model=model, target_layers=[layer]) as cam:
        full = cam(input_tensor=x.clone().requires_grad_(True),
                   targets=[attribution.CosineTarget(t) for t in feats.flip(0)])
    np.testing.assert_allclose(maps, full, atol=1e-5)


def test_per_query_ap_matches_the_evaluation():
    rng = np.random.default_rng(0)
    q = pd.DataFrame({"pid": [1, 2, 3], "camid": [1, 1, 2]})
    g = pd.DataFrame({"pid": [1, 1, 2, 3, 3, 4], "camid": [2, 1, 2, 1, 2, 1]})
    sim = rng.random((3, 6))
    ap = attribution.per_query_ap(sim, q, g)
    from reidlib.stages import evaluation

    whole = evaluation.rank_metrics(1 - sim, q.pid, g.pid, q.camid, g.camid)
    assert np.nanmean(ap) == pytest.approx(whole.mAP)
    true, kept = attribution.true_match_mask(q, g)
    assert true[0].tolist() == [True, False, False, False, False, False] and not kept[0, 1]


def test_shuffled_identities_keep_the_images_and_the_identity_counts_but_not_the_pairing():
    recs = pd.DataFrame({"image": [f"{i}.jpg" for i in range(40)], "split": ["train"] * 30 + ["query"] * 10,
                         "pid": [i // 3 for i in range(30)] + list(range(10))})
    out = attribution.shuffled_records(recs, 0)
    assert out.image.tolist() == recs.image.tolist() and out[out.split == "query"].equals(recs[recs.split == "query"])
    assert sorted(out.pid[:30]) == sorted(recs.pid[:30]) and (out.pid[:30] != recs.pid[:30]).mean() > 0.5
    assert out.equals(attribution.shuffled_records(recs, 0)) and not out.equals(attribution.shuffled_records(recs, 1))


def test_gradient_input_gives_nothing_to_pixels_that_show_the_reference():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    ref = attribution.reference((32, 16))
    assert ref.shape == (3, 32, 16)
    x = ref.repeat(2, 1, 1, 1)
    x[:, :, 8:16, 4:12] = torch.randn(2, 3, 8, 8)  # the "face": the only pixels unlike the reference
    maps = attribution.gradient_input_maps(net, x, net(torch.randn(2, 3, 32, 16)).detach(), ref)
    face = np.zeros((32, 16), bool)
    face[8:16, 4:12] = True
    assert maps.shape == (2, 32, 16) and (maps >= 0).all()
    assert (maps[:, ~face] == 0).all() and (maps[:, face].sum((1,)) > 0).all()  # whatever the receptive field
    assert attribution.face_share(maps[0], face.astype(np.float32)) == pytest.approx(1 / face.mean())
