"""Batch norm folded into convolutions for evaluation: the same features, or the model left as it is."""
import torch
from torch import nn

from reidlib.models import folding, zoo


def _trained_stats(model: nn.Module) -> nn.Module:
    """Batch norms with running statistics and affine weights away from their defaults (folding then matters)."""
    g = torch.Generator().manual_seed(0)
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.copy_(torch.rand(m.num_features, generator=g) - 0.5)
            m.running_var.copy_(torch.rand(m.num_features, generator=g) + 0.5)
            m.weight.data.copy_(torch.rand(m.num_features, generator=g) + 0.5)
    return model.eval()


class BnThenConv(nn.Module):
    """A module with a `conv` and a `bn` that runs them the other way round: folding would change it."""

    def __init__(self):
        super().__init__()
        self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)

    def forward(self, x):
        h = self.conv(self.bn(x))
        return h.mean((2, 3)) if x.shape[0] else h  # branches on a tensor's shape: does not trace


def test_hacnn_and_a_traceable_model_fold_to_the_same_features():
    torch.manual_seed(0)
    for name, size in (("hacnn", (160, 64)), ("resnet50mid", (64, 32))):
        model = _trained_stats(zoo.build_model(name, 4))
        x = torch.randn(3, 3, *size)
        net = folding.folded(model, x[:2])
        assert net is not model
        assert not any(isinstance(m, nn.BatchNorm2d) for m in net.modules()) or name == "hacnn"
        assert sum(isinstance(m, nn.BatchNorm2d) for m in net.modules()) < \
            sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
        with torch.no_grad():
            got, want = net(x), model(x)  # a sample the probe did not see, within float rounding of the largest
        assert got.shape == want.shape and (got - want).abs().max() <= 1e-4 * want.abs().max()
        assert any(isinstance(m, nn.BatchNorm2d) for m in model.modules())  # the model itself is not changed


def test_a_fold_that_changes_the_features_is_refused():
    model = _trained_stats(BnThenConv())
    assert folding.folded(model, torch.randn(2, 3, 8, 8)) is model
