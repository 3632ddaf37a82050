"""Where the models look: face reliance measured directly, per match (the book's chapter 8).

The paper (Section IV) measures the importance of faces only through the change of mAP after
anonymization. Here, for every query-gallery pair:

- similarity decomposition (Stylianou, Souvenir, Pless, "Visualizing Deep Similarity Networks",
  WACV 2019) for models whose embedding is a global average pool of a feature map, possibly followed
  by affine maps (eval-mode batch norm, linear layers) and ReLUs fixed at their active set for the
  image (BoT; Resnet50Mid): the cosine similarity split exactly into per-location contributions on
  both images, and the "face share ratio" (share of the similarity inside the face box / the box's
  share of the image area; 1 = the face counts as much as any patch of its size);
- Grad-CAM with a similarity target (the `grad-cam` package) for the others (HACNN: its local branch
  sees spatially transformed crops, so locations do not add up), giving an approximate ratio;
- for every model, true matches only: gradient x input against a grey crop (the grey of a masked pixel), a
  pixel-level ratio that a last feature map's wide receptive fields cannot spread over the whole crop;
- interventions: only the face region anonymized (each technique, the face swap included), in the
  query only, the gallery only, or both; the change of similarity to the true matches and of AP;
- ranked lists with saliency, for the best, median and worst query by AP change.
"""
from __future__ import annotations

import io
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from scipy import stats
from torch import nn

from ..core import images, registry
from ..core.boxes import boxes_by_image
from ..core.config import Config, from_dict, to_dict, trainings
from ..core.images import read_image
from ..core.runfiles import (
    atomic_write_bytes,
    attribution_dir,
    dataset_root,
    file_sha256,
    fingerprint_files,
    finished,
    make_meta,
    tree_digest,
    write_csv,
    write_json,
)
from ..models.bot import BoT
from ..models.folding import folded
from ..models.transforms import test_transform
from ..models.zoo import display_name, load_trained
from ..pipeline import rundir, table
from ..stages import anonymize, evaluation, statistics, synthetic
from . import teaching

PLACEMENTS = ("query", "gallery", "both")  # where the face region is anonymized
FILES = ("face_share.csv", "face_share_summary.csv", "interventions.csv", "interventions_summary.csv",
         "ranked_lists.csv", "ranked_lists.npz", "control_interventions.csv",
         "model_control_removal.csv")  # the stage's outputs beside summary.json

# ---------------------------------------------------------------- decomposition (Stylianou et al. 2019)

def decomposable(model: str) -> bool:
    """Whether a registered model's embedding is an average of per-location vectors (`location_features`)."""
    return registry.model(model).decomposable


def _affine_chain(layers: nn.Module, loc: torch.Tensor, pooled: torch.Tensor) -> torch.Tensor:
    """Apply eval-mode Linear / BatchNorm1d / ReLU / Dropout layers to per-location vectors (B, D, P).

    Affine layers act on each location (their constant spreads evenly, so the mean is unchanged);
    a ReLU keeps the units active for the pooled vector, which makes it exact for this image.
    """
    for layer in layers:
        if isinstance(layer, nn.Linear):
            loc = torch.einsum("od,bdp->bop", layer.weight, loc)
            pooled = pooled @ layer.weight.T
            if layer.bias is not None:
                loc, pooled = loc + layer.bias[None, :, None], pooled + layer.bias
        elif isinstance(layer, nn.BatchNorm1d):
            scale = layer.weight / torch.sqrt(layer.running_var + layer.eps)
            shift = layer.bias - layer.running_mean * scale
            loc, pooled = loc * scale[None, :, None] + shift[None, :, None], pooled * scale + shift
        elif isinstance(layer, nn.ReLU):
            mask = (pooled > 0).to(loc.dtype)
            loc, pooled = loc * mask[:, :, None], pooled * mask
        elif not isinstance(layer, nn.Dropout):
            raise ValueError(f"cannot decompose through layer {type(layer).__name__}")
    return loc


