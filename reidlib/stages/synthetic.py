"""The generated default dataset: procedural pedestrians with real LFW faces, in Market-1501 layout.

Stands in for the paper's datasets (Section III-C) where none can be downloaded. Each identity has
its own clothing, hair, skin tone and build; each camera its own illumination, colour cast, blur
and background; a real face from scikit-image's `lfw_subset` is pasted on the head at re-ID size.
`face_identity_share` of the identities copy another identity's whole appearance except the face,
so for them only the face tells them apart: the knob for how much identity faces carry.
A harder face regime is in the config too: faces as small as real ones, blurred, seen in profile
or partly covered (`face_size`, `face_blur`, `profile`, `occluded`), so a detector can miss them.
"""
from __future__ import annotations

import json
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import pandas as pd

from ..core.config import DatasetConfig, to_dict
from ..core.images import lfw_faces
from ..core.runfiles import atomic_write_text, umask

WIDTH, HEIGHT = 64, 128
SPLIT_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
DONE_MARKER = ".complete"
TRUTH_CONDITIONS = ("blur", "profile", "occluded")  # face_boxes.csv's columns on how each face is seen
TRUTH_FILES = ("face_boxes.csv", "identities.csv")  # beside the images: what is true of them (never copied)


class IncompleteDatasetError(FileExistsError):
    """A generated dataset that has lost files since it was made (the run generates it again)."""


@dataclass(frozen=True)
class Identity:
    """Appearance of one person (colours are RGB tuples)."""

    pid: int
    split: str  # "train" or "test"
    upper: tuple[int, int, int]
    lower: tuple[int, int, int]
    stripe: tuple[int, int, int]
    pattern: int  # 0 solid, 1 horizontal stripes, 2 two-tone jacket
    hair: tuple[int, int, int]
    skin: tuple[float, float, float]
    shoes: tuple[int, int, int]
    build: float  # torso width factor
    bag: bool
    face_index: int  # row of lfw_subset (0-99 are faces)
    clothing_source: int  # pid whose clothing this identity copies (itself when unique)


@dataclass(frozen=True)
class FaceLook:
    """How one pasted face is seen: blur sigma, profile squeeze (1 = frontal) and side, covered share."""

    blur: float = 0.0
    squeeze: float = 1.0  # visible face width / full face width (profile: 0.55-0.75)
    side: int = 1  # which way a profile faces: -1 left, 1 right
    covered: float = 0.0  # share of the face height hidden by a scarf (from below) or a hat brim (above)
    from_below: bool = True


@dataclass(frozen=True)
class Camera:
    """Per-camera appearance change."""

    camid: int
    gain: float
    cast: tuple[float, float, float]
    blur: float
    background: tuple[int, int, int]
    floor: tuple[int, int, int]


def _color(rng: np.random.Generator, lo: int = 20, hi: int = 235) -> tuple[int, int, int]:
    return tuple(int(v) for v in rng.integers(lo, hi, size=3))


def make_identities(cfg: DatasetConfig, seed: int) -> list[Identity]:
    """Draw every identity's appearance; a `face_identity_share` of them copy another's clothing."""
    rng = np.random.default_rng([seed, 1])
    n = cfg.train_ids + cfg.test_ids
    faces = rng.permutation(100)
    ids: list[Identity] = []
    for i in range(n):
        pid = i + 1
        split = "train" if i < cfg.train_ids else "test"
        skin_base = rng.uniform(0.55, 1.0)
        ids.append(Identity(
            pid=pid, split=split, upper=_color(rng), lower=_color(rng, 10, 180),
            stripe=_color(rng), pattern=int(rng.integers(0, 3)),
            hair=tuple(int(v) for v in rng.integers(10, 90, size=3)),
            skin=(skin_base, skin_base * rng.uniform(0.75, 0.9), skin_base * rng.uniform(0.6, 0.8)),
            shoes=_color(rng, 0, 120), build=float(rng.uniform(0.85, 1.15)), bag=bool(rng.random() < 0.3),
            face_index=int(faces[i % 100]), clothing_source=pid))
    # Clothing collisions: within each split, pair identities so that only the face differs.
    for split in ("train", "test"):
        members = [k for k, x in enumerate(ids) if x.split == split]
        n_copy = int(round(cfg.face_identity_share * len(members) / 2))
        order = rng.permutation(members)
        for a, b in zip(order[:n_copy], order[n_copy:2 * n_copy]):
            src = ids[b]
            ids[a] = Identity(**{**ids[a].__dict__, **{k: getattr(src, k) for k in (
                "upper", "lower", "stripe", "pattern", "hair", "skin", "shoes", "build", "bag")},
                "clothing_source": src.pid})
    return ids


