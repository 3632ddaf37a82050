"""Readers of every dataset format (issue: real datasets), on fixture trees with real naming and .mat files."""
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
from dataset_trees import (
    DUKE,
    MARKET,
    airport_tree,
    cuhk03_image,
    cuhk03_names,
    cuhk03_tree,
    duke_tree,
    market_tree,
    viper_tree,
    write_images,
)

from reidlib.core import config, registry, runfiles
from reidlib.pipeline import rundir
from reidlib.stages import anonymize, datasets


def counts(recs: pd.DataFrame) -> dict[str, int]:
    return recs.split.value_counts().to_dict()


def test_market_records_and_junk_rules(tmp_path):
    recs = datasets.read_market(market_tree(tmp_path))
    assert counts(recs) == {"train": 3, "query": 1, "gallery": 2}
    assert sorted(recs[recs.split == "gallery"].pid) == [0, 1]  # distractor (0) kept, junk (-1) dropped
    q = recs[recs.split == "query"].iloc[0]
    assert (q.pid, q.camid, q.image) == (1, 1, "query/0001_c1s1_001051_00.jpg")
    s = datasets.summary(recs).set_index("split")
    assert s.loc["train", "identities"] == 2 and s.loc["train", "cameras"] == 2
    assert datasets.table_ii_row(recs) == {"cameras": 3, "identities": 3, "train_images": 3,
                                           "gallery_images": 2, "query_images": 1}


def test_market_inside_its_release_folder(tmp_path):
    recs = datasets.read("market1501", market_tree(tmp_path, "Market-1501-v15.09.15"))
    assert recs.image.str.startswith("Market-1501-v15.09.15/").all() and len(recs) == 6
    assert all((tmp_path / p).is_file() for p in recs.image)


def test_duke(tmp_path):
    recs = datasets.read("dukemtmcreid", duke_tree(tmp_path))
    assert counts(recs) == {"train": 3, "query": 2, "gallery": 4}
    g = recs[recs.split == "gallery"].sort_values("image")
    assert list(g.pid) == [11, 12, 12, 201] and list(g.camid) == [2, 6, 7, 8]
    assert recs.image.str.startswith("DukeMTMC-reID/bounding_box_").sum() == 7


def test_duke_bad_name_is_named(tmp_path):
    write_images(tmp_path, {**DUKE, "query": ["0011_c1_f0058431.jpg", "0012_c6s1_000451_01.jpg"]})
    with pytest.raises(datasets.DatasetError, match="0012_c6s1_000451_01.jpg"):
        datasets.read_duke(tmp_path)


def test_cuhk03_extracts_once_and_reads_the_new_protocol(tmp_path):
    src, derived = cuhk03_tree(tmp_path / "cuhk03"), tmp_path / "derived"
    datasets.prepare_cuhk03(src, derived, progress=False)
    pngs = sorted(p.name for p in (derived / "images_detected").glob("*.png"))
    assert pngs == sorted(cuhk03_names())  # empty cells skipped, torchreid's naming
    img = cv2.imread(str(derived / "images_detected" / "2_003_2_09.png"))[:, :, ::-1]
    assert np.array_equal(img, cuhk03_image(1, 2, 8))
    recs = datasets.read("cuhk03", derived)
    assert counts(recs) == {"train": 9, "query": 4, "gallery": 5}
    assert sorted(recs[recs.split == "train"].pid.unique()) == [1, 2, 3]
    q = recs[recs.split == "query"]
    assert sorted(q.pid) == [4, 5, 5, 6] and set(q.camid) == {1} and set(recs[recs.split == "gallery"].camid) == {2}
    split = derived / "split_new_detected.json"
    before, stamp = split.read_bytes(), split.stat().st_mtime_ns
    datasets.prepare_cuhk03(src, derived, progress=False)
    assert split.read_bytes() == before and split.stat().st_mtime_ns == stamp
    assert not list(src.rglob("*.png"))  # the original stays untouched


def test_cuhk03_missing_mat_key_is_named(tmp_path):
    src = cuhk03_tree(tmp_path / "cuhk03", drop_key="query_idx")
    with pytest.raises(datasets.DatasetError, match="query_idx"):
        datasets.prepare_cuhk03(src, tmp_path / "derived", progress=False)
    assert not (tmp_path / "derived" / "split_new_detected.json").exists()


def test_viper_split_written_once(tmp_path):
    root = viper_tree(tmp_path / "viper")
    split = datasets.make_viper_split(root, tmp_path / "splits.json")
    recs = datasets.read("viper", root, split)
    assert counts(recs) == {"train": 8, "query": 4, "gallery": 4}
    train_ids, test_ids = set(recs[recs.split == "train"].pid), set(recs[recs.split == "query"].pid)
    assert not train_ids & test_ids and len(train_ids | test_ids) == 8
    assert set(recs[recs.split == "query"].camid) == {1} and set(recs[recs.split == "gallery"].camid) == {2}
    before = split.read_bytes()
    datasets.make_viper_split(root, split, seed=123)  # never reshuffled
    assert split.read_bytes() == before