@torch.no_grad()
def location_features(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-location vectors G (B, D, h, w) whose spatial mean is the model's eval embedding, exactly."""
    model.eval()
    if isinstance(model, BoT):
        fmap = model.base(x).double()  # double: sums over thousands of channels stay exact to 1e-10
        b, c, h, w = fmap.shape
        bn = model.bottleneck.double()
        try:
            return _affine_chain([bn], fmap.flatten(2), fmap.mean((2, 3))).reshape(b, c, h, w)
        finally:
            bn.float()
    if type(model).__name__ == "ResNetMid":
        x4a, x4b, x4c = model.featuremaps(x)
        ab = torch.cat([x4a, x4b], 1).double()
        b, _, h, w = ab.shape
        fc = model.fc_fusion.double()
        try:
            fused = _affine_chain(fc, ab.flatten(2), ab.mean((2, 3)))
        finally:
            fc.float()
        return torch.cat([fused, x4c.double().flatten(2)], 1).reshape(b, -1, h, w)
    raise ValueError(f"model {type(model).__name__} has no global-average-pool embedding to decompose; "
                     f"use Grad-CAM (`gradcam_maps`)")


def contributions(gq: torch.Tensor, gg: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per-location contributions to cos(f_q, f_g) on the query map and on the gallery map.

    gq (D, h, w) and gg (D, h', w') are `location_features`; with f = mean G, each location p of the
    query adds G_q(p) . f_g / (N_q |f_q| |f_g|), and likewise on the gallery: each map sums to the cosine.
    Returns (query map, gallery map, cosine).
    """
    gq, gg = gq.double(), gg.double()
    fq, fg = gq.mean((1, 2)), gg.mean((1, 2))
    denom = fq.norm() * fg.norm()
    cq = torch.einsum("dhw,d->hw", gq, fg) / (gq.shape[1] * gq.shape[2]) / denom
    cg = torch.einsum("dhw,d->hw", gg, fq) / (gg.shape[1] * gg.shape[2]) / denom
    return cq, cg, (fq @ fg) / denom


def query_maps(gq: torch.Tensor, gallery_feats: torch.Tensor) -> torch.Tensor:
    """Contribution maps on one query (D, h, w) against many gallery embeddings (M, D): (M, h, w)."""
    gq = gq.double()
    fq = gq.mean((1, 2))
    g = gallery_feats.double()
    maps = torch.einsum("dhw,md->mhw", gq, g) / (gq.shape[1] * gq.shape[2])
    return maps / (fq.norm() * g.norm(dim=1))[:, None, None]


# ---------------------------------------------------------------- Grad-CAM with a similarity target

def gradcam_layer(model: nn.Module, name: str = "") -> nn.Module:
    """The module whose output Grad-CAM weighs: `name` (the registry's `gradcam_layer`), else the last Conv2d."""
    if name:
        return model.get_submodule(name)
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"model {type(model).__name__} has no convolution for Grad-CAM")
    return convs[-1]


class CosineTarget:
    """Grad-CAM target: the cosine similarity of an image's embedding to a fixed one (the other image's)."""

    def __init__(self, concept: torch.Tensor):
        self.concept = concept

    def __call__(self, output: torch.Tensor) -> torch.Tensor:
        return F.cosine_similarity(output.float(), self.concept.to(output.device).float(), dim=0)


def gradcam_maps(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, batch_size: int = 32,
                 layer: str = "") -> np.ndarray:
    """Grad-CAM maps (B, H, W) of images `x` for the cosine similarity of each to its row of `targets`.

    The `grad-cam` package scales each map to [0, 1]; shares inside a box are read from that.
    """
    from pytorch_grad_cam import GradCAM

    model.eval()
    out = []
    # the maps need the gradients of the layer's activations only: the weights' gradients are skipped, and the
    # layer's output starts the graph, so nothing below it is differentiated
    needs = [q for q in model.parameters() if q.requires_grad]
    for q in needs:
        q.requires_grad_(False)
    target = gradcam_layer(model, layer)
    cut = target.register_forward_hook(lambda _m, _i, o: o.detach().requires_grad_(True))  # runs before the CAM's
    try:
        with GradCAM(model=model, target_layers=[target]) as cam:
            for s in range(0, len(x), batch_size):
                out.append(cam(input_tensor=x[s:s + batch_size],
                               targets=[CosineTarget(t) for t in targets[s:s + batch_size]]))
    finally:
        cut.remove()
        for q in needs:
            q.requires_grad_(True)
    return np.concatenate(out) if out else np.zeros((0,) + tuple(x.shape[2:]))


# ---------------------------------------------------------------- gradient x input, against what a masked pixel shows

GRADIENT_INPUT = "gradient × input"  # the pixel-level face share's method name


def reference(size: tuple[int, int]) -> torch.Tensor:
    """The input (3, H, W) of a crop painted in the grey of a masked pixel (`synthetic.GREY`): what a pixel the model
    cannot use shows, the reference each pixel's change is measured from."""
    return to_input([np.full((size[0], size[1], 3), synthetic.GREY, np.uint8)], size)[0]


def gradient_input_maps(model: nn.Module, x: torch.Tensor, targets: torch.Tensor, ref: torch.Tensor,
                        batch_size: int = 32) -> np.ndarray:
    """Per image (B, H, W): the positive part of gradient x (input - `ref`) of the cosine similarity of its embedding
    to its row of `targets`, summed over colour channels (gradient x input, Shrikumar et al. 2017, with a
    reference): pixel-level, so a pixel that shows the reference gets nothing, whatever the receptive fields.

    By hand: Captum's InputXGradient has no reference, and its IntegratedGradients costs one pass per step.
    """
    model.eval()
    out = []
    with torch.enable_grad():
        for s in range(0, len(x), batch_size):
            xb = x[s:s + batch_size].clone().requires_grad_(True)
            cos = F.cosine_similarity(model(xb).float(), targets[s:s + batch_size].float(), dim=1)
            (g,) = torch.autograd.grad(cos.sum(), xb)  # eval mode: each image's gradient is its own
            out.append((g * (xb.detach() - ref)).sum(1).clamp(min=0).numpy())
    return np.concatenate(out) if out else np.zeros((0,) + tuple(x.shape[2:]))


def _both_ways(x: torch.Tensor, feats: torch.Tensor, pairs: list[tuple], nq: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The images of (query, gallery) pairs, queries first then galleries, and for each the other side's embedding:
    the inputs and targets of a map of each image for its similarity to its partner."""
    qi = [i for i, j, _ in pairs] + [nq + j for i, j, _ in pairs]
    other = [nq + j for i, j, _ in pairs] + [i for i, j, _ in pairs]
    return x[qi], feats[other]


def _pair_shares(maps: np.ndarray, pairs: list[tuple], masks: list[np.ndarray], has_face: np.ndarray, sim: np.ndarray,
                 nq: int, method: str) -> list[dict]:
    """Face share ratio rows of pairs from maps laid out as `_both_ways` lays out images: per pair, the mean of the
    ratios on its images that show a face."""
    n = len(pairs)
    rows = []
    for k, (i, j, kind) in enumerate(pairs):
        vals = [face_share(maps[m], masks[img]) for m, img in ((k, i), (n + k, nq + j)) if has_face[img]]
        rows.append(dict(query=i, gallery=j, kind=kind, method=method, cosine=float(sim[i, j]), ratio=_mean(vals)))
    return rows


# ---------------------------------------------------------------- images, boxes, embeddings

def face_boxes(cfg: Config) -> dict[str, np.ndarray]:
    """Face boxes per image: the ground truth where the dataset has it, else stage 1's detections."""
    truth = rundir.ground_truth(cfg)
    table = truth if truth is not None else rundir.load_detections(cfg)
    return boxes_by_image(table)


def intervention_boxes(cfg: Config) -> dict[str, np.ndarray]:
    """Where the interventions anonymize (`attribution.boxes`): stage 1's detections, as the run's copy (the
    protocol of chapter 5), or the true faces (falling back to detections where the dataset has none)."""
    if cfg.attribution.boxes == "truth":
        return face_boxes(cfg)
    return boxes_by_image(rundir.load_detections(cfg))


def box_mask(boxes: np.ndarray, shape: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """Union of `boxes` (image pixels of an image of `shape`) as a float mask at the model's input `size`."""
    h, w = shape
    H, W = size
    m = np.zeros((H, W), np.float32)
    for x0, y0, x1, y1 in np.asarray(boxes, float).reshape(-1, 4):
        m[int(np.floor(y0 * H / h)):int(np.ceil(y1 * H / h)), int(np.floor(x0 * W / w)):int(np.ceil(x1 * W / w))] = 1
    return m


def to_input(images: list[np.ndarray | bytes], size: tuple[int, int]) -> torch.Tensor:
    """Images as the model's normalised input batch (the test transform of stage 5): BGR uint8 arrays, or
    encoded files (bytes), decoded as stage 5 decodes them (PIL), so the features are stage 5's."""
    t = test_transform(size)

    def pil(im):
        if isinstance(im, (bytes, bytearray)):
            return Image.open(io.BytesIO(im)).convert("RGB")
        return Image.fromarray(np.ascontiguousarray(im[..., ::-1]))

    return torch.stack([t(pil(im)) for im in images])


@torch.no_grad()
def embed(model: nn.Module, x: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """Eval embeddings of an input batch, as float CPU tensors (batch norm folded in: `models.folding`)."""
    net = folded(model, x[:2])
    return torch.cat([net(x[s:s + batch_size]).float() for s in range(0, len(x), batch_size)])


def swap_pool(cfg: Config, records: pd.DataFrame, boxes: dict[str, np.ndarray]) -> tuple[list, dict[int, list[int]]]:
    """Faces a swap draws from and, per pid, the pool entries of that identity (never drawn for it).

    The generated set: its own face pool (lfw_subset), the identity's face excluded; a real dataset:
    one face crop per training identity (test identities are disjoint from them).
    """
    ids_file = rundir.stage_generate(cfg) / "identities.csv"  # (generated first: the pool never depends on history)
    if cfg.attribution.swap_pool == "lfw" or (cfg.attribution.swap_pool == "auto" and cfg.dataset.name == "synthetic"
                                               and ids_file.is_file()):
        faces = list(images.lfw_faces())
        own = {}
        if ids_file.is_file():
            own = {int(r.pid): [int(r.face_index)] for r in pd.read_csv(ids_file).itertuples()}
        return faces, own
    faces, owners = [], []
    root = dataset_root(cfg)
    for r in records[records.split == "train"].drop_duplicates("pid").itertuples():
        b = boxes.get(r.image)
        if b is None or not len(b):
            continue
        img = read_image(root / r.image)
        box = anonymize.clip_box(b[0], img.shape)
        if box is not None:
            faces.append(img[box[1]:box[3], box[0]:box[2]])
            owners.append(int(r.pid))
    if not faces:
        raise ValueError("swap: no face box in the training split to draw faces from")
    own: dict[int, list[int]] = {}
    for i, p in enumerate(owners):
        own.setdefault(p, []).append(i)
    return faces, own


def anonymized_copy(raws: list[bytes], recs: pd.DataFrame, boxes: dict[str, np.ndarray], writer: anonymize.Writer,
                    pool=None, seed: int = 0) -> list[bytes]:
    """The images' files with only their face boxes anonymized, written as the run's anonymized copy writes
    them (`writer`: technique, parameters, encoding); an image left unchanged keeps its very bytes object."""
    out = []
    for raw, r in zip(raws, recs.itertuples()):
        b = boxes.get(r.image, np.empty((0, 4)))
        w = writer
        if writer.technique == "swap":
            faces, own = pool
            w = replace(writer, params={**writer.params, "faces": faces, "seed": seed,
                                        "exclude": own.get(int(r.pid), [])})
        data = w.write(raw, r.image, b) if len(b) else raw
        out.append(raw if data == raw else data)
    return out


def technique_writer(cfg: Config, technique: str) -> anonymize.Writer:
    """The run's copy writer (`rundir.writer`) with another technique and its parameters."""
    return replace(rundir.writer(cfg), technique=technique,
                   params=anonymize.technique_params(technique, cfg.anonymization))


def technique_gallery(cfg: Config) -> list[tuple[str, np.ndarray]]:
    """One query of the run with a face, as the original and as each intervention writes it: (title, RGB)."""
    recs = rundir.records(cfg)
    boxes = intervention_boxes(cfg)
    q = recs[(recs.split == "query") & recs.image.isin([k for k, b in boxes.items() if len(b)])]
    if q.empty:
        return []
    one = q.iloc[:1]
    raw = (dataset_root(cfg) / one.image.iloc[0]).read_bytes()
    pool = swap_pool(cfg, recs, boxes) if "swap" in cfg.attribution.techniques else None
    shown = [("original", raw)] + [
        (t, anonymized_copy([raw], one, boxes, technique_writer(cfg, t), pool, cfg.seed)[0])
        for t in cfg.attribution.techniques]
    return [(t, np.asarray(Image.open(io.BytesIO(b)).convert("RGB"))) for t, b in shown]


# ---------------------------------------------------------------- per-query measures

def per_query_ap(sim: np.ndarray, q: pd.DataFrame, g: pd.DataFrame) -> np.ndarray:
    """AP of each query from cosine similarities (distance 1 - cosine; `evaluation.per_query_ap`)."""
    return evaluation.per_query_ap(1.0 - sim, q.pid.to_numpy(), g.pid.to_numpy(), q.camid.to_numpy(),
                                   g.camid.to_numpy())


def stage5_ap(qf: torch.Tensor, gf: torch.Tensor, q: pd.DataFrame, g: pd.DataFrame, cfg: Config, arch: str
              ) -> np.ndarray:
    """AP of each query under stage 5's distance for this model (`evaluation.feature_distances`: the run's
    metric, or cosine and re-ranking for the models tested so), so that a face-only change of every test
    image gives exactly stage 5's orig -> anon change of mAP."""
    e = cfg.evaluation
    dist = evaluation.feature_distances(qf, gf, e, arch in e.rerank_models)
    return evaluation.per_query_ap(dist, q.pid.to_numpy(), g.pid.to_numpy(), q.camid.to_numpy(), g.camid.to_numpy())


def true_match_mask(q: pd.DataFrame, g: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(true matches, kept) masks (queries x gallery): same id in another camera; same id and camera dropped."""
    same = q.pid.to_numpy()[:, None] == g.pid.to_numpy()[None, :]
    cam = q.camid.to_numpy()[:, None] == g.camid.to_numpy()[None, :]
    return same & ~cam, ~(same & cam)


def cosine(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    """Cosine similarity matrix."""
    return (F.normalize(a.double(), dim=1) @ F.normalize(b.double(), dim=1).T).numpy()


def bootstrap_ci(values, confidence: float = 0.95, seed: int = 0, resamples: int = 2000) -> tuple[float, float, float]:
    """Mean and percentile-bootstrap interval over queries (scipy.stats.bootstrap); NaNs dropped."""
    v = np.asarray(values, float)
    v = v[np.isfinite(v)]
    if len(v) == 0:
        return float("nan"), float("nan"), float("nan")
    if len(v) < 2 or np.ptp(v) == 0:
        return float(v.mean()), float(v.mean()), float(v.mean())
    r = stats.bootstrap((v,), np.mean, confidence_level=confidence, n_resamples=resamples, method="percentile",
                        random_state=np.random.default_rng(seed))
    return float(v.mean()), float(r.confidence_interval.low), float(r.confidence_interval.high)


def face_share(cmap: np.ndarray, mask: np.ndarray) -> float:
    """Face share ratio of one map: (share of the map's sum inside the mask) / (mask's share of the area).

    `cmap` (h, w) is spread evenly over its cells at the mask's resolution (H, W).
    """
    H, W = mask.shape
    cell = F.adaptive_avg_pool2d(torch.as_tensor(mask)[None, None], cmap.shape).numpy()[0, 0]
    total = float(cmap.sum())
    area = float(mask.mean())
    if area == 0 or total == 0:
        return float("nan")
    return float((cmap * cell).sum()) / total / area


# ---------------------------------------------------------------- one run

class _Test:
    """A run's test images (query, then gallery) with their face masks."""

    def __init__(self, cfg: Config, boxes: dict[str, np.ndarray], anon_boxes: dict[str, np.ndarray] | None = None):
        recs = rundir.records(cfg)
        self.q = recs[recs.split == "query"].reset_index(drop=True)
        self.g = recs[recs.split == "gallery"].reset_index(drop=True)
        self.all = pd.concat([self.q, self.g], ignore_index=True)
        root = dataset_root(cfg)
        self.raws = [(root / p).read_bytes() for p in self.all.image]
        self.images = [images.decode_image(raw, root / p) for raw, p in zip(self.raws, self.all.image)]
        self.boxes = boxes  # the faces: where the face share is read
        self.anon_boxes = boxes if anon_boxes is None else anon_boxes  # where the interventions anonymize
        self.nq = len(self.q)


def _mean(values: list[float]) -> float:
    """The mean of the values that are numbers (a face share is NaN where the map has no mass), NaN if none."""
    kept = [v for v in values if not np.isnan(v)]
    return float(np.mean(kept)) if kept else float("nan")


def _model_rows(run: str, arch: str, trained_on: str, model: nn.Module, size, test: _Test, cfg: Config,
                pool, interventions: bool = True) -> tuple[list[dict], list[dict], dict]:
    """Face share ratios and (unless told not to) interventions of one model on one run's test set."""
    a = cfg.attribution
    x = to_input(test.raws, size)
    feats = embed(model, x)
    nq = test.nq
    sim = cosine(feats[:nq], feats[nq:])
    true, kept = true_match_mask(test.q, test.g)
    ap0 = stage5_ap(feats[:nq], feats[nq:], test.q, test.g, cfg, arch)
    masks = [box_mask(test.boxes.get(p, np.empty((0, 4))), im.shape[:2], size) for p, im in
             zip(test.all.image, test.images)]
    has_face = np.array([m.any() for m in masks])
    # pairs: every true match, and the hardest false match (most similar other identity)
    hard = np.where(kept & ~true, sim, -np.inf).argmax(1)
    name, layer = display_name(arch), registry.model(arch).gradcam_layer
    method = "decomposition" if decomposable(arch) else "grad-cam"
    share_rows = []
    pairs = [(i, j, "true match") for i in range(nq) for j in np.flatnonzero(true[i])][:a.max_pairs]
    pairs += [(i, int(hard[i]), "hardest false match") for i in range(nq)][:a.max_pairs]
    if method == "decomposition":
        G = torch.cat([location_features(model, x[s:s + 32]) for s in range(0, len(x), 32)])
        for i, j, kind in pairs:
            cq, cg, cos = contributions(G[i], G[nq + j])
            vals = [face_share(m.numpy(), masks[k]) for m, k in ((cq, i), (cg, nq + j)) if has_face[k]]
            share_rows.append(dict(query=i, gallery=j, kind=kind, method=method, cosine=float(cos), ratio=_mean(vals)))
    else:
        share_rows += _pair_shares(gradcam_maps(model, *_both_ways(x, feats, pairs, nq), layer=layer), pairs, masks,
                                   has_face, sim, nq, method)
    matches = [p for p in pairs if p[2] == "true match"]  # the pixel-level share: true matches only (its cost)
    share_rows += _pair_shares(gradient_input_maps(model, *_both_ways(x, feats, matches, nq), reference(size)), matches,
                               masks, has_face, sim, nq, GRADIENT_INPUT)
    share = pd.DataFrame(share_rows).groupby(["query", "kind", "method"], as_index=False, sort=False).agg(
        ratio=("ratio", "mean"), cosine=("cosine", "mean"))
    share = share.assign(run=run, model=name, trained_on=trained_on)
    inter = []
    anon_feats = {}
    for t in a.techniques if interventions else ():
        anon = anonymized_copy(test.raws, test.all, test.anon_boxes, technique_writer(cfg, t), pool, cfg.seed)
        changed = [k for k, (im, orig) in enumerate(zip(anon, test.raws)) if im is not orig]
        fa = feats.clone()  # images without a face box are unchanged: only the others are embedded again
        if changed:
            fa[changed] = embed(model, to_input([anon[k] for k in changed], size))
        anon_feats[t] = (anon, fa)
        for placement in PLACEMENTS:
            fq = fa[:nq] if placement in ("query", "both") else feats[:nq]
            fg = fa[nq:] if placement in ("gallery", "both") else feats[nq:]
            s1 = cosine(fq, fg)
            ap1 = stage5_ap(fq, fg, test.q, test.g, cfg, arch)
            for i in range(nq):
                if not true[i].any():
                    continue
                inter.append(dict(run=run, model=name, trained_on=trained_on, technique=t, placement=placement,
                                  query=i, image=test.q.image[i], sim_true=float(sim[i, true[i]].mean()),
                                  sim_true_after=float(s1[i, true[i]].mean()), ap=ap0[i], ap_after=ap1[i]))
    state = dict(x=x, feats=feats, sim=sim, kept=kept, true=true, anon=anon_feats, ap0=ap0, method=method, arch=arch)
    return share.to_dict("records"), inter, state


def _ranked(arch: str, model: nn.Module, size, test: _Test, st: dict, technique: str, top: int, cfg: Config
            ) -> tuple[list[dict], dict[str, np.ndarray]]:
    """Top-`top` gallery lists (orig and anonymized) with saliency, for the best, median and worst query by AP change."""
    name, nq = display_name(arch), test.nq
    files, fa = st["anon"][technique]
    anon = [images.decode_image(f, "anonymized") for f in files]
    s1 = cosine(fa[:nq], fa[nq:])
    ap1 = stage5_ap(fa[:nq], fa[nq:], test.q, test.g, cfg, arch)
    delta = ap1 - st["ap0"]
    ok = np.flatnonzero(np.isfinite(delta))
    if not len(ok):
        return [], {}
    order = ok[np.argsort(delta[ok], kind="stable")]
    cases = {"best": order[-1], "median": order[len(order) // 2], "worst": order[0]}
    rows, arrays = [], {}
    xa = to_input(files, size)
    G = {}
    if st["method"] == "decomposition":
        G = {"orig": lambda idx: location_features(model, st["x"][idx]),
             "anon": lambda idx: location_features(model, xa[idx])}
    for case, i in cases.items():
        for view, feats, sims, imgs, x in (("orig", st["feats"], st["sim"], test.images, st["x"]),
                                           ("anon", fa, s1, anon, xa)):
            row = np.where(st["kept"][i], sims[i], -np.inf)
            ranked = np.argsort(-row, kind="stable")[:top]
            idx = [nq + int(j) for j in ranked]
            if G:
                gq = G[view]([i])[0]
                gmaps = torch.stack([contributions(gq, gg)[1] for gg in G[view](idx)]).numpy()
            else:
                gmaps = gradcam_maps(model, x[idx], feats[i:i + 1].repeat(len(idx), 1),
                                     layer=registry.model(arch).gradcam_layer)
            key = f"{name}/{case}/{view}"
            arrays[f"{key}/query"] = np.ascontiguousarray(imgs[i][..., ::-1])
            for r, (j, m) in enumerate(zip(ranked, gmaps)):
                arrays[f"{key}/{r}/image"] = np.ascontiguousarray(imgs[nq + int(j)][..., ::-1])
                arrays[f"{key}/{r}/saliency"] = m.astype(np.float32)
                rows.append(dict(model=name, case=case, view=view, query=int(i), query_image=test.q.image[i],
                                 ap=float(st["ap0"][i]) if view == "orig" else float(ap1[i]),
                                 ap_change=float(delta[i]), rank=r + 1, gallery_image=test.g.image[int(j)],
                                 correct=bool(st["true"][i, int(j)]), similarity=float(sims[i, int(j)]), key=key))
    return rows, arrays


def analyse_run(cfg: Config, run: str, models: list[str], ranked: bool = False, progress: bool = False,
                seed: int | None = None, variants: tuple[str, ...] = ("orig", "anon"), interventions: bool = True
                ) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, dict]:
    """Face share ratios, interventions (unless told not to; ranked lists need them) of one run's models
    trained on `variants`, at one training seed (the first by default)."""
    boxes = face_boxes(cfg)
    test = _Test(cfg, boxes, intervention_boxes(cfg))
    pool = (swap_pool(cfg, rundir.records(cfg), boxes) if "swap" in cfg.attribution.techniques
            and (interventions or ranked) else None)
    shares, inters, ranks, arrays = [], [], [], {}
    for m in models:
        for v in variants:
            model, size = load_trained(rundir.stage_train(cfg, v, m, progress, seed), "cpu")
            s, i, st = _model_rows(run, m, v, model, size, test, cfg, pool, interventions or ranked)
            shares += s
            inters += i
            if ranked and v == "orig":
                r, arr = _ranked(m, model, size, test, st, cfg.anonymization.technique
                                 if cfg.anonymization.technique in cfg.attribution.techniques
                                 else cfg.attribution.techniques[0], cfg.attribution.top, cfg)
                ranks += r
                arrays.update(arr)
    return pd.DataFrame(shares), pd.DataFrame(inters), pd.DataFrame(ranks), arrays


# ---------------------------------------------------------------- sanity checks (Adebayo et al. 2018)

SANITY = {"random weights": "model randomization", "shuffled identities": "data randomization"}


def shuffled_records(recs: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The records with the training images' identities permuted among them (seeded): labels that no longer
    go with the pictures (the data randomization test)."""
    out = recs.copy()
    train = np.flatnonzero((out.split == "train").to_numpy())
    rng = np.random.default_rng([seed, 11])
    out.loc[out.index[train], "pid"] = out.pid.to_numpy()[train][rng.permutation(len(train))]
    return out


def sanity_models(cfg: Config, model: str, seed: int, progress: bool = False) -> dict[str, tuple[nn.Module, tuple]]:
    """The two models a saliency measure must tell from the trained one: the same architecture with its
    weights drawn at random (model randomization), and one trained as the run's on shuffled identities
    (data randomization, kept in attribution/sanity/)."""
    from ..models.zoo import build_model

    info = json.loads((rundir.stage_train(cfg, "orig", model, progress, seed) / "pids.json").read_text())
    size = tuple(info["input_size"])  # the trained model's, as `load_trained` reads it (its weights are not needed)
    torch.manual_seed(seed)  # every weight drawn again, as the architecture initialises them
    random = build_model(model, len(info["pids"]), "none").eval()
    tcfg = trainings(cfg)[model]
    out = attribution_dir(cfg) / "sanity" / model / f"seed{seed}"
    conf = {**table.conf(cfg, "train", model, "orig"), "identities": "shuffled"}
    rundir.train_stamped(rundir.stage_generate(cfg), lambda: shuffled_records(rundir.records(cfg), seed), out, tcfg,
                         conf, seed, progress)
    shuffled, _ = load_trained(out, "cpu")
    return {"random weights": (random, size), "shuffled identities": (shuffled, size)}


def ratio_rows(cfg: Config, run: str, nets: list[tuple[str, str, nn.Module, tuple]]) -> pd.DataFrame:
    """Face share ratios alone (no interventions) of models on one run's test set; each net is (registered
    model, what `trained_on` calls it, the network, its input size)."""
    test = _Test(cfg, face_boxes(cfg), intervention_boxes(cfg))
    rows = []
    for arch, label, net, size in nets:
        rows += _model_rows(run, arch, label, net, size, test, cfg, None, interventions=False)[0]
    return pd.DataFrame(rows)


def sanity_rows(cfg: Config, run: str, models: list[str], seed: int, progress: bool = False) -> pd.DataFrame:
    """Face share ratios of each model's two randomized twins on one run's test set (`trained_on` names the
    randomization)."""
    return ratio_rows(cfg, run, [(m, kind, net, size) for m in models
                                 for kind, (net, size) in sanity_models(cfg, m, seed, progress).items()])


MODEL_CONTROLS_RUN = "model controls"  # the face share summary's run for the face-only and face-blind models


def model_control_rows(cfg: Config, progress: bool = False) -> pd.DataFrame:
    """Face share ratios of the face-only and face-blind models (`teaching.model_control_config`), first seed,
    each with `trained_on` 'face only' or 'face blind'."""
    parts = []
    for visible in cfg.teaching.model_controls:
        sub = teaching.model_control_config(cfg, visible)
        s = sub.training.seeds[0]
        nets = [(m, visible.replace("_", " "), *load_trained(rundir.stage_train(sub, "orig", m, progress, s), "cpu"))
                for m in trainings(sub)]
        parts.append(ratio_rows(sub, MODEL_CONTROLS_RUN, nets).assign(control_seed=s))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


REMOVAL = ("truth", "zero")  # the face removed completely: the true boxes painted black
REMOVAL_COLUMNS = ["visible", "model", "seed", "boxes", "technique", "orig_orig", "after", "drop", "floor"]


def removal_copies(sub: Config) -> tuple[_Test, dict[tuple[str, str], list[bytes]]]:
    """A model-level control's test images and, per (boxes, technique), their files with only the face anonymized:
    on stage 1's boxes and on the true ones, by the run's technique and by complete removal (`REMOVAL`'s)."""
    test = _Test(sub, face_boxes(sub))
    where = {"detected": boxes_by_image(rundir.load_detections(sub)), "truth": face_boxes(sub)}
    techniques = list(dict.fromkeys([sub.anonymization.technique, REMOVAL[1]]))
    pools = {b: swap_pool(sub, test.all, bx) if "swap" in techniques else None for b, bx in where.items()}
    return test, {(b, t): anonymized_copy(test.raws, test.all, bx, technique_writer(sub, t), pools[b], sub.seed)
                  for b, bx in where.items() for t in techniques}


def stage5_features(model: nn.Module, raws: list[bytes], nq: int, size, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Query and gallery features of a test set's files (query first) as stage 5 extracts them: each split in
    batches of `batch_size` on one torch thread (the sweep's evaluation jobs run so: `teaching._train_one`), so that
    a copy stage 5 tested gives its numbers to the digit."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        x = to_input(raws, size)
        return embed(model, x[:nq], batch_size), embed(model, x[nq:], batch_size)
    finally:
        torch.set_num_threads(before)


def model_control_removal(cfg: Config, progress: bool = False) -> pd.DataFrame:
    """The face-only and face-blind models' mAP (stage 5's features and distance: `stage5_features`) on each of
    `removal_copies`, per model and seed, beside their mAP on the originals and the world's random-ranking floor.
    The run's technique on stage 1's boxes is the protocol's copy (chapter 7's orig→anon, the same numbers); the
    true boxes zeroed leave the face-only model no face."""
    rows = []
    for visible in cfg.teaching.model_controls:
        sub = teaching.model_control_config(cfg, visible)
        floor = evaluation.random_ranking_map(rundir.records(sub), sub.seed)
        test, copies = removal_copies(sub)
        nq, batch = test.nq, sub.evaluation.batch_size
        for m, t in trainings(sub).items():
            for s in t.seeds:
                model, size = load_trained(rundir.stage_train(sub, "orig", m, progress, s), "cpu")
                ap0 = 100 * np.nanmean(stage5_ap(*stage5_features(model, test.raws, nq, size, batch), test.q, test.g,
                                                 sub, m))
                for (b, tech), raws in copies.items():
                    ap = 100 * np.nanmean(stage5_ap(*stage5_features(model, raws, nq, size, batch), test.q, test.g,
                                                    sub, m))
                    rows.append(dict(visible=visible, model=display_name(m), seed=s, boxes=b, technique=tech,
                                     orig_orig=ap0, after=ap, drop=ap0 - ap, floor=floor))
    return pd.DataFrame(rows, columns=REMOVAL_COLUMNS)


def sanity_checks(summary: pd.DataFrame, kind: str = "true match") -> pd.DataFrame:
    """Per model and randomization: the trained model's face share ratio beside its randomized twin's, and
    whether the measure changed (intervals apart): a saliency measure that does not change fails the check."""
    rows = []
    s = summary[summary.kind == kind]
    for r in s[s.trained_on.isin(list(SANITY))].itertuples():
        base = s[(s.run == r.run) & (s.model == r.model) & (s.method == r.method) & (s.trained_on == "orig")
                 & (s.control_seed == r.control_seed)]
        if base.empty:
            continue
        b = base.iloc[0]
        rows.append(dict(model=r.model, method=r.method, run=r.run, control_seed=r.control_seed, check=SANITY[r.trained_on],
                         trained=b.ratio, trained_low=b.ratio_low, trained_high=b.ratio_high, randomized=r.ratio,
                         randomized_low=r.ratio_low, randomized_high=r.ratio_high,
                         changed=bool(r.ratio_high < b.ratio_low or r.ratio_low > b.ratio_high)))
    return pd.DataFrame(rows, columns=["model", "method", "run", "control_seed", "check", "trained", "trained_low",
                                       "trained_high", "randomized", "randomized_low", "randomized_high", "changed"])


# ---------------------------------------------------------------- controls and the stage

def control_config(cfg: Config, share: float) -> Config:
    """The teaching sweep's run at `share` (`teaching.sweep_config`), keeping `attribution.control_models`
    beside training.model when that list is given (empty: every model the controls train)."""
    sub = teaching.sweep_config(cfg, share)
    if not cfg.attribution.control_models:
        return sub
    data = to_dict(sub)
    data["models"] = {m: s for m, s in sub.models.items() if m in cfg.attribution.control_models}
    return from_dict(data)


def control_seeds(cfg: Config) -> list[int]:
    """The training seeds analysed in each control: the first `attribution.control_seeds` of training.seeds (0: all)."""
    return list(cfg.training.seeds[:cfg.attribution.control_seeds or None])


def summarize(shares: pd.DataFrame, inter: pd.DataFrame, confidence: float = 0.95, seed: int = 0
              ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Mean and bootstrap interval over queries: face share ratio per (run, model, trained_on, kind, seed);
    change of true-match similarity and of AP per (run, model, trained_on, technique, placement)."""
    rows = []
    for key, g in shares.groupby(["run", "control_seed", "model", "trained_on", "method", "kind"], sort=False):
        m, lo, hi = bootstrap_ci(g.ratio, confidence, seed)
        rows.append(dict(zip(["run", "control_seed", "model", "trained_on", "method", "kind"], key), ratio=m,
                         ratio_low=lo, ratio_high=hi, queries=int(g.ratio.notna().sum())))
    share_sum = pd.DataFrame(rows)
    rows = []
    keys = ["run", "control_seed", "model", "trained_on", "technique", "placement"]
    for key, g in inter.groupby(keys, sort=False):
        ds, ds_lo, ds_hi = bootstrap_ci(g.sim_true_after - g.sim_true, confidence, seed)
        da, da_lo, da_hi = bootstrap_ci(100 * (g.ap_after - g.ap), confidence, seed)
        rows.append(dict(zip(keys, key), mAP=100 * g.ap.mean(), mAP_after=100 * g.ap_after.mean(),
                         sim_change=ds, sim_change_low=ds_lo, sim_change_high=ds_hi,
                         ap_change=da, ap_change_low=da_lo, ap_change_high=da_hi, queries=len(g)))
    return share_sum, pd.DataFrame(rows)


def stage_attribution(cfg: Config, progress: bool = False) -> Path:
    """Chapter 8: face share ratios, interventions and ranked lists of every model, on this run and on the
    controls (face_identity_share 0 and 1); returns attribution/summary.json (written last)."""
    out_dir = attribution_dir(cfg)
    out = out_dir / "summary.json"
    a = cfg.attribution
    conf = table.conf(cfg, "attribution")
    files = [out_dir / f for f in FILES]
    if finished(out, conf, cfg.seed, [out, *files]):
        return out
    torch.set_grad_enabled(True)
    shares, inter, ranks, arrays = analyse_run(cfg, "default", list(trainings(cfg)), ranked=True, progress=progress)
    shares["control_seed"], inter["control_seed"] = cfg.training.seeds[0], cfg.training.seeds[0]
    runs = {"default": str(cfg.run_path)}
    for share in a.control_shares:
        sub = control_config(cfg, share)
        for s in control_seeds(cfg):
            label = f"share {share:g}"
            sh, it, _, _ = analyse_run(sub, label, list(trainings(sub)), progress=progress, seed=s,
                                       variants=("orig",))  # the controls' face share ratios and interventions
            shares = pd.concat([shares, sh.assign(control_seed=s)], ignore_index=True)
            inter = pd.concat([inter, it.assign(control_seed=s, face_identity_share=float(share))], ignore_index=True)
            runs[f"{label} seed {s}"] = str(sub.run_path)
    for visible in cfg.teaching.model_controls:  # their models are read by the face share and removal rows
        runs[f"model control {visible}"] = str(teaching.model_control_config(cfg, visible).run_path)
    if a.control_shares:  # the sanity checks, on the positive control (where the face carries identity)
        top = max(a.control_shares)
        sub, s = control_config(cfg, top), control_seeds(cfg)[0]
        sh = sanity_rows(sub, f"share {top:g}", list(trainings(sub)), s, progress)
        shares = pd.concat([shares, sh.assign(control_seed=s), model_control_rows(cfg, progress)], ignore_index=True)
    share_sum, inter_sum = summarize(shares, inter, a.confidence, cfg.seed)
    fp = tree_digest((k, file_sha256(p)) for r in dict.fromkeys(runs.values()) for k, p in
                     ((f"{r}:{q.relative_to(Path(r)).as_posix()}", q) for q in sorted(Path(r).glob("models/*/*/*/model.pt"))))
    fp = tree_digest([("models", fp), ("data", fingerprint_files(dataset_root(cfg)))])
    meta = make_meta("attribution", conf, cfg.seed, fp, runs=runs)
    write_csv(out_dir / "face_share.csv", shares, meta)
    write_csv(out_dir / "face_share_summary.csv", share_sum, meta)
    write_csv(out_dir / "interventions.csv", inter, meta)
    write_csv(out_dir / "interventions_summary.csv", inter_sum, meta)
    write_csv(out_dir / "ranked_lists.csv", ranks, meta)
    write_csv(out_dir / "control_interventions.csv", control_intervention_means(inter), meta)
    write_csv(out_dir / "model_control_removal.csv", model_control_removal(cfg, progress), meta)
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    atomic_write_bytes(out_dir / "ranked_lists.npz", buf.getvalue())
    write_json(out, {"meta": meta, "files": list(FILES)})
    return out


def load(cfg: Config) -> dict[str, pd.DataFrame]:
    """The stage's tables (computed when absent) by name, and the ranked lists' arrays as `arrays`."""
    d = stage_attribution(cfg).parent
    out = {n: pd.read_csv(d / f"{n}.csv") for n in ("face_share", "face_share_summary", "interventions",
                                                    "interventions_summary", "ranked_lists", "control_interventions",
                                                    "model_control_removal")}
    out["arrays"] = dict(np.load(d / "ranked_lists.npz"))
    return out


# ---------------------------------------------------------------- what the chapter concludes

def control_separation(summary: pd.DataFrame) -> pd.DataFrame:
    """Whether the controls tell faces with and without identity apart, per model and method: the face share ratios
    of true matches (models trained on original images) of the first control (`low`) and the last (`high`),
    `separated` when every interval of the first lies below every interval of the last (all seeds), `reversed` when
    the first's mean ratio (over seeds) is higher than the last's: the measure points the wrong way.

    `summary` is `face_share_summary`; returns one row per model and method: model, method, low, high, separated,
    reversed.
    """
    ctrl = summary[(summary.run != "default") & (summary.run != MODEL_CONTROLS_RUN) & (summary.trained_on == "orig")]
    rows = []
    for (m, method), d in ctrl[ctrl.kind == "true match"].groupby(["model", "method"], sort=False):
        low, high = d.run.iloc[0], d.run.iloc[-1]
        below = d[d.run == low].ratio_high.max() < d[d.run == high].ratio_low.min()
        rows.append({"model": m, "method": method, "low": low, "high": high, "separated": bool(below),
                     "reversed": bool(d[d.run == low].ratio.mean() > d[d.run == high].ratio.mean())})
    return pd.DataFrame(rows, columns=["model", "method", "low", "high", "separated", "reversed"])


INTERVENTION_COLUMNS = ["face_identity_share", "control_seed", "model", "technique", "ap_lost", "queries"]


def control_intervention_means(inter: pd.DataFrame) -> pd.DataFrame:
    """Per control world, training seed, model and technique: the AP (points, mean over queries) lost when only
    the faces are anonymized, in query and gallery, for models trained on original images (`INTERVENTION_COLUMNS`)."""
    if "face_identity_share" not in inter or inter.empty:
        return pd.DataFrame(columns=INTERVENTION_COLUMNS)
    c = inter[inter.face_identity_share.notna() & (inter.trained_on == "orig") & (inter.placement == "both")]
    c = c.assign(ap_lost=100 * (c.ap - c.ap_after))
    out = c.groupby(["face_identity_share", "control_seed", "model", "technique"], as_index=False, sort=False).agg(
        ap_lost=("ap_lost", "mean"), queries=("ap_lost", "size"))
    return out[INTERVENTION_COLUMNS]


def control_interventions(means: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The face-only intervention at the lowest share (negative control) and the highest (positive), per model and
    technique: the AP lost, its mean and SD over training seeds and a one-sided t-test over seeds
    (`statistics.seed_drop`); `means` is `control_intervention_means`. Empty with fewer than two shares."""
    cols = ["control", "model", "technique", "face_identity_share", "n_seeds", "mean_drop", "seed_sd", "p_value",
            "found", "why_not_shown"]
    shares = sorted(means.face_identity_share.unique()) if len(means) else []
    if len(shares) < 2:
        return pd.DataFrame(columns=cols)
    rows = []
    for (model, technique), g in means.groupby(["model", "technique"], sort=False):
        for role, share in (("negative", shares[0]), ("positive", shares[-1])):
            d = g[g.face_identity_share == share].sort_values("control_seed").ap_lost.to_numpy(float)
            rows.append({"control": role, "model": model, "technique": technique, "face_identity_share": float(share),
                         **statistics.seed_drop(d, alpha)})
    return pd.DataFrame(rows, columns=cols)


def swap_and_removal(summary: pd.DataFrame, model: str, technique: str) -> dict[str, float]:
    """Change of AP (points) of `model` trained on original images, faces anonymized in query and gallery, under
    the face swap (`swap`) and under the run's `technique` (`removal`); empty when either was not run.

    `summary` is `interventions_summary` of one run (the run's own, `run == "default"`).
    """
    d = summary[(summary.model == model) & (summary.trained_on == "orig") & (summary.placement == "both")]
    change = d.drop_duplicates("technique").set_index("technique").ap_change
    if "swap" not in change.index or technique not in change.index:
        return {}
    return {"swap": float(change["swap"]), "removal": float(change[technique])}