def make_cameras(cfg: DatasetConfig, seed: int) -> list[Camera]:
    """Draw each camera's illumination, colour cast, blur and background."""
    rng = np.random.default_rng([seed, 2])
    return [Camera(camid=c + 1, gain=float(rng.uniform(0.7, 1.25)),
                   cast=tuple(float(v) for v in rng.uniform(0.85, 1.15, size=3)),
                   blur=float(rng.uniform(0.0, 0.9)), background=_color(rng, 60, 200),
                   floor=_color(rng, 40, 160)) for c in range(cfg.cameras)]


def _poly(img: np.ndarray, pts, color) -> None:
    """A filled, antialiased polygon (sub-pixel corners)."""
    cv2.fillPoly(img, [np.round(np.array(pts) * 16).astype(np.int32)], [float(c) for c in color],
                 lineType=cv2.LINE_AA, shift=4)


@dataclass(frozen=True)
class Head:
    """Where the head sits in a crop: its centre and size."""

    cx: float
    cy: float
    width: float
    height: float


def _background(img: np.ndarray, cam: Camera, rng: np.random.Generator) -> None:
    """The camera's backdrop: a lit wall, the floor, a few boxes of clutter, sensor noise."""
    grad = np.linspace(0.85, 1.1, HEIGHT, dtype=np.float32)[:, None, None]
    img[:] = np.array(cam.background, np.float32) * grad
    floor_y = int(rng.integers(95, 115))
    img[floor_y:] = cam.floor
    for _ in range(int(rng.integers(1, 4))):  # background clutter
        x, y = int(rng.integers(-10, WIDTH)), int(rng.integers(0, HEIGHT))
        cv2.rectangle(img, (x, y), (x + int(rng.integers(5, 25)), y + int(rng.integers(5, 40))),
                      [float(v) for v in rng.integers(30, 220, 3)], -1)
    img += rng.normal(0, 6, img.shape).astype(np.float32)


def _body(img: np.ndarray, person: Identity, face_w: int, rng: np.random.Generator) -> Head:
    """Legs, shoes, torso, arms, bag and neck, scaled with the face; returns where the head goes."""
    s = 0.9 + (face_w - 8) / 12 * 0.2
    cx = WIDTH / 2 + rng.uniform(-4, 4)
    top = 4 + rng.uniform(-2, 4)
    head_w, head_h = face_w * 1.35, face_w * 1.55
    neck_y = top + head_h
    torso_w = 26 * s * person.build
    torso_h = 42 * s
    leg_h = min(HEIGHT - (neck_y + torso_h) - 2, 52 * s)
    sk = np.array(person.skin) * 255
    stance = rng.uniform(0, 5)
    hip = neck_y + torso_h
    for side in (-1, 1):  # legs and shoes
        x0 = cx + side * (2 + stance / 2)
        xo = cx + side * (torso_w / 2 - 1)
        _poly(img, [(min(x0, xo), hip - 2), (max(x0, xo), hip - 2),
                    (max(x0, xo) + side * stance / 2, hip + leg_h), (min(x0, xo) + side * stance / 2, hip + leg_h)],
              person.lower)
        fx = (x0 + xo) / 2 + side * stance / 2
        _poly(img, [(fx - 5, hip + leg_h - 3), (fx + 5, hip + leg_h - 3), (fx + 6, hip + leg_h + 1),
                    (fx - 6, hip + leg_h + 1)], person.shoes)
    sh = (cx - torso_w / 2, neck_y + 2), (cx + torso_w / 2, neck_y + 2)  # torso, its pattern, arms
    _poly(img, [sh[0], sh[1], (cx + torso_w / 2 - 2, hip), (cx - torso_w / 2 + 2, hip)], person.upper)
    if person.pattern == 1:
        for y in np.arange(neck_y + 6, hip - 2, 6 * s):
            _poly(img, [(cx - torso_w / 2 + 1, y), (cx + torso_w / 2 - 1, y), (cx + torso_w / 2 - 1, y + 2.5 * s),
                        (cx - torso_w / 2 + 1, y + 2.5 * s)], person.stripe)
    elif person.pattern == 2:
        _poly(img, [(cx - 3, neck_y + 2), (cx + 3, neck_y + 2), (cx + 3, hip), (cx - 3, hip)], person.stripe)
    for side in (-1, 1):
        ax = cx + side * torso_w / 2
        _poly(img, [(ax, neck_y + 3), (ax + side * 5 * s, neck_y + 4), (ax + side * 6 * s, hip + 4),
                    (ax + side * 2, hip + 4)], person.upper)
        cv2.circle(img, (int(ax + side * 4 * s), int(hip + 6)), max(2, int(2.5 * s)),
                   [float(c) for c in sk], -1, cv2.LINE_AA)
    if person.bag:
        _poly(img, [(cx + torso_w / 2 - 2, hip - 12), (cx + torso_w / 2 + 7, hip - 12),
                    (cx + torso_w / 2 + 8, hip + 6), (cx + torso_w / 2 - 1, hip + 6)], person.stripe[::-1])
    _poly(img, [(cx - 3, neck_y - 3), (cx + 3, neck_y - 3), (cx + 3, neck_y + 3), (cx - 3, neck_y + 3)], sk)
    return Head(cx, top + head_h / 2, head_w, head_h)


