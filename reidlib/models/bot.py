"""BoT, the "bag of tricks" strong baseline (paper Section II-B and IV-A, after Luo et al. 2019).

ResNet-50 (torchvision) with the last stride set to 1, global average pooling, and a BNNeck: a
batch-norm without bias between the pooled feature and a bias-free classifier. Training uses the
feature before the BN for the triplet and center losses and the logits for label-smoothed
cross-entropy; testing uses the feature after the BN. `bot_r18` is the same recipe on ResNet-18,
the default run's CPU-sized BoT (ResNet-50 from scratch does not learn on a few hundred crops);
`bot_mnv2` on torchvision's MobileNetV2 features (1280 channels, its last stride also set to 1),
whose ImageNet weights ship offline inside a package (`reidlib.models.zoo.imagenet_file`).
"""
from __future__ import annotations

import torch
from torch import nn
from torchvision.models import mobilenet_v2, resnet18, resnet50

FEATURE_DIM = 2048
BACKBONES = {"resnet50": resnet50, "resnet18": resnet18, "mobilenet_v2": mobilenet_v2}  # name -> torchvision builder


def _last_stride_1(block: nn.Module) -> None:
    """Set every stride-2 convolution of `block` to stride 1 (BoT's last-stride trick: 16x8 map at 256x128)."""
    for conv in block.modules():
        if isinstance(conv, nn.Conv2d) and conv.stride == (2, 2):
            conv.stride = (1, 1)


def _trunk(backbone: str) -> tuple[nn.Sequential, int]:
    """The backbone as one feature-map module (ImageNet head removed, last stride 1) and its channels."""
    if backbone not in BACKBONES:
        raise ValueError(f"unknown BoT backbone '{backbone}'; choose one of {', '.join(BACKBONES)}")
    net = BACKBONES[backbone](weights=None)
    if backbone.startswith("mobilenet"):
        features = net.features
        _last_stride_1(features[14])  # the last stride-2 block (96 -> 160 channels)
        return features, features[-1].out_channels
    _last_stride_1(net.layer4[0])
    return nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool,
                         net.layer1, net.layer2, net.layer3, net.layer4), net.fc.in_features


class BoT(nn.Module):
    """ResNet-50 (or `backbone`: resnet18, mobilenet_v2), last stride 1, BNNeck; `forward` gives
    (logits, feature) in training, the BN feature in eval."""

    def __init__(self, num_classes: int, backbone: str = "resnet50"):
        super().__init__()
        self.backbone = backbone
        self.base, dim = _trunk(backbone)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.feature_dim = dim
        self.bottleneck = nn.BatchNorm1d(dim)
        self.bottleneck.bias.requires_grad_(False)  # BN without a learned shift
        self.classifier = nn.Linear(dim, num_classes, bias=False)
        nn.init.constant_(self.bottleneck.weight, 1.0)
        nn.init.constant_(self.bottleneck.bias, 0.0)
        nn.init.normal_(self.classifier.weight, std=0.001)

    frozen = 0  # the trunk's first modules kept as loaded (`freeze`)
    _folded: list[nn.Module] | None = None  # those modules with batch norm folded in (`frozen_trunk`), unregistered

    def freeze(self, blocks: int) -> None:
        """Keep the trunk's first `blocks` modules as loaded: no gradient, batch-norm statistics fixed (they stay
        in eval mode when the model trains). Fine-tuning only the later blocks of an ImageNet trunk trains faster."""
        if not 0 <= blocks <= len(self.base):
            raise ValueError(f"training.frozen_blocks = {blocks}: this BoT's trunk has {len(self.base)} blocks")
        self.frozen = blocks
        for q in self.base[:blocks].parameters():
            q.requires_grad_(False)

    def train(self, mode: bool = True) -> BoT:
        super().train(mode)
        if self.frozen:
            self.base[:self.frozen].eval()
        return self

    def frozen_trunk(self, like: torch.Tensor) -> nn.Module:
        """The frozen blocks with each batch norm folded into the convolution before it (torch.fx's `fuse`):
        their weights and statistics never change in training, so the fold computes the same map (to float
        rounding) about 1.7x faster on the CPU. Made once, on `like`'s device and memory layout; it is kept out of
        the state dict, so checkpoints and evaluation see the trunk as loaded."""
        if self._folded is None or next(self._folded[0].parameters()).device != like.device:
            from torch.fx.experimental.optimization import fuse

            layout = torch.channels_last if like.is_contiguous(memory_format=torch.channels_last) and \
                not like.is_contiguous() else torch.contiguous_format
            self._folded = [fuse(self.base[:self.frozen].eval()).to(like.device, memory_format=layout)]
        return self._folded[0]

    def load_state_dict(self, *args, **kwargs):
        self._folded = None  # the folded copy follows the weights loaded
        return super().load_state_dict(*args, **kwargs)

    def forward(self, x: torch.Tensor):
        if self.training and self.frozen:
            with torch.no_grad():
                x = self.frozen_trunk(x)(x)
            feat = self.pool(self.base[self.frozen:](x)).flatten(1)
        else:
            feat = self.pool(self.base(x)).flatten(1)
        bn = self.bottleneck(feat)
        if not self.training:
            return bn
        return self.classifier(bn), feat

    def load_imagenet(self, src: dict[str, torch.Tensor]) -> int:
        """Copy a torchvision ImageNet state dict (of this backbone) into the trunk; returns the tensors copied.

        MobileNetV2 weights are taken in order (any `classifier.*` head dropped), whatever their names:
        every tensor must have the shape of the trunk's tensor at its place, else a ValueError names it.
        """
        if self.backbone.startswith("mobilenet"):
            return self._load_in_order(src)
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

    def _load_in_order(self, src: dict[str, torch.Tensor]) -> int:
        own = self.base.state_dict()
        theirs = [(k, v) for k, v in src.items() if not k.startswith("classifier.")]
        if len(theirs) != len(own):
            raise ValueError(f"the ImageNet weights hold {len(theirs)} tensors, but this BoT's {self.backbone} "
                             f"trunk takes {len(own)} (in order)")
        for i, ((key, mine), (name, v)) in enumerate(zip(own.items(), theirs)):
            if not isinstance(v, torch.Tensor) or v.shape != mine.shape:
                shape = tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                raise ValueError(f"ImageNet tensor {i} '{name}' has shape {shape}, but this BoT's {self.backbone} "
                                 f"trunk takes {tuple(mine.shape)} there ('{key}')")
            own[key] = v.to(mine.dtype)
        self.base.load_state_dict(own)
        return len(own)


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

