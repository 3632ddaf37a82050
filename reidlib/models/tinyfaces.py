"""TinyFaces, the paper's face detector (Section III-A; Hu and Ramanan, CVPR 2017), for a user's checkpoint.

The network and decoding of tiny-faces-pytorch, written here so that its checkpoint files load
(their parameter names are kept): a ResNet-101 trunk without `layer4`, 1x1 score heads on res3
and res4, the res4 scores resized to the res3 grid and added. Each of the T templates (boxes of
clustered face sizes) has one score channel and four regression channels (dx, dy, log w, log h);
detections come from an image pyramid, fused by non-maximum suppression. Nothing is downloaded:
the checkpoint (a dict whose `model` entry is the state dict) and the templates file are given.
"""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import torch
from scipy.special import expit
from torch import nn
from torch.nn import functional as F
from torchvision.models import resnet101

from . import checkpoints

MEAN, STD = np.array([0.485, 0.456, 0.406]), np.array([0.229, 0.224, 0.225])
RECEPTIVE_FIELD = {"stride": (8, 8), "offset": (-1, -1)}  # of the res3 score grid, in input pixels
LOG_SIZE_CLIP = float(np.log(1000 / 16))  # largest log size change decoded (torchvision's box-coder bound)


class TinyFacesNet(nn.Module):
    """ResNet-101 without layer4; res3 + upsampled res4 scores, (1 + 4) x `num_templates` channels."""

    def __init__(self, num_templates: int = 25):
        super().__init__()
        out = 5 * num_templates
        self.num_templates = num_templates
        self.model = resnet101(weights=None)
        del self.model.layer4
        self.score_res3 = nn.Conv2d(512, out, kernel_size=1)
        self.score_res4 = nn.Conv2d(1024, out, kernel_size=1)
        # kept for the checkpoint's parameter names; the forward pass resizes bilinearly instead
        self.score4_upsample = nn.ConvTranspose2d(out, out, kernel_size=4, stride=2, padding=1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.model
        x = m.maxpool(m.relu(m.bn1(m.conv1(x))))
        res3 = m.layer2(m.layer1(x))
        res4 = m.layer3(res3)
        s3 = self.score_res3(res3)
        s4 = F.interpolate(self.score_res4(res4), size=s3.shape[2:], mode="bilinear", align_corners=False)
        return s3 + s4


def load_templates(path: str | Path) -> np.ndarray:
    """The (T, 4) template boxes x0, y0, x1, y1 from a JSON list (tiny-faces-pytorch's templates.json)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"TinyFaces templates not found: {path} (the templates.json of the checkpoint's "
                                f"training run)")
    return np.asarray(json.loads(path.read_text()), np.float64).reshape(-1, 4)


def load(checkpoint: str | Path, templates: str | Path) -> tuple[TinyFacesNet, np.ndarray]:
    """The network with a tiny-faces-pytorch checkpoint's weights (`weights_only=True`), and its templates."""
    checkpoint = Path(checkpoint)
    if not checkpoint.is_file():
        raise FileNotFoundError(f"TinyFaces checkpoint not found: {checkpoint}. Put the tiny-faces-pytorch "
                                f"checkpoint (a dict with a 'model' state dict) there; nothing is downloaded")
    t = load_templates(templates)
    net = TinyFacesNet(len(t))
    checkpoints.load_into(net, checkpoints.state_dict(checkpoint, "TinyFaces"), checkpoint, "TinyFaces")
    return net.eval(), t


def decode(output: np.ndarray, templates: np.ndarray, threshold: float, scale: float = 1.0,
           rf: dict = RECEPTIVE_FIELD) -> np.ndarray:
    """Boxes (x0, y0, x1, y1, probability) in original-image pixels from one output map (C, H, W).

    A cell (y, x) of template t fires when sigmoid(score) > threshold; its box is the template's
    size centred on the cell's receptive-field centre, shifted by (dx, dy) template sizes and
    scaled by exp(log w), exp(log h); `scale` is the pyramid level the map came from.
    """
    T = len(templates)
    prob = expit(output[:T])
    t, fy, fx = np.nonzero(prob > threshold)
    cy = fy * rf["stride"][0] + rf["offset"][0]
    cx = fx * rf["stride"][1] + rf["offset"][1]
    th = templates[t, 3] - templates[t, 1] + 1
    tw = templates[t, 2] - templates[t, 0] + 1
    dx, dy, lw, lh = (output[T * (k + 1) + t, fy, fx] for k in range(4))
    lw, lh = np.clip(lw, -LOG_SIZE_CLIP, LOG_SIZE_CLIP), np.clip(lh, -LOG_SIZE_CLIP, LOG_SIZE_CLIP)
    rcx, rcy = cx + tw * dx, cy + th * dy
    rw, rh = tw * np.exp(lw), th * np.exp(lh)
    boxes = np.c_[rcx - rw / 2, rcy - rh / 2, rcx + rw / 2, rcy + rh / 2] / scale
    return np.c_[boxes, prob[t, fy, fx]].astype(np.float32)


class TinyFaces:
    """The detector: pyramid levels 2**k of the image, decoded, fused by NMS (paper Section III-A)."""

    def __init__(self, net: TinyFacesNet, templates: np.ndarray, threshold: float = 0.65,
                 levels: tuple = (-2, -1, 0, 1), nms_iou: float = 0.3, upscale: int = 1):
        self.net, self.templates, self.threshold = net.eval(), templates, threshold
        self.levels, self.nms_iou, self.upscale = levels, nms_iou, upscale

    @torch.no_grad()
    def __call__(self, img: np.ndarray) -> np.ndarray:
        from ..core.boxes import nms

        found = []
        for level in self.levels:
            s = self.upscale * 2.0 ** level
            h, w = max(int(round(img.shape[0] * s)), 1), max(int(round(img.shape[1] * s)), 1)
            x = (cv2.resize(img, (w, h), interpolation=cv2.INTER_LINEAR) / 255.0 - MEAN) / STD
            out = self.net(torch.as_tensor(x.transpose(2, 0, 1)[None], dtype=torch.float32))[0].numpy()
            found.append(decode(out, self.templates, self.threshold, s))
        d = np.concatenate(found) if found else np.empty((0, 5), np.float32)
        d[:, [0, 2]] = d[:, [0, 2]].clip(0, img.shape[1])  # boxes inside the image
        d[:, [1, 3]] = d[:, [1, 3]].clip(0, img.shape[0])
        d = d[(d[:, 2] > d[:, 0]) & (d[:, 3] > d[:, 1])]
        return d[nms(d[:, :4], d[:, 4], self.nms_iou)] if len(d) else d