def _head_and_face(img: np.ndarray, person: Identity, head: Head, face: np.ndarray | None, face_w: int,
                   look: FaceLook) -> tuple[int, int, int, int] | None:
    """The head, and on it the face as `look` says it is seen (or the back of the head); the face box."""
    sk = np.array(person.skin) * 255
    center = (int(round(head.cx * 16)), int(round(head.cy * 16)))
    axes = (int(round(head.width / 2 * 16)), int(round(head.height / 2 * 16)))
    if face is None:  # turned away: the back of the head is hair
        cv2.ellipse(img, center, axes, 0, 0, 360, [float(c) for c in person.hair], -1, cv2.LINE_AA, 4)
        return None
    cv2.ellipse(img, center, axes, 0, 0, 360, [float(c) for c in sk], -1, cv2.LINE_AA, 4)
    cv2.ellipse(img, center, axes, 0, 180, 360, [float(c) for c in person.hair], -1, cv2.LINE_AA, 4)
    vis_w = max(2, int(round(face_w * look.squeeze)))  # a profile shows a narrower face
    x0 = int(round(head.cx - face_w / 2)) + (0 if vis_w == face_w else (face_w - vis_w if look.side > 0 else 0))
    y0 = int(round(head.cy - face_w * 0.42))
    patch = cv2.resize(face, (vis_w, face_w), interpolation=cv2.INTER_AREA)
    rgb = np.clip(patch[..., None] * 1.25 * sk[None, None, :], 0, 255)
    yy, xx = np.mgrid[0:face_w, 0:vis_w]
    r = ((xx + 0.5 - vis_w / 2) / (vis_w / 2)) ** 2 + ((yy + 0.5 - face_w / 2) / (face_w / 2)) ** 2
    alpha = np.clip((1.15 - r) / 0.3, 0, 1)[..., None]
    xs0, ys0 = max(x0, 0), max(y0, 0)
    xs1, ys1 = min(x0 + vis_w, WIDTH), min(y0 + face_w, HEIGHT)
    sub = (slice(ys0 - y0, ys1 - y0), slice(xs0 - x0, xs1 - x0))
    region = img[ys0:ys1, xs0:xs1]
    img[ys0:ys1, xs0:xs1] = alpha[sub] * rgb[sub] + (1 - alpha[sub]) * region
    if look.blur > 0.05:  # defocus or motion on the face (and its edge) only
        pad = int(np.ceil(3 * look.blur))
        bx0, by0, bx1, by1 = max(xs0 - pad, 0), max(ys0 - pad, 0), min(xs1 + pad, WIDTH), min(ys1 + pad, HEIGHT)
        soft = cv2.GaussianBlur(img[by0:by1, bx0:bx1], (0, 0), look.blur)
        img[ys0:ys1, xs0:xs1] = soft[ys0 - by0:ys1 - by0, xs0 - bx0:xs1 - bx0]
    if look.covered > 0:  # a scarf pulled up from below, or a hat brim from above
        cover = int(round(face_w * look.covered))
        cy0, cy1 = (y0 + face_w - cover, y0 + face_w + 2) if look.from_below else (y0 - 3, y0 + cover)
        color = person.upper if look.from_below else person.hair
        _poly(img, [(x0 - 2, cy0), (x0 + vis_w + 2, cy0), (x0 + vis_w + 2, cy1), (x0 - 2, cy1)], color)
    return (xs0, ys0, xs1, ys1)


