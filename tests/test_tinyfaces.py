"""TinyFaces (the paper's detector) with random weights: shapes, template decoding, NMS, checkpoint loading."""
import json

import numpy as np
import pytest
import torch

from reidlib.models import tinyfaces
from reidlib.stages import detection


@pytest.fixture(scope="module")
def net():
    torch.manual_seed(0)
    return tinyfaces.TinyFacesNet(num_templates=25).eval()


def test_output_has_five_channels_per_template_on_the_res3_grid(net):
    with torch.no_grad():
        out = net(torch.randn(1, 3, 64, 96))
    assert out.shape == (1, 125, 8, 12)  # stride 8
    assert not hasattr(net.model, "layer4")


def test_decoding_a_hand_made_score_map():
    templates = np.array([[0, 0, 9, 9], [0, 0, 19, 19]], float)  # 10 and 20 pixels
    out = np.full((10, 5, 6), -10.0)
    out[5:] = 0.0  # regressions
    out[1, 2, 3] = 5.0  # template 1 fires at cell (y 2, x 3): centre (15, 23) with stride 8, offset -1
    out[2 + 1, 2, 3] = 0.1  # dx: a tenth of the template width
    out[6 + 1, 2, 3] = np.log(2.0)  # log w: twice the template width
    boxes = tinyfaces.decode(out, templates, threshold=0.5, scale=2.0)
    assert boxes.shape == (1, 5)
    np.testing.assert_allclose(boxes[0, :4], np.array([25 - 20, 15 - 10, 25 + 20, 15 + 10]) / 2.0, atol=1e-5)
    assert boxes[0, 4] == pytest.approx(1 / (1 + np.exp(-5.0)))
    assert len(tinyfaces.decode(out, templates, threshold=0.999)) == 0


def test_detector_fuses_the_pyramid_with_nms(net):
    templates = np.array([[0, 0, w - 1, w - 1] for w in np.linspace(8, 60, 25)])
    det = tinyfaces.TinyFaces(net, templates, threshold=0.0, levels=(-1, 0))
    d = det(np.random.default_rng(0).integers(0, 255, (64, 48, 3), dtype=np.uint8))
    assert d.ndim == 2 and d.shape[1] == 5 and len(d) > 0 and np.isfinite(d).all()
    x0, y0, x1, y1 = d[:, 0], d[:, 1], d[:, 2], d[:, 3]
    inter = (np.minimum(x1[:, None], x1) - np.maximum(x0[:, None], x0)).clip(0) * \
        (np.minimum(y1[:, None], y1) - np.maximum(y0[:, None], y0)).clip(0)
    area = (x1 - x0) * (y1 - y0)
    iou = inter / (area[:, None] + area - inter)
    np.fill_diagonal(iou, 0)
    assert iou.max() <= 0.3 + 1e-6


def test_checkpoint_loads_by_the_projects_parameter_names(net, tmp_path):
    torch.save({"model": net.state_dict(), "epoch": 3}, tmp_path / "checkpoint.pth")
    (tmp_path / "templates.json").write_text(json.dumps([[0, 0, 9, 9]] * 25))
    loaded, templates = tinyfaces.load(tmp_path / "checkpoint.pth", tmp_path / "templates.json")
    assert templates.shape == (25, 4)
    for (k, a), b in zip(net.state_dict().items(), loaded.state_dict().values()):
        assert torch.equal(a, b), k
    run = detection.make_detector("tinyfaces", 0.65, 1, checkpoint=str(tmp_path / "checkpoint.pth"),
                                  templates=str(tmp_path / "templates.json"))
    assert run(np.zeros((32, 32, 3), np.uint8)).shape[1] == 5


def test_missing_checkpoint_says_what_to_put_where(tmp_path):
    with pytest.raises(FileNotFoundError, match="detection.checkpoint"):
        detection.make_detector("tinyfaces", 0.65, 1)
    with pytest.raises(FileNotFoundError, match="nothing is downloaded"):
        tinyfaces.load(tmp_path / "tiny.pth", tmp_path / "templates.json")
