"""Does anonymization protect anyone? Two attackers, a strengths sweep and the privacy-utility front.

Beyond the paper, which measures only what anonymization costs re-ID (utility). Every point is a
technique at one strength, applied with the run's own detections (a missed face stays in the
image); both attackers are then scored on every ground-truth face of the test identities, so a
detector miss counts as a leak:

- the face attacker: dlib's face descriptor on chips cut from the ground-truth boxes
  (`reidlib.face_attack`); it knows nothing of the anonymization;
- the head attacker: a re-ID model (`privacy.head_model`, fine-tuned from ImageNet) trained and tested on head crops
  of the anonymized copy, through `reidlib.training.train` and `reidlib.evaluation.extract`: it
  knows the anonymization, as the paper's anon/anon protocol does.

Utility is the run's re-ID model's mAP on each copy (orig->anon), and anon/anon where a model was
trained on it. The controls rerun the head attacker on the teaching chapter's generated worlds at
`face_identity_share` 0 and 1 (`teaching.sweep_config`).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..core import images
from ..core.boxes import iou_matrix
from ..core.config import Config, PrivacyConfig, TrainingConfig, derive
from ..core.runfiles import (
    dataset_root,
    detections_path,
    file_sha256,
    fingerprint_files,
    finished,
    make_meta,
    output_folder,
    privacy_dir,
    read_json,
    tree_digest,
    write_csv,
    write_json,
)
from ..models import faces as dlib_faces
from ..models import zoo
from ..pipeline import rundir, table
from ..stages import anonymize, evaluation, training
from . import face_attack, teaching
from .attribution import bootstrap_ci

FARS = (1e-2, 1e-3)
SCORES = ["rank1", "map", *(f"tar_far{f:g}" for f in FARS)]
CEILING_COLUMNS = ["source", "width", "probes", *SCORES]


@dataclass(frozen=True)
class Point:
    """One anonymization at one strength (`technique` 'none' = the originals)."""

    technique: str
    strength: float | None = None  # blur: sigma / face width; pixelate: blocks across

    @property
    def label(self) -> str:
        return self.technique if self.strength is None else f"{self.technique}_{self.strength:g}"

    def params(self) -> dict:
        """The keyword arguments of `reidlib.anonymize.anonymize_image` for this point."""
        strength = {"blur_width_ratio": self.strength, "pixelate_size": int(self.strength or 0)}
        return anonymize.technique_params(self.technique, strength)


def points(p: PrivacyConfig) -> list[Point]:
    """The originals, then every technique at every strength of the config."""
    return ([Point("none")] + [Point("blur", float(r)) for r in p.blur_ratios]
            + [Point("pixelate", float(int(s))) for s in p.pixelate_sizes] + [Point(t) for t in p.techniques])


def run_point(cfg: Config) -> Point:
    """The run's own anonymization (stage 3) as a point."""
    a = cfg.anonymization
    strength = {"blur": a.blur_width_ratio, "pixelate": float(a.pixelate_size)}.get(a.technique)
    return Point(a.technique, strength)


def test_faces(cfg: Config) -> pd.DataFrame:
    """Every ground-truth face of the dataset with its record (image, pid, camid, split, x0..y1)."""
    truth = rundir.ground_truth(cfg)
    if truth is None:
        raise ValueError(f"the privacy chapter needs ground-truth face boxes (face_boxes.csv in {dataset_root(cfg)}): "
                         f"use the generated dataset")
    return truth.merge(rundir.records(cfg), on="image").reset_index(drop=True)


def missed(faces: pd.DataFrame, detections: pd.DataFrame, iou: float = 0.5) -> np.ndarray:
    """Whether each ground-truth face has no detection overlapping it by `iou` (it stays in the image)."""
    out = np.ones(len(faces), bool)
    by_image = {k: g[["x0", "y0", "x1", "y1"]].to_numpy(float) for k, g in detections.groupby("image")}
    for i, r in enumerate(faces.itertuples()):
        boxes = by_image.get(r.image)
        if boxes is not None and len(boxes):
            out[i] = iou_matrix(np.array([[r.x0, r.y0, r.x1, r.y1]], float), boxes).max() < iou
    return out


