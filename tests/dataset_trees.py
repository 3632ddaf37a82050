"""Tiny fixture trees in each real dataset's on-disk format (real naming, real .mat structures).

Images are small generated pictures; every count below is what the readers must return.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import h5py
import numpy as np
import scipy.io


def image_bytes(seed: int, suffix: str = ".jpg", size: tuple[int, int] = (32, 16)) -> bytes:
    """A small random RGB picture encoded as `suffix`."""
    img = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    return cv2.imencode(suffix, img)[1].tobytes()


def write_images(root: Path, names: dict[str, list[str]]) -> Path:
    """Files named `names[sub]` under `root/sub`, each a real image."""
    for sub, files in names.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        for i, f in enumerate(files):
            (root / sub / f).write_bytes(image_bytes(hash((sub, i)) % 1000, Path(f).suffix or ".jpg"))
    return root


MARKET = {"bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c2s3_070952_01.jpg"],
          "query": ["0001_c1s1_001051_00.jpg"],
          "bounding_box_test": ["0001_c3s1_000551_01.jpg", "-1_c1s1_000401_03.jpg", "0000_c1s1_000151_01.jpg"]}

DUKE = {"bounding_box_train": ["0005_c2_f0046985.jpg", "0005_c5_f0051341.jpg", "0008_c3_f0076420.jpg"],
        "query": ["0011_c1_f0058431.jpg", "0012_c6_f0089001.jpg"],
        "bounding_box_test": ["0011_c2_f0058900.jpg", "0012_c7_f0090000.jpg", "0012_c6_f0012000.jpg",
                              "0201_c8_f0100000.jpg"]}


def market_tree(root: Path, top: str = "") -> Path:
    """Market-1501 (3 train, 1 query, gallery: 1 match, 1 junk pid -1, 1 distractor pid 0)."""
    write_images(root / top if top else root, MARKET)
    return root


def duke_tree(root: Path) -> Path:
    """DukeMTMC-reID inside its usual top folder: 3 train (2 ids), 2 query, 4 gallery."""
    write_images(root / "DukeMTMC-reID", DUKE)
    return root


# CUHK03: 2 camera pairs x 3 persons; images 0-4 are view 1, 5-9 view 2; None marks an empty cell.
CUHK03_PRESENT = {(0, 0): [0, 1, 5, 6], (0, 1): [0, 5], (0, 2): [1, 2, 7],
                  (1, 0): [0, 5, 6, 7], (1, 1): [0, 1, 5], (1, 2): [3, 8]}


def cuhk03_image(pair: int, person: int, img: int) -> np.ndarray:
    """The (H, W, 3) RGB array stored for one CUHK03 cell."""
    return np.full((24, 12, 3), (pair * 50 + person * 10 + img) % 256, np.uint8) + \
        np.arange(3, dtype=np.uint8)[None, None, :]


def cuhk03_names() -> list[str]:
    """File names torchreid gives the fixture's images (in pair, person, image order)."""
    return [f"{p + 1}_{q + 1:03d}_{1 if i < 5 else 2}_{i + 1:02d}.png"
            for (p, q), imgs in sorted(CUHK03_PRESENT.items()) for i in imgs]


def cuhk03_tree(root: Path, drop_key: str | None = None) -> Path:
    """`cuhk03_release/cuhk-03.mat` (v7.3, HDF5 references) and the new-protocol configs beside it.

    Split: pair 1's persons train (ids 1-3, 9 images); pair 2's persons test, view 1 query (4 images),
    view 2 gallery (5 images).
    """
    rel = root / "cuhk03_release"
    rel.mkdir(parents=True, exist_ok=True)
    with h5py.File(rel / "cuhk-03.mat", "w") as f:
        refs = f.create_group("#refs#")
        for variant in ("detected", "labeled"):
            pair_refs = []
            for pair in range(2):
                cells = np.empty((10, 3), dtype=h5py.ref_dtype)  # MATLAB order: transposed on reading
                for person in range(3):
                    for img in range(10):
                        present = img in CUHK03_PRESENT[(pair, person)]
                        data = cuhk03_image(pair, person, img).T if present else np.zeros(2, np.uint64)
                        cells[img, person] = refs.create_dataset(f"{variant}{pair}{person}{img}", data=data).ref
                pair_refs.append(refs.create_dataset(f"{variant}_pair{pair}", data=cells).ref)
            f.create_dataset(variant, data=np.array([pair_refs], dtype=h5py.ref_dtype))
    names = cuhk03_names()
    labels = [(int(n[0]) - 1) * 3 + int(n[2:5]) for n in names]
    train = [i + 1 for i, n in enumerate(names) if n[0] == "1"]
    query = [i + 1 for i, n in enumerate(names) if n[0] == "2" and n[6] == "1"]
    gallery = [i + 1 for i, n in enumerate(names) if n[0] == "2" and n[6] == "2"]
    for variant in ("detected", "labeled"):
        conf = {"filelist": np.array(names, dtype=object), "labels": np.array(labels, float)[:, None],
                "camId": np.array([int(n[6]) for n in names], float)[:, None],
                "train_idx": np.array(train, float)[:, None], "query_idx": np.array(query, float)[:, None],
                "gallery_idx": np.array(gallery, float)[:, None]}
        if drop_key:
            conf.pop(drop_key)
        scipy.io.savemat(root / f"cuhk03_new_protocol_config_{variant}.mat", conf)
    return root


def viper_tree(root: Path, ids: int = 8, extra_b: bool = False) -> Path:
    """`VIPeR/cam_a` and `VIPeR/cam_b`, one .bmp per id and camera (names `<id>_<angle>.bmp`)."""
    a = [f"{i:03d}_{(i * 45) % 360}.bmp" for i in range(ids)]
    b = [f"{i:03d}_{(i * 45 + 90) % 360}.bmp" for i in range(ids + int(extra_b))]
    write_images(root / "VIPeR", {"cam_a": a, "cam_b": b})
    return root


def airport_tree(root: Path, misalign: bool = False, drop_field: str | None = None) -> Path:
    """Airport: 12 images of 6 ids in `cam<NN>\\<pid>\\<n>.jpg`, aligned txt files, `Partition_airport.mat`.

    Images 0-5 (ids 11001-11003) train; 6-11 (ids 20001-20003) test. Partition row 0: probes are test
    images 0, 2, 4 (camera 32), gallery test images 1, 3, 5; row 1 swaps them.
    """
    rows = [(11001 + i // 2, 32 + i % 2) for i in range(6)] + [(20001 + i // 2, 32 + i % 2) for i in range(6)]
    paths = [f"cam{cam}\\{pid:010d}\\{k:04d}.jpg" for k, (pid, cam) in enumerate(rows)]
    for k, p in enumerate(paths):
        f = root / p.replace("\\", "/")
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_bytes(image_bytes(k))
    (root / "filepath.txt").write_text("\r\n".join(paths) + "\r\n")
    pids = [str(pid) for pid, _ in rows] + (["99"] if misalign else [])
    (root / "personID.txt").write_text("\n".join(pids) + "\n")
    (root / "camID.txt").write_text("\n".join(str(c) for _, c in rows) + "\n")
    probe = np.array([[1, 0, 1, 0, 1, 0], [0, 1, 0, 1, 0, 1]], bool)
    part = {"idx_train": np.array([1] * 6 + [0] * 6, bool), "idx_test": np.array([0] * 6 + [1] * 6, bool),
            "idx_probe": probe, "idx_gallery": ~probe}
    if drop_field:
        part.pop(drop_field)
    scipy.io.savemat(root / "Partition_airport.mat", {"partition": part})
    return root
