"""BoT, the "bag of tricks" strong baseline (paper Section II-B and IV-A, after Luo et al. 2019).

ResNet-50 (torchvision) with the last stride set to 1, global average pooling, and a BNNeck: a
batch-norm without bias between the pooled feature and a bias-free classifier. Training uses the
feature before the BN for the triplet and center losses and the logits for label-smoothed
cross-entropy; testing uses the feature after the BN. `bot_r18` is the same recipe on ResNet-18,
the default run's CPU-sized BoT (ResNet-50 from scratch does not learn on a few hundred crops).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import resnet18, resnet50

FEATURE_DIM = 2048
BACKBONES = {"resnet50": resnet50, "resnet18": resnet18}  # name -> torchvision builder


class BoT(nn.Module):
    """ResNet-50 (or `backbone`), last stride 1, BNNeck; `forward` gives (logits, feature) in training,
    the BN feature in eval."""

    def __init__(self, num_classes: int, backbone: str = "resnet50"):
        super().__init__()
        trunk = BACKBONES[backbone](weights=None)
        dim = trunk.fc.in_features
        for conv in (*trunk.layer4[0].children(), *trunk.layer4[0].downsample):  # last stride 1: 16x8 map at 256x128
            if getattr(conv, "stride", None) == (2, 2):
                conv.stride = (1, 1)
        self.base = nn.Sequential(trunk.conv1, trunk.bn1, trunk.relu, trunk.maxpool,
                                  trunk.layer1, trunk.layer2, trunk.layer3, trunk.layer4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = dim
        self.bottleneck = nn.BatchNorm1d(dim)
        self.bottleneck.bias.requires_grad_(False)  # BN without a learned shift
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.constant_(self.bottleneck.weight, 1.0)
        nn.init.constant_(self.bottleneck.bias, 0.0)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, x: torch.Tensor):
        feat = self.pool(self.base(x)).flatten(1)
        bn = self.bottleneck(feat)
        if not self.training:
            return bn
        return self.classifier(bn), feat

    def load_imagenet(self, src: dict[str, torch.Tensor]) -> int:
        """Copy a torchvision ResNet ImageNet state dict (of this backbone) into the trunk; returns the tensors copied."""
        names = ["conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4"]
        own = self.base.state_dict()
        copied = 0
        for k, v in src.items():
            head, _, rest = k.partition(".")
            if head in names:
                key = f"{names.index(head)}.{rest}"
                if key in own and own[key].shape == v.shape:
                    own[key] = v
                    copied += 1
        if not copied:
            raise ValueError(f"no tensor of the ImageNet weights fits this BoT's trunk ({type(self).__name__}, "
                             f"{self.feature_dim}-d)")
        self.base.load_state_dict(own)
        return copied


class CenterLoss(nn.Module):
    """Center loss (Wen et al. 2016): mean squared distance of each feature to its class centre.

    Written here because neither torch nor torchreid ships it; the centres are parameters that BoT
    updates with their own SGD optimizer.
    """

    def __init__(self, num_classes: int, dim: int = FEATURE_DIM):
        super().__init__()
        self.centers = nn.Parameter(torch.randn(num_classes, dim))

    def forward(self, feat: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        diff = feat.float() - self.centers[labels]
        return diff.pow(2).sum(1).clamp(1e-12, 1e12).mean()