def _rgb(path: Path) -> np.ndarray:
    return images.read_rgb(path)


def face_features(root: Path, faces: pd.DataFrame, align: str = "box", cache: dict | None = None) -> np.ndarray:
    """dlib descriptors of the ground-truth faces of the copy at `root` (chips seen before come from `cache`)."""
    cache = {} if cache is None else cache
    chips = [dlib_faces.face_chip(_rgb(root / r.image), (r.x0, r.y0, r.x1, r.y1), align) for r in faces.itertuples()]
    keys = [c.tobytes() for c in chips]
    new = [i for i, k in enumerate(keys) if k not in cache]
    for i, f in zip(new, dlib_faces.describe([chips[i] for i in new])):
        cache[keys[i]] = f
    return np.stack([cache[k] for k in keys]) if keys else np.zeros((0, 128), np.float32)


def head_crop(img: np.ndarray, box, scale: float, size: tuple[int, int]) -> np.ndarray:
    """The head around a face box: a square of side `scale` x box width, centred on the box, resized to `size`."""
    x0, y0, x1, y1 = (float(v) for v in box)
    side = scale * max(x1 - x0, 1.0)
    h, w = size
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    m = np.array([[w / side, 0, w / 2 - cx * w / side], [0, h / side, h / 2 - cy * h / side]], np.float64)
    return cv2.warpAffine(img, m, (w, h), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REPLICATE)


def write_heads(root: Path, faces: pd.DataFrame, out: Path, scale: float, size: tuple[int, int]) -> Path:
    """Head crops of every face of the copy at `root`, written under `out` at the same relative paths."""
    stamp = out / ".complete"
    if stamp.is_file():
        return out
    for r in faces.itertuples():
        img = images.read_image(root / r.image)
        crop = head_crop(img, (r.x0, r.y0, r.x1, r.y1), scale, size)
        dest = out / r.image
        dest.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(dest), crop, [cv2.IMWRITE_JPEG_QUALITY, 95])
    stamp.write_text("")
    return out


def head_training(cfg: Config) -> TrainingConfig:
    """The head attacker's recipe: `privacy.head_model` fine-tuned from `head_pretrained` at `privacy.head_size`
    with cross-entropy, the run's optimiser and batch size (from scratch on 32 px heads it stayed at chance)."""
    p, t = cfg.privacy, cfg.training
    return TrainingConfig(model=p.head_model, epochs=p.head_epochs, batch_size=t.batch_size, image_size=p.head_size,
                          lr=p.head_lr, weight_decay=t.weight_decay, lr_decay=t.lr_decay,
                          lr_step=max(p.head_epochs - 2, 1), pretrained=p.head_pretrained,
                          frozen_blocks=p.head_frozen_blocks, device=t.device)


def head_attack(heads: Path, faces: pd.DataFrame, model_out: Path, tcfg: TrainingConfig, seed: int) -> dict:
    """Train the head attacker on the train ids' heads, score it on the test ids' heads."""
    training.train(heads, faces, model_out, tcfg, seed, progress=False)
    model, size = zoo.load_trained(model_out, "cpu")
    test = faces[faces.split != "train"].reset_index(drop=True)
    feats = evaluation.extract(model, heads, test, size).numpy()
    return face_attack.attack_scores(feats, test, FARS)


def _anon_copy(cfg: Config, point: Point, dets: pd.DataFrame) -> Path:
    """The dataset anonymized at `point` with the run's detections: stage 3's copy for the run's own point."""
    if point.technique == "none":
        return rundir.stage_generate(cfg)
    if point == run_point(cfg):
        return rundir.stage_anonymize(cfg, progress=False)
    out = privacy_dir(cfg) / "anon" / point.label  # the privacy folder is stamped with the whole config
    a = cfg.anonymization
    if not (out / "manifest.json").is_file():
        writer = replace(rundir.writer(cfg), technique=point.technique, params=point.params())  # written as stage 3's
        anonymize.anonymize_dataset(dataset_root(cfg), dets, out, writer, images=list(rundir.records(cfg).image),
                                    progress=False, processes=a.processes)
    return out