def _camera(img: np.ndarray, cam: Camera, rng: np.random.Generator) -> np.ndarray:
    """The camera's illumination, colour cast, optics blur and sensor noise; the crop as uint8."""
    img = img * cam.gain * np.array(cam.cast, np.float32)
    if cam.blur > 0.05:
        img = cv2.GaussianBlur(img, (0, 0), cam.blur)
    img += rng.normal(0, 3, img.shape).astype(np.float32)
    return np.clip(img, 0, 255).round().astype(np.uint8)


def render(person: Identity, cam: Camera, face: np.ndarray | None, face_w: int,
           rng: np.random.Generator, look: FaceLook = FaceLook()) -> tuple[np.ndarray, tuple[int, int, int, int] | None]:
    """Draw one 64x128 RGB crop; returns it and the face box (x0, y0, x1, y1) or None.

    In four phases: the background, the body, the head and face, the camera. The box is the whole
    visible face, covered part included (as an annotator draws it).
    """
    img = np.empty((HEIGHT, WIDTH, 3), np.float32)
    _background(img, cam, rng)
    head = _body(img, person, face_w, rng)
    box = _head_and_face(img, person, head, face, face_w, look)
    return _camera(img, cam, rng), box


def plan(cfg: DatasetConfig, seed: int) -> pd.DataFrame:
    """Every image to draw: pid, camid, split, frame, face width, whether the head is turned, and how the
    face is seen (blur, profile squeeze and side, covered share)."""
    rng = np.random.default_rng([seed, 3])
    rows = []
    frame = {c: int(rng.integers(1000, 5000)) for c in range(1, cfg.cameras + 1)}
    for person in make_identities(cfg, seed):
        k = int(rng.integers(min(2, cfg.cameras), cfg.cameras + 1))
        cams = sorted(int(c) + 1 for c in rng.choice(cfg.cameras, size=k, replace=False))
        for cam in cams:
            for j in range(cfg.images_per_camera):
                frame[cam] += int(rng.integers(20, 400))
                split = "train" if person.split == "train" else ("query" if j == 0 else "gallery")
                rows.append(dict(pid=person.pid, camid=cam, split=split, frame=frame[cam],
                                 face_w=int(rng.integers(cfg.face_size[0], cfg.face_size[1] + 1)),
                                 turned_away=bool(rng.random() < cfg.turned_away)))
    df = pd.DataFrame(rows)
    look = np.random.default_rng([seed, 5])  # its own stream: with the regime off, the plan is unchanged
    n = len(df)
    df["face_blur"] = np.round(look.uniform(0, cfg.face_blur, n), 2) if cfg.face_blur > 0 else 0.0
    df["profile"] = look.random(n) < cfg.profile
    df["squeeze"] = np.where(df.profile, np.round(look.uniform(0.55, 0.75, n), 2), 1.0)
    df["side"] = look.choice([-1, 1], n)
    df["occluded"] = look.random(n) < cfg.occluded
    df["covered"] = np.where(df.occluded, np.round(look.uniform(0.3, 0.5, n), 2), 0.0)
    df["from_below"] = look.random(n) < 0.6
    # every query needs a same-id gallery image from another camera: the plan guarantees it since
    # each test id appears in >= 2 cameras with one query and (images_per_camera - 1) gallery each.
    if cfg.images_per_camera < 2:
        raise ValueError("dataset.images_per_camera must be >= 2 so every query has gallery matches")
    df["image"] = [f"{SPLIT_DIRS[r.split]}/{r.pid:04d}_c{r.camid}s1_{r.frame:06d}_01.jpg"
                   for r in df.itertuples()]
    return df


def face_of(person: Identity, image, face_identity: str, seed: int) -> int:
    """The LFW face a crop shows: its identity's own, or (`random`, the negative control) one drawn for this
    crop alone from the 100 faces, independent of who it is."""
    if face_identity == "own":
        return person.face_index
    return int(np.random.default_rng([seed, 5, image.pid, image.camid, image.frame]).integers(100))


def _stamped(cfg: DatasetConfig) -> dict:
    """The dataset keys a generated set is stamped with (a key at its default value left out when it was added
    after sets were generated, so those sets stay valid)."""
    keys = to_dict(cfg)
    for key, old in (("face_identity", "own"), ("visible", "all")):
        if keys.get(key) == old:
            del keys[key]
    return keys


GREY = 128  # what a masked pixel shows (dataset.visible)


