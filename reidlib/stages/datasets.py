"""Dataset readers (paper Section III-C, Table II): image records from a dataset root on disk.

Every reader returns the same plain table, one row per image: `image` (path relative to the root
it was given), `pid`, `camid` (1-based), `split` (train | query | gallery) and `dataset`. An
anonymized copy has the same relative paths, so the same reader pointed at the copy reads it.

- Market-1501 / DukeMTMC-reID: `bounding_box_train/`, `query/`, `bounding_box_test/`; as torchreid
  does, pid -1 ("junk") is dropped and pid 0 (distractors, "background") is kept in the gallery.
- CUHK03: `cuhk-03.mat` (MATLAB v7.3) is extracted once to PNG in a derived folder, with the
  767/700 split of `cuhk03_new_protocol_config_<variant>.mat` saved beside as JSON.
- VIPeR: `cam_a/`, `cam_b/`; the split is a torchreid-format `splits.json` (the paper's supplied
  one, or one generated once with a fixed seed and never reshuffled).
- Airport: `filepath.txt`, `personID.txt`, `camID.txt` and `Partition_airport.mat`.
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

from ..core import registry
from ..core.images import is_image
from ..core.paths import checkout_root

MARKET_DIRS = {"train": "bounding_box_train", "query": "query", "gallery": "bounding_box_test"}
MARKET_NAME = re.compile(r"^(-?\d+)_c(\d)s(\d)_(\d+)_(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)
DUKE_NAME = re.compile(r"^(-?\d+)_c(\d+)_f(\d+)\.(jpg|jpeg|png)$", re.IGNORECASE)
VIPER_NAME = re.compile(r"^(\d+)_(\d+)\.(bmp|png|jpg)$", re.IGNORECASE)
CUHK03_NAME = re.compile(r"^(\d)_(\d{3})_(\d)_(\d{2})\.png$")
RECORD_COLUMNS = ["image", "pid", "camid", "split", "dataset"]
TOP_FOLDERS = {"market1501": ("Market-1501-v15.09.15", "Market-1501", "market1501"),
               "dukemtmcreid": ("DukeMTMC-reID", "dukemtmc-reid/DukeMTMC-reID", "dukemtmc-reid")}
CUHK03_VARIANTS = ("detected", "labeled")
VIPER_SPLIT_SEED = 0  # the seed of a generated VIPeR split (recorded in the file)


class DatasetError(ValueError):
    """A dataset tree that does not have the expected layout, naming or contents."""


@dataclass(frozen=True)
class Record:
    """One image: path relative to the dataset root, identity, camera (1-based) and split."""

    image: str
    pid: int
    camid: int
    split: str
    dataset: str


def _frame(rows: list[Record]) -> pd.DataFrame:
    return pd.DataFrame([r.__dict__ for r in rows], columns=RECORD_COLUMNS).astype({"pid": int, "camid": int})


def _require_dir(path: Path, what: str = "dataset folder") -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what} not found: {path}")
    return path


def _require_file(path: Path) -> Path:
    if not path.is_file():
        raise DatasetError(f"expected file missing: {path}")
    return path


def check_splits(df: pd.DataFrame, root: Path) -> pd.DataFrame:
    """Refuse a table without training images, or with query ids absent from the gallery."""
    if df.empty or not (df.split == "train").any():
        raise DatasetError(f"no training images found under {root}")
    q, g = df[df.split == "query"], df[df.split == "gallery"]
    if q.empty or g.empty:
        raise DatasetError(f"no query or no gallery images found under {root}")
    missing = sorted(set(q.pid) - set(g.pid))
    if missing:
        raise DatasetError(f"query ids absent from the gallery in {root}: {missing[:10]}")
    return df.reset_index(drop=True)


def contained(root: Path, rel: str, listed_in: str = "the dataset's list") -> str:
    """`rel` if it is a relative path that stays under `root` once resolved; a DatasetError otherwise
    (absolute paths and `..` escapes are refused; links the user placed inside the root are followed)."""
    p = Path(rel)
    if not p.parts or p.is_absolute() or rel.startswith(("/", "\\")) or ":" in p.parts[0]:
        raise DatasetError(f"image path in {listed_in} is not relative to the dataset root {root}: {rel}")
    norm = os.path.normpath(rel)
    if norm == ".." or norm.startswith("../") or norm == ".":
        raise DatasetError(f"image path in {listed_in} leads outside the dataset root {root}: {rel}")
    return rel


def _images(d: Path) -> list[Path]:
    return [p for p in sorted(d.iterdir()) if not p.name.startswith(".") and is_image(p.name)]


def _top_folder(root: Path, dataset: str) -> str:
    """The prefix under `root` that holds `bounding_box_train/` ('' or a known top folder)."""
    if (root / MARKET_DIRS["train"]).is_dir():
        return ""
    for top in TOP_FOLDERS.get(dataset, ()) + sum(TOP_FOLDERS.values(), ()):
        if (root / top / MARKET_DIRS["train"]).is_dir():
            return top + "/"
    raise DatasetError(f"expected sub-folder missing: {root / MARKET_DIRS['train']}")


def _read_market_like(root: str | Path, dataset: str, pattern: re.Pattern, naming: str) -> pd.DataFrame:
    root = _require_dir(Path(root))
    top = _top_folder(root, dataset)
    rows = []
    for split, sub in MARKET_DIRS.items():
        d = _require_dir(root / top / sub, "expected sub-folder")
        for p in _images(d):
            m = pattern.match(p.name)
            if not m:
                raise DatasetError(f"file name does not follow {naming}: {p}")
            pid, cam = int(m.group(1)), int(m.group(2))
            if pid == -1 or (pid == 0 and split != "gallery"):
                continue  # junk; distractors only belong in the gallery
            rows.append(Record(f"{top}{sub}/{p.name}", pid, cam, split, dataset))
    return check_splits(_frame(rows), root)


def read_market(root: str | Path, dataset: str = "market1501") -> pd.DataFrame:
    """Records of a Market-1501-layout tree (names `<pid>_c<cam>s<seq>_<frame>_<box>.jpg`)."""
    return _read_market_like(root, dataset, MARKET_NAME, "Market-1501 naming '<pid>_c<cam>s<seq>_<frame>_<box>.jpg'")


def read_duke(root: str | Path, dataset: str = "dukemtmcreid") -> pd.DataFrame:
    """Records of DukeMTMC-reID (Market layout, names `<pid>_c<cam>_f<frame>.jpg`)."""
    return _read_market_like(root, dataset, DUKE_NAME, "DukeMTMC-reID naming '<pid>_c<cam>_f<frame>.jpg'")


# ---------------------------------------------------------------- .mat files
def load_mat(path: Path, keys: tuple[str, ...]) -> dict[str, Any]:
    """The named variables of a MATLAB file (v5 via scipy.io, v7.3 via h5py), or an error naming the missing ones."""
    import scipy.io

    _require_file(path)
    try:
        data = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except NotImplementedError:  # v7.3 files are HDF5
        import h5py

        with h5py.File(path, "r") as f:
            data = {k: np.asarray(f[k]).T for k in keys if k in f}
    except ValueError as e:
        raise DatasetError(f"cannot read MATLAB file {path}: {e}") from e
    missing = [k for k in keys if k not in data]
    if missing:
        raise DatasetError(f"{path} lacks the expected key(s) {missing}; found {sorted(k for k in data if not k.startswith('__'))}")
    return data


def _field(struct: Any, name: str, path: Path) -> np.ndarray:
    value = struct.get(name) if isinstance(struct, dict) else getattr(struct, name, None)
    if value is None:
        raise DatasetError(f"{path} lacks the expected field '{name}'")
    return np.asarray(value)


# ---------------------------------------------------------------- CUHK03
def cuhk03_split_path(derived: str | Path, variant: str = "detected") -> Path:
    """Where the extracted CUHK03 split of `variant` lives in the derived folder."""
    return Path(derived) / f"split_new_{variant}.json"


def prepare_cuhk03(root: str | Path, derived: str | Path, variant: str = "detected",
                   progress: bool = True) -> Path:
    """Extract `cuhk-03.mat` images of `variant` to PNG under `derived` and save the 767/700 split, once.

    Image names follow torchreid: `<pair>_<person:03d>_<view>_<image:02d>.png`. Existing PNGs and an
    existing split file are kept, so a second call writes nothing and the split stays byte-identical.
    """
    import cv2
    import h5py
    from tqdm.auto import tqdm

    from ..core.runfiles import atomic_write_bytes, atomic_write_text

    if variant not in CUHK03_VARIANTS:
        raise DatasetError(f"unknown CUHK03 variant '{variant}'; choose one of {', '.join(CUHK03_VARIANTS)}")
    root, derived = _require_dir(Path(root)), Path(derived)
    split_path = cuhk03_split_path(derived, variant)
    if split_path.is_file():
        return derived
    raw = next((p for p in (root / "cuhk-03.mat", root / "cuhk03_release" / "cuhk-03.mat") if p.is_file()), None)
    if raw is None:
        raise DatasetError(f"expected file missing: {root / 'cuhk03_release' / 'cuhk-03.mat'}")
    name = f"cuhk03_new_protocol_config_{variant}.mat"  # torchreid keeps it beside cuhk03_release/
    config_mat = next((p for p in (root / name, raw.parent / name) if p.is_file()), root / name)
    proto = load_mat(config_mat, ("filelist", "labels", "train_idx", "query_idx", "gallery_idx"))
    img_dir = derived / f"images_{variant}"
    img_dir.mkdir(parents=True, exist_ok=True)
    with h5py.File(raw, "r") as mat:
        if variant not in mat:
            raise DatasetError(f"{raw} lacks the expected key '{variant}'; found {sorted(mat.keys())}")
        pairs = [mat[ref][:].T for ref in np.asarray(mat[variant]).ravel()]
        total = sum(p.size for p in pairs)
        with tqdm(total=total, desc=f"extract CUHK03 ({variant})", disable=not progress) as bar:
            for pair_i, pair in enumerate(pairs):
                for person_i in range(pair.shape[0]):
                    for img_i, ref in enumerate(pair[person_i]):
                        bar.update()
                        img = mat[ref][:].T
                        if img.size == 0 or img.ndim < 3:
                            continue  # an empty cell: some persons have fewer images
                        view = 1 if img_i < 5 else 2
                        out = img_dir / f"{pair_i + 1}_{person_i + 1:03d}_{view}_{img_i + 1:02d}.png"
                        if not out.is_file():
                            ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[:, :, ::-1]))
                            atomic_write_bytes(out, buf.tobytes())
    names = [str(n) for n in np.atleast_1d(proto["filelist"]).ravel()]
    labels = np.atleast_1d(proto["labels"]).ravel().astype(int)
    split = {"source": [raw.name, config_mat.name], "protocol": "767/700", "variant": variant}
    for s in ("train", "query", "gallery"):
        idx = np.atleast_1d(proto[f"{s}_idx"]).ravel().astype(int) - 1  # MATLAB indices are 1-based
        split[s] = [[f"images_{variant}/{names[i]}", int(labels[i]), int(names[i].split("_")[2])] for i in idx]
    atomic_write_text(split_path, json.dumps(split, indent=1) + "\n")
    return derived


def read_cuhk03(derived: str | Path, variant: str = "detected", dataset: str = "cuhk03") -> pd.DataFrame:
    """Records of extracted CUHK03 (see `prepare_cuhk03`), from the derived folder or its anonymized copy."""
    derived = _require_dir(Path(derived))
    split_path = cuhk03_split_path(derived, variant)
    if not split_path.is_file():
        raise DatasetError(f"expected file missing: {split_path} (run prepare_cuhk03 on the cuhk03_release folder)")
    split = json.loads(split_path.read_text())
    present = {p.name for p in (derived / f"images_{variant}").glob("*.png")}
    rows = []
    for s in ("train", "query", "gallery"):
        for rel, pid, cam in split[s]:
            name = rel.rsplit("/", 1)[-1]
            if not CUHK03_NAME.match(name):
                raise DatasetError(f"file name does not follow CUHK03 naming '<pair>_<pid>_<view>_<img>.png': {name}")
            if name not in present:
                raise DatasetError(f"image listed in {split_path.name} is missing: {derived / rel}")
            rows.append(Record(rel, int(pid), int(cam), s, dataset))
    return check_splits(_frame(rows), derived)


# ---------------------------------------------------------------- VIPeR
def _viper_dirs(root: Path) -> Path:
    for base in (root, root / "VIPeR"):
        if (base / "cam_a").is_dir():
            return base
    raise DatasetError(f"expected sub-folder missing: {root / 'cam_a'}")


def _viper_ids(root: Path, base: Path, cam: str) -> dict[int, str]:
    out = {}
    for p in _images(_require_dir(base / cam, "expected sub-folder")):
        m = VIPER_NAME.match(p.name)
        if not m:
            raise DatasetError(f"file name does not follow VIPeR naming '<id>_<angle>.bmp': {p}")
        out[int(m.group(1))] = p.relative_to(root).as_posix()
    return out


def make_viper_split(root: str | Path, split_file: str | Path, seed: int = VIPER_SPLIT_SEED) -> Path:
    """Write a torchreid-format VIPeR split (half the ids train, cam_a query, cam_b gallery) once.

    An existing file is never rewritten, so the split is drawn once and reused byte-identically.
    """
    from ..core.runfiles import atomic_write_text

    split_file = Path(split_file)
    if split_file.is_file():
        return split_file
    root = _require_dir(Path(root))
    base = _viper_dirs(root)
    a, b = _viper_ids(root, base, "cam_a"), _viper_ids(root, base, "cam_b")
    if sorted(a) != sorted(b):
        alone = sorted({**a, **b}[i] for i in set(a) ^ set(b))
        raise DatasetError(f"cam_a and cam_b of {base} do not hold the same ids; unpaired: {alone[:10]}")
    ids = np.array(sorted(a))
    order = np.random.default_rng(seed).permutation(len(ids))
    train_ids, test_ids = sorted(ids[order[: len(ids) // 2]]), sorted(ids[order[len(ids) // 2:]])
    split = {"seed": seed,
             "train": [[a[i], int(i), 0] for i in train_ids] + [[b[i], int(i), 1] for i in train_ids],
             "query": [[a[i], int(i), 0] for i in test_ids], "gallery": [[b[i], int(i), 1] for i in test_ids]}
    atomic_write_text(split_file, json.dumps([split], indent=1) + "\n")
    return split_file


def read_viper(root: str | Path, split_file: str | Path, split_id: int = 0, dataset: str = "viper") -> pd.DataFrame:
    """Records of VIPeR under `root` by a torchreid-format split file (paths matched by camera folder and name)."""
    root = _require_dir(Path(root))
    base = _viper_dirs(root)
    split_file = _require_file(Path(split_file))
    splits = json.loads(split_file.read_text())
    splits = splits if isinstance(splits, list) else [splits]
    if split_id >= len(splits) or not all(k in splits[split_id] for k in ("train", "query", "gallery")):
        raise DatasetError(f"{split_file} has no split {split_id} with train/query/gallery lists")
    rows = []
    for s in ("train", "query", "gallery"):
        for path, _label, _cam in splits[split_id][s]:
            parts = Path(str(path).replace("\\", "/")).parts
            cam, name = parts[-2], parts[-1]
            m = VIPER_NAME.match(name)
            if cam not in ("cam_a", "cam_b") or not m:
                raise DatasetError(f"path in {split_file} is not a VIPeR cam_a/cam_b image: {path}")
            p = base / cam / name
            if not p.is_file():
                raise DatasetError(f"image listed in {split_file.name} is missing: {p}")
            rows.append(Record(p.relative_to(root).as_posix(), int(m.group(1)), 1 if cam == "cam_a" else 2, s, dataset))
    return check_splits(_frame(rows), root)


# ---------------------------------------------------------------- Airport
AIRPORT_FILES = ("filepath.txt", "personID.txt", "camID.txt", "Partition_airport.mat")
AIRPORT_FIELDS = ("idx_train", "idx_test", "idx_probe", "idx_gallery")


def _mask_or_index(values: np.ndarray, n: int, what: str, path: Path) -> np.ndarray:
    """Positions selected by a MATLAB logical mask of length n, or by 1-based indices."""
    v = np.asarray(values).ravel()
    if v.size == n and set(np.unique(v)) <= {0, 1}:
        return np.flatnonzero(v)
    idx = v.astype(int) - 1
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise DatasetError(f"{what} of {path} points outside its {n} images")
    return idx


def read_airport(root: str | Path, partition_row: int = 0, dataset: str = "airport") -> pd.DataFrame:
    """Records of Airport: aligned `filepath.txt`/`personID.txt`/`camID.txt` and the partition of
    `Partition_airport.mat` (`partition.idx_train`, `idx_test` over all images; row `partition_row` of
    `idx_probe`/`idx_gallery` over the test images)."""
    root = _require_dir(Path(root))
    for f in AIRPORT_FILES:
        _require_file(root / f)
    paths = [ln.strip().replace("\\", "/") for ln in (root / "filepath.txt").read_text().splitlines() if ln.strip()]
    pids = [int(float(x)) for x in (root / "personID.txt").read_text().split()]
    cams = [int(float(x)) for x in (root / "camID.txt").read_text().split()]
    if not len(paths) == len(pids) == len(cams):
        raise DatasetError(f"filepath.txt, personID.txt and camID.txt in {root} are not aligned "
                           f"({len(paths)}, {len(pids)}, {len(cams)} lines)")
    mat_path = root / "Partition_airport.mat"
    part = load_mat(mat_path, ("partition",))["partition"]
    f = {k: _field(part, k, mat_path) for k in AIRPORT_FIELDS}
    n = len(paths)
    train, test = _mask_or_index(f["idx_train"], n, "idx_train", mat_path), _mask_or_index(f["idx_test"], n, "idx_test", mat_path)
    probe, gallery = np.atleast_2d(f["idx_probe"]), np.atleast_2d(f["idx_gallery"])
    if partition_row >= len(probe):
        raise DatasetError(f"{mat_path} has {len(probe)} probe/gallery rows; row {partition_row} asked for")
    rows = []
    for split, idx in (("train", train), ("query", test[_mask_or_index(probe[partition_row], len(test), "idx_probe", mat_path)]),
                       ("gallery", test[_mask_or_index(gallery[partition_row], len(test), "idx_gallery", mat_path)])):
        for i in idx:
            contained(root, paths[i], "filepath.txt")
            if not (root / paths[i]).is_file():
                raise DatasetError(f"image listed in filepath.txt is missing: {root / paths[i]}")
            rows.append(Record(paths[i], pids[i], cams[i], split, dataset))
    return check_splits(_frame(rows), root)


# ---------------------------------------------------------------- one entry point
def read_section(section: Any, root: str | Path, derived: str | Path) -> pd.DataFrame:
    """Records of the dataset a `dataset` config section names (its `reidlib.registry` entry), from the
    root its images are under; `derived` holds files made from it (CUHK03's split, a VIPeR split).
    Every path must stay under `root`."""
    try:
        spec = registry.dataset(section.name)
    except ValueError as e:
        raise DatasetError(str(e)) from None
    recs = spec.read(Path(root), section, Path(derived))
    for rel in recs.image:
        contained(Path(root), rel)
    return recs


def read(name: str, root: str | Path, split_file: str | Path | None = None, cuhk03_variant: str = "detected",
         partition_row: int = 0) -> pd.DataFrame:
    """Records of dataset `name` from the root its images are under (for CUHK03: the derived folder)."""
    section = SimpleNamespace(name=name, split_file=str(split_file or ""), cuhk03_variant=cuhk03_variant,
                              partition_row=partition_row)
    if name == "viper" and not split_file:
        raise DatasetError("VIPeR needs a split file (the supplied splits.json, or one made by make_viper_split)")
    return read_section(section, root, root)


def summary(records: pd.DataFrame) -> pd.DataFrame:
    """Identities, cameras and images per split (the columns of the paper's Table II)."""
    out = records.groupby("split").agg(identities=("pid", "nunique"), cameras=("camid", "nunique"),
                                       images=("image", "size"))
    return out.reindex(["train", "query", "gallery"]).reset_index()


def table_ii_row(records: pd.DataFrame) -> dict[str, int]:
    """One dataset's row in the shape of the paper's Table II (ids and cameras over all splits; pid 0 excluded)."""
    real = records[records.pid > 0]
    n = records.split.value_counts()
    return {"cameras": int(records.camid.nunique()), "identities": int(real.pid.nunique()),
            "train_images": int(n.get("train", 0)), "gallery_images": int(n.get("gallery", 0)),
            "query_images": int(n.get("query", 0))}


def paper_table_ii() -> pd.DataFrame:
    """The paper's Table II (the project's copy in data/paper/datasets_table_II.csv)."""
    path = checkout_root() / "data" / "paper" / "datasets_table_II.csv"
    if not path.is_file():
        raise FileNotFoundError(f"the paper's Table II is missing: {path} (install from a project checkout)")
    return pd.read_csv(path).drop(columns="table")


def compare_table_ii(records: pd.DataFrame, name: str) -> pd.DataFrame:
    """The paper's Table II with this dataset's row appended (same columns)."""
    paper = paper_table_ii().assign(source="paper")
    mine = pd.DataFrame([{"dataset": name, **table_ii_row(records), "source": "this run"}])
    return pd.concat([paper, mine], ignore_index=True)