def utility(cfg: Config, point: Point, root: Path, protocols: pd.DataFrame) -> dict:
    """Re-ID mAP / Rank-1 of the run's model on the copy (orig->anon), and anon/anon where trained on it."""
    model = cfg.training.model
    row = protocols.set_index("protocol")
    if point.technique == "none":
        return {"map_orig_anon": row.loc["orig_orig", "mAP"], "reid_rank1_orig_anon": row.loc["orig_orig", "rank1"],
                "map_anon_anon": row.loc["orig_orig", "mAP"]}
    if point == run_point(cfg):
        return {"map_orig_anon": row.loc["orig_anon", "mAP"], "reid_rank1_orig_anon": row.loc["orig_anon", "rank1"],
                "map_anon_anon": row.loc["anon_anon", "mAP"]}
    e, recs = cfg.evaluation, rundir.records(cfg)
    net, size = zoo.load_trained(rundir.stage_train(cfg, "orig", progress=False), cfg.training.device)
    res = evaluation.evaluate_model(net, size, root, recs, e)
    out = {"map_orig_anon": res["mAP"], "reid_rank1_orig_anon": res["rank1"], "map_anon_anon": np.nan}
    if cfg.privacy.retrain:
        trained = privacy_dir(cfg) / "models" / point.label / model
        training.train(root, recs, trained, cfg.training, cfg.seed, progress=False)
        net, size = zoo.load_trained(trained, cfg.training.device)
        out["map_anon_anon"] = evaluation.evaluate_model(net, size, root, recs, e)["mAP"]
    return out


def ceiling_config(cfg: Config, width: int) -> Config:
    """A small generated set (the teaching chapter's size) whose faces are all `width` pixels wide,
    sharp, frontal and uncovered (the attacker's ceiling at that width)."""
    t = cfg.teaching
    return derive(cfg, privacy_dir(cfg) / "ceiling" / f"w{width}",
                  dataset={"name": "synthetic", "root": "", "preset": "easy_faces", "face_size": [width, width],
                           "train_ids": 2, "test_ids": t.test_ids, "cameras": t.cameras})


def face_ceiling(cfg: Config, faces: pd.DataFrame, feats: np.ndarray) -> pd.DataFrame:
    """The face attacker on unmodified faces by face width: the run's own widths, then `privacy.ceiling_sizes`."""
    rows = []
    test = faces[faces.split != "train"].reset_index(drop=True)
    width = (test.x1 - test.x0).to_numpy()
    hits = face_attack.identification_hits(feats, test.pid, test.camid)
    for label, lo, hi in (("<12", 0, 12), ("12-15", 12, 16), (">=16", 16, np.inf)):
        sel = hits[(width[hits.index] >= lo) & (width[hits.index] < hi)]
        if len(sel):
            rows.append(dict(source="this run", width=label, probes=len(sel), rank1=100 * float(sel.mean())))
    for w in cfg.privacy.ceiling_sizes:
        sub = ceiling_config(cfg, int(w))
        rundir.stage_generate(sub)
        sf = test_faces(sub)
        sf = sf[sf.split != "train"].reset_index(drop=True)
        f = face_features(rundir.stage_generate(sub), sf, cfg.privacy.align)
        scores = face_attack.attack_scores(f, sf, FARS)
        rows.append(dict(source="generated at one width", width=f"{int(w)}", probes=face_attack.probe_count(sf.pid, sf.camid),
                         **scores))
    return pd.DataFrame(rows, columns=CEILING_COLUMNS)