def masked(img: np.ndarray, box: tuple[int, int, int, int] | None, visible: str) -> np.ndarray:
    """A crop as `dataset.visible` shows it: unchanged (all), grey outside the face box (face_only; all grey
    without a face), or grey inside it (face_blind)."""
    if visible == "all":
        return img
    if visible == "face_only":
        out = np.full_like(img, GREY)
        if box is not None:
            out[box[1]:box[3], box[0]:box[2]] = img[box[1]:box[3], box[0]:box[2]]
        return out
    out = img.copy()
    if box is not None:
        out[box[1]:box[3], box[0]:box[2]] = GREY
    return out


GENERATED_NAME = re.compile(r"^\d{4}_c\d+s1_\d{6}_01\.jpg$")  # the images `plan` names


def foreign_files(root: Path) -> list[str]:
    """Files under a generated dataset's folder that the generator does not write (a user's): anything but the
    split folders' images named as `plan` names them, the truth files and the completion marker."""
    root, ours = Path(root), {*TRUTH_FILES, DONE_MARKER}
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() or p.is_symlink()):
        rel = path.relative_to(root).as_posix()
        parts = rel.split("/")
        generated = (rel in ours or (len(parts) == 2 and parts[0] in SPLIT_DIRS.values()
                                     and GENERATED_NAME.match(parts[1]) is not None))
        if not generated:
            out.append(rel)
    return out


def generate(root: str | Path, cfg: DatasetConfig, seed: int) -> Path:
    """Write the dataset to `root` (Market-1501 layout plus `face_boxes.csv`, `identities.csv`).

    Deterministic from `seed`; writes into a temporary folder and renames it, so an interrupted
    run leaves nothing at `root`. An existing complete dataset is kept as is.
    """
    root = Path(root)
    stamp = json.dumps({"dataset": _stamped(cfg), "seed": seed}, sort_keys=True)
    if (root / DONE_MARKER).is_file():
        if (root / DONE_MARKER).read_text().strip() != stamp:
            raise FileExistsError(f"{root} was generated with another configuration; remove it "
                                  f"or choose another run_dir")
        lost = [f for f in TRUTH_FILES if not (root / f).is_file()]
        lost += [rel for rel in plan(cfg, seed).image if not (root / rel).is_file()][:3]
        if lost:
            raise IncompleteDatasetError(f"{root} has lost {', '.join(lost)} since it was generated")
        return root
    if root.exists():
        raise FileExistsError(f"{root} exists but is not a complete generated dataset; remove it")
    if cfg.train_ids < 2 or cfg.test_ids < 2 or cfg.cameras < 2:
        raise ValueError("dataset needs train_ids >= 2, test_ids >= 2 and cameras >= 2")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=root.parent, prefix=f".{root.name}.tmp-"))
    try:
        faces = lfw_faces()
        people = {p.pid: p for p in make_identities(cfg, seed)}
        cams = {c.camid: c for c in make_cameras(cfg, seed)}
        df = plan(cfg, seed)
        for d in SPLIT_DIRS.values():
            (tmp / d).mkdir()
        boxes = []
        for r in df.itertuples():
            rng = np.random.default_rng([seed, 4, r.pid, r.camid, r.frame])
            person = people[r.pid]
            face_index = face_of(person, r, cfg.face_identity, seed)
            face = None if r.turned_away else faces[face_index]
            look = FaceLook(r.face_blur, r.squeeze, r.side, r.covered, r.from_below)
            img, box = render(person, cams[r.camid], face, r.face_w, rng, look)
            img = masked(img, box, cfg.visible)
            ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR),
                                   [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
            if not ok:
                raise RuntimeError(f"could not encode {r.image}")
            (tmp / r.image).write_bytes(buf.tobytes())
            if box is not None:
                boxes.append(dict(image=r.image, x0=box[0], y0=box[1], x1=box[2], y1=box[3],
                                  blur=r.face_blur, profile=r.profile, occluded=r.occluded, face_index=face_index))
        pd.DataFrame(boxes, columns=["image", "x0", "y0", "x1", "y1", *TRUTH_CONDITIONS, "face_index"]).to_csv(
            tmp / "face_boxes.csv", index=False, lineterminator="\n")
        pd.DataFrame([dict(pid=p.pid, split=p.split, face_index=p.face_index if cfg.face_identity == "own" else -1,
                           clothing_source=p.clothing_source) for p in people.values()]).to_csv(
            tmp / "identities.csv", index=False, lineterminator="\n")
        atomic_write_text(tmp / DONE_MARKER, stamp + "\n")
        for d in (tmp, *(p for p in tmp.iterdir() if p.is_dir())):
            d.chmod(0o777 & ~umask())  # mkdtemp makes the folder private
        tmp.rename(root)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root