def test_viper_supplied_torchreid_json(tmp_path):
    root = viper_tree(tmp_path / "viper")
    supplied = tmp_path / "supplied.json"
    supplied.write_text('[{"train": [["C:\\\\data\\\\VIPeR\\\\cam_a\\\\000_0.bmp", 0, 0],'
                        ' ["/data/VIPeR/cam_b/000_90.bmp", 0, 1]],'
                        ' "query": [["/x/VIPeR/cam_a/001_45.bmp", 0, 0]],'
                        ' "gallery": [["/x/VIPeR/cam_b/001_135.bmp", 0, 1]]}]')
    recs = datasets.read_viper(root, supplied)
    assert list(recs.image) == ["VIPeR/cam_a/000_0.bmp", "VIPeR/cam_b/000_90.bmp", "VIPeR/cam_a/001_45.bmp",
                                "VIPeR/cam_b/001_135.bmp"]
    assert list(recs.pid) == [0, 0, 1, 1]


def test_viper_unpaired_camera_is_an_error(tmp_path):
    root = viper_tree(tmp_path / "viper", extra_b=True)
    with pytest.raises(datasets.DatasetError, match="008"):
        datasets.make_viper_split(root, tmp_path / "splits.json")
    assert not (tmp_path / "splits.json").exists()


def test_airport(tmp_path):
    root = airport_tree(tmp_path / "airport")
    recs = datasets.read("airport", root)
    assert counts(recs) == {"train": 6, "query": 3, "gallery": 3}
    q, g = recs[recs.split == "query"], recs[recs.split == "gallery"]
    assert set(q.camid) == {32} and set(g.camid) == {33} and sorted(q.pid) == [20001, 20002, 20003]
    assert q.image.iloc[0] == "cam32/0000020001/0006.jpg"
    other = datasets.read("airport", root, partition_row=1)
    assert set(other[other.split == "query"].camid) == {33}


def test_airport_misaligned_lists_are_an_error(tmp_path):
    with pytest.raises(datasets.DatasetError, match="not aligned"):
        datasets.read_airport(airport_tree(tmp_path / "a", misalign=True))


def test_airport_missing_partition_field_is_named(tmp_path):
    with pytest.raises(datasets.DatasetError, match="idx_gallery"):
        datasets.read_airport(airport_tree(tmp_path / "a", drop_field="idx_gallery"))


def test_missing_root_is_named(tmp_path):
    for name in ("market1501", "dukemtmcreid", "cuhk03", "airport"):
        with pytest.raises(datasets.DatasetError, match="nowhere"):
            datasets.read(name, tmp_path / "nowhere")


def test_missing_subfolder_is_named(tmp_path):
    write_images(tmp_path, {k: v for k, v in MARKET.items() if k != "query"})
    with pytest.raises(datasets.DatasetError, match="query"):
        datasets.read_market(tmp_path)
    with pytest.raises(datasets.DatasetError, match="cam_a"):
        datasets.make_viper_split(tmp_path, tmp_path / "s.json")


def test_bad_file_name_is_named(tmp_path):
    write_images(tmp_path, {**MARKET, "query": ["0001_c1s1_001051_00.jpg", "person7.jpg"]})
    with pytest.raises(datasets.DatasetError, match="person7.jpg"):
        datasets.read_market(tmp_path)


def test_query_id_absent_from_gallery(tmp_path):
    write_images(tmp_path, {**MARKET, "query": ["0001_c1s1_001051_00.jpg", "0009_c1s1_001051_00.jpg"]})
    with pytest.raises(datasets.DatasetError, match=r"\[9\]"):
        datasets.read_market(tmp_path)


def test_unknown_dataset_name(tmp_path):
    with pytest.raises(datasets.DatasetError, match="'mars'"):
        datasets.read("mars", tmp_path)


TREES = {"market1501": market_tree, "dukemtmcreid": duke_tree, "cuhk03": cuhk03_tree, "viper": viper_tree,
         "airport": airport_tree}


@pytest.mark.parametrize("name", sorted(TREES))
def test_pipeline_reads_each_format_and_its_anonymized_copy(tmp_path, name):
    src = TREES[name](tmp_path / name)
    cfg = config.from_dict({"run_dir": str(tmp_path / "run"), "dataset": {"name": name, "root": str(src)}})
    before = sorted(p.relative_to(src).as_posix() for p in src.rglob("*"))
    root = rundir.stage_generate(cfg)
    recs = rundir.records(cfg)
    assert all((root / p).is_file() for p in recs.image)
    empty = pd.DataFrame(columns=["image", "x0", "y0", "x1", "y1"])
    anonymize.anonymize_dataset(root, empty, runfiles.anon_root(cfg), anonymize.Writer("blur"), progress=False,
                                lists=registry.dataset(name).list_files)  # the reader's list files, as stage 3
    pd.testing.assert_frame_equal(rundir.records(cfg, "anon"), recs)  # the same reader reads the copy
    assert sorted(p.relative_to(src).as_posix() for p in src.rglob("*")) == before  # nothing written into it


def test_torchreid_image_dataset(tmp_path):
    from reidlib.models import torchreid_models as trm

    root = duke_tree(tmp_path)
    data = trm.image_dataset(root, datasets.read_duke(root))
    assert data.num_train_pids == 2 and len(data.query) == 2 and len(data.gallery) == 4
    assert sorted({t[1] for t in data.train}) == [0, 1] and {t[2] for t in data.query} == {0, 5}
    assert all(Path(t[0]).is_file() for t in data.train + data.query + data.gallery)


def test_real_market1501_mini(shared_data):
    recs = datasets.read("market1501", shared_data / "market1501_mini")
    s = datasets.summary(recs).set_index("split")
    assert s.loc["train", "identities"] == 16 and s.loc["train", "images"] == 32
    assert s.loc["query", "images"] == 32 and s.loc["gallery", "images"] == 32