def _control_worlds(cfg: Config):
    """The control worlds (`privacy.control_shares` of the teaching sweep): (share, {'original', 'anonymized': the
    copy's root}, the ground-truth faces, the Rank-1 of chance on the test ids' faces, the ones the attackers score)."""
    for share in cfg.privacy.control_shares:
        sub = teaching.sweep_config(cfg, float(share))
        roots = {"original": rundir.stage_generate(sub), "anonymized": rundir.stage_anonymize(sub, progress=False)}
        faces = test_faces(sub)
        yield share, roots, faces, face_attack.chance_scores(faces[faces.split != "train"], FARS)["rank1"]


def controls(cfg: Config) -> pd.DataFrame:
    """The head attacker on originals and on the run's anonymization at each control share, each seed."""
    rows = []
    p = cfg.privacy
    for share, roots, faces, chance in _control_worlds(cfg):
        for variant, root in roots.items():
            heads = write_heads(root, faces, privacy_dir(cfg) / "controls" / f"share_{share:.2f}" / "heads" /
                                variant, p.head_scale, p.head_size)
            for seed in p.control_seeds:
                out = privacy_dir(cfg) / "controls" / f"share_{share:.2f}" / "models" / f"{variant}_seed{seed}"
                rows.append(dict(face_identity_share=share, variant=variant, seed=seed,
                                 **head_attack(heads, faces, out, head_training(cfg), int(seed)),
                                 chance_rank1=chance))
    return pd.DataFrame(rows)


FACE_CONTROL_COLUMNS = ["face_identity_share", "variant", "probe", "image", "ap", "hit", "chance_rank1"]


def face_controls(cfg: Config, cache: dict | None = None) -> pd.DataFrame:
    """The face attacker (dlib, no training: no seeds) on originals and on the run's anonymization at each control
    share: one row per probe face, its average precision and Rank-1 hit (percent and 0-1), for a bootstrap over
    probes (`face_control_verdict`)."""
    parts = []
    for share, roots, faces, chance in _control_worlds(cfg):
        test = faces[faces.split != "train"].reset_index(drop=True)
        for variant, root in roots.items():
            feats = face_features(root, test, cfg.privacy.align, cache)
            pids, camids = test.pid.to_numpy(), test.camid.to_numpy()
            aps = face_attack.identification_aps(feats, pids, camids)
            hits = face_attack.identification_hits(feats, pids, camids)
            parts.append(pd.DataFrame({"face_identity_share": share, "variant": variant, "probe": aps.index,
                                       "image": test.image.to_numpy()[aps.index], "ap": aps.to_numpy(),
                                       "hit": hits.loc[aps.index].to_numpy(), "chance_rank1": chance}))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=FACE_CONTROL_COLUMNS)


def pareto_front(attack: np.ndarray, utility: np.ndarray) -> np.ndarray:
    """Points no other point beats on both axes (lower attack, higher utility): a mask.

    Hand-written: a dozen points, a double loop; no dependency is worth it.
    """
    a, u = np.asarray(attack, float), np.asarray(utility, float)
    ok = ~(np.isnan(a) | np.isnan(u))
    front = ok.copy()
    for i in np.flatnonzero(ok):
        better = ok & (a <= a[i]) & (u >= u[i]) & ((a < a[i]) | (u > u[i]))
        front[i] = not better.any()
    return front


def knee(attack: np.ndarray, utility: np.ndarray, front: np.ndarray) -> int:
    """The front's knee: the front point nearest the ideal corner (no attack, full utility), axes scaled to [0, 1]."""
    a, u = np.asarray(attack, float), np.asarray(utility, float)
    idx = np.flatnonzero(front)
    if len(idx) == 0:
        raise ValueError("the front is empty")
    span = lambda v: (v - np.nanmin(v)) / (np.nanmax(v) - np.nanmin(v) or 1.0)  # noqa: E731
    d = np.hypot(span(a)[idx], 1 - span(u)[idx])
    return int(idx[np.argmin(d)])


def stage_privacy(cfg: Config, progress: bool = True) -> Path:
    """The privacy chapter's results: privacy/points.csv (a row per point); ceiling.csv, controls.csv and
    summary.json (chance, fronts, knees) beside it. Resumable: returns the file when made with this config."""
    out = privacy_dir(cfg) / "points.csv"
    base = out.parent
    conf = table.conf(cfg, "privacy")
    outputs = [out, base / "ceiling.csv", base / "controls.csv", base / "face_controls.csv", base / "summary.json"]
    if finished(Path(str(out) + ".meta.json"), conf, cfg.seed, outputs):
        return out
    with output_folder(base, conf, cfg.seed):  # intermediate copies, crops and models of another config go
        return _compute(cfg, conf, progress)


def _compute(cfg: Config, conf: dict, progress: bool) -> Path:
    out = privacy_dir(cfg) / "points.csv"
    base = out.parent
    t0 = time.perf_counter()
    p = cfg.privacy
    use_face = p.face_attacker and dlib_faces.available()
    protocols = pd.read_csv(rundir.stage_evaluate_model(cfg, progress=progress))
    dets = rundir.load_detections(cfg)
    faces = test_faces(cfg)
    test = faces[faces.split != "train"].reset_index(drop=True)
    leak = missed(test, dets, cfg.recall.iou)
    rows, cache, orig_feats = [], {}, None
    for point in points(p):
        root = _anon_copy(cfg, point, dets)
        row = dict(technique=point.technique, strength=point.strength, label=point.label,
                   leaked_faces=100 * float(leak.mean()) if point.technique != "none" else 100.0,
                   **utility(cfg, point, root, protocols))
        if use_face:
            feats = face_features(root, test, p.align, cache)
            orig_feats = feats if point.technique == "none" else orig_feats
            row.update({f"face_{k}": v for k, v in face_attack.attack_scores(feats, test, FARS).items()})
        heads = write_heads(root, faces, base / "heads" / point.label, p.head_scale, p.head_size)
        row.update({f"head_{k}": v for k, v in head_attack(heads, faces, base / "head_models" / point.label,
                                                               head_training(cfg), cfg.seed).items()})
        rows.append(row)
        if progress:
            print(f"privacy: {point.label} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    table = pd.DataFrame(rows)
    summary = {"face_attacker": use_face, "face_attacker_reason": "" if use_face else (
        "privacy.face_attacker is false" if not p.face_attacker else
        "dlib or face_recognition_models is not installed (pip install dlib-bin face_recognition_models)"),
        "chance": face_attack.chance_scores(test, FARS), "test_faces": len(test),
        "run_point": run_point(cfg).label,
        "model": cfg.training.model, "head_model": p.head_model,
        "head_pretrained": p.head_pretrained, "head_size": list(p.head_size), "fronts": []}
    anon = table[table.technique != "none"].reset_index(drop=True)
    for attacker in (["face", "head"] if use_face else ["head"]):
        for protocol in ("orig_anon", "anon_anon"):
            a, u = anon[f"{attacker}_rank1"].to_numpy(), anon[f"map_{protocol}"].to_numpy()
            if np.isfinite(u).sum() < 2:  # a front needs points to compare (anon/anon: privacy.retrain)
                continue
            front = pareto_front(a, u)
            k = knee(a, u, front)
            table.loc[table.technique != "none", f"front_{attacker}_{protocol}"] = front
            summary["fronts"].append(dict(attacker=attacker, protocol=protocol, knee=anon.label[k],
                                          knee_attack_rank1=float(a[k]), knee_map=float(u[k]),
                                          front=[str(x) for x in anon.label[front]]))
    ceiling = face_ceiling(cfg, faces, orig_feats) if use_face else pd.DataFrame(columns=CEILING_COLUMNS)
    ctrl = controls(cfg)
    face_ctrl = face_controls(cfg, cache) if use_face else pd.DataFrame(columns=FACE_CONTROL_COLUMNS)
    fp = tree_digest([("detections", file_sha256(detections_path(cfg))),
                      ("dataset", fingerprint_files(dataset_root(cfg)))])
    meta = make_meta("privacy", conf, cfg.seed, fp, seconds=round(time.perf_counter() - t0, 1))
    summary["meta"] = meta
    write_csv(base / "ceiling.csv", ceiling, meta)
    write_csv(base / "controls.csv", ctrl, meta)
    write_csv(base / "face_controls.csv", face_ctrl, meta)
    write_json(base / "summary.json", summary)
    write_csv(out, table, meta)
    return out


def load(cfg: Config) -> dict:
    """The chapter's tables (points, ceiling, controls) and summary, computing them when absent."""
    out = stage_privacy(cfg, progress=False)
    base = out.parent
    return {"points": pd.read_csv(out), "ceiling": pd.read_csv(base / "ceiling.csv"),
            "controls": read_controls(base / "controls.csv"),
            "face_controls": read_face_controls(base / "face_controls.csv"), "summary": read_json(base / "summary.json")}


CONTROL_COLUMNS = ["face_identity_share", "variant", "seed", "rank1", "map", "chance_rank1"]


def read_controls(path: Path, columns: list[str] = CONTROL_COLUMNS) -> pd.DataFrame:
    """The head attacker's control results (`controls`; the face attacker's with `FACE_CONTROL_COLUMNS`), refused
    with the folder to delete when they lack a column the verdict reads (a table from an older version)."""
    ctrl = pd.read_csv(path)
    lacking = [c for c in columns if c not in ctrl.columns]
    if lacking:
        raise ValueError(f"{path} has no column {', '.join(lacking)} (made by an older version); delete "
                         f"{Path(path).parent} and run the privacy chapter again to rebuild it")
    return ctrl


def read_face_controls(path: Path) -> pd.DataFrame:
    """The face attacker's control results (`face_controls`, one row per probe), as `read_controls` reads them."""
    return read_controls(path, FACE_CONTROL_COLUMNS)


# ---------------------------------------------------------------- what the chapter reads off the results

CEILING_LEVEL = 50.0  # a face attacker "works" at a width where its Rank-1 reaches this share (percent)


def original(points_table: pd.DataFrame) -> pd.Series:
    """The row of the unmodified images (technique 'none')."""
    return points_table[points_table.technique == "none"].iloc[0]


def attackers(summary: dict) -> list[str]:
    """The attackers that were run: the face attacker (when it was) and the head attacker."""
    return ["face", "head"] if summary["face_attacker"] else ["head"]


def knees(summary: dict, protocol: str = "orig_anon") -> dict[str, dict]:
    """Each attacker's front under `protocol` (knee label, its attack Rank-1 and mAP), keyed by attacker."""
    return {f["attacker"]: f for f in summary["fronts"] if f["protocol"] == protocol}


def ceiling_shown(summary: dict, ceiling: pd.DataFrame) -> bool:
    """Whether there is a face attacker's ceiling to show (it was run and scored some faces)."""
    return bool(summary["face_attacker"]) and len(ceiling) > 0


def ceiling_summary(ceiling: pd.DataFrame, level: float = CEILING_LEVEL) -> dict:
    """The ceiling's lowest and highest Rank-1, the width of the highest, and the first width (in the table's
    order) at which Rank-1 reaches `level` (None when none does)."""
    best = ceiling.loc[ceiling.rank1.idxmax()]
    works = ceiling[ceiling.rank1 >= level]
    return {"low": float(ceiling.rank1.min()), "high": float(ceiling.rank1.max()), "best_width": str(best.width),
            "passes_at": str(works.width.iloc[0]) if len(works) else None, "level": level}


ABOVE_CHANCE = 2.0  # an attacker's Rank-1 on the originals must reach this multiple of chance to be read at all


def beats_chance(rank1: float, chance: float, factor: float = ABOVE_CHANCE) -> bool:
    """Whether an attacker's Rank-1 on unmodified images reaches `factor` x the chance rate: below it the attacker
    identifies nobody, so nothing it loses to anonymization can be read as protection."""
    return bool(rank1 >= factor * chance)


CONTROL_SCORE = "map"  # the attacker's mAP over every probe: its seed-to-seed SD of the gain was 0.5-2.3 points
SCORE_NAMES = {"rank1": "Rank-1", "map": "mAP"}  # identification scores as the pages name them


def control_gains(ctrl: pd.DataFrame, score: str = CONTROL_SCORE) -> pd.DataFrame:
    """What anonymization takes from the head attacker (original minus anonymized `score`, points; mAP: Rank-1 of
    one trained attacker moved by up to 14 points between seeds) at each control share: the mean over seeds and the
    seeds' spread (max minus min)."""
    wide = ctrl.pivot_table(index=["face_identity_share", "seed"], columns="variant", values=score)
    gain = (wide.original - wide.anonymized).groupby(level=0)
    return pd.DataFrame({"mean": gain.mean(), "spread": gain.max() - gain.min()})


def control_verdict(ctrl: pd.DataFrame, factor: float = ABOVE_CHANCE) -> dict:
    """Whether the controls pass: anonymization takes more from the head attacker at the highest share than at
    the lowest (or than nothing), by more than the largest seed spread. With the gains it compares, and whether
    the attacker can be read at all (`readable`: its Rank-1 on the originals of the highest share reaches `factor`
    x that world's chance rate; an attacker at chance can lose nothing to anonymization)."""
    g = control_gains(ctrl)
    lo, hi = g.index.min(), g.index.max()
    spread = float(g.spread.max())
    low, high = float(g.loc[lo, "mean"]), float(g.loc[hi, "mean"])
    at_hi = ctrl[(ctrl.face_identity_share == hi) & (ctrl.variant == "original")]
    orig = float(at_hi.rank1.mean())
    chance = float(at_hi.chance_rank1.mean())
    return {"low_share": float(lo), "high_share": float(hi), "low_gain": low, "high_gain": high, "spread": spread,
            "found": bool(high > max(low, 0.0) + spread), "original_rank1": orig, "chance_rank1": chance,
            "readable": beats_chance(orig, chance, factor)}


def above_chance(points_table: pd.DataFrame, summary: dict, attacker: str, factor: float = ABOVE_CHANCE) -> bool:
    """Whether an attacker identifies people on the unmodified images clearly better than chance (Rank-1 at
    least `factor` x the chance rate): an attacker at chance measures nothing, so no knee is named for it."""
    return beats_chance(original(points_table)[f"{attacker}_rank1"], summary["chance"]["rank1"], factor)


FACE_CONFIDENCE = 0.95  # the face attacker's intervals: a bootstrap over probes (it has no training seeds)


def face_control_verdict(fc: pd.DataFrame, confidence: float = FACE_CONFIDENCE, seed: int = 0,
                         factor: float = ABOVE_CHANCE) -> dict:
    """Whether the face attacker's controls pass: what anonymization takes from its AP (original minus anonymized,
    paired by probe) has an interval (bootstrap over probes) that covers zero or lies below it at the lowest share,
    and lies above zero and above that interval at the highest. `readable` as in `control_verdict`: its Rank-1 on
    the highest share's originals reaches `factor` x chance."""
    wide = fc.pivot_table(index=["face_identity_share", "probe"], columns="variant", values="ap")
    gain = wide.original - wide.anonymized
    lo, hi = float(gain.index.get_level_values(0).min()), float(gain.index.get_level_values(0).max())
    (low, low_lo, low_hi), (high, high_lo, high_hi) = (bootstrap_ci(gain.loc[s], confidence, seed) for s in (lo, hi))
    at_hi = fc[(fc.face_identity_share == hi) & (fc.variant == "original")]
    orig, chance = 100 * float(at_hi.hit.mean()), float(at_hi.chance_rank1.mean())
    found_low, found_high = bool(low_lo > 0), bool(high_lo > max(low_hi, 0.0))
    return {"low_share": lo, "high_share": hi, "low_gain": low, "low_gain_low": low_lo, "low_gain_high": low_hi,
            "high_gain": high, "high_gain_low": high_lo, "high_gain_high": high_hi, "confidence": confidence,
            "found_low": found_low, "found_high": found_high, "found": found_high and not found_low,
            "original_rank1": orig, "chance_rank1": chance, "readable": beats_chance(orig, chance, factor)}
