from pathlib import Path

import pytest

from reidlib import datasets


def make_tree(root: Path, names: dict[str, list[str]]) -> Path:
    for sub, files in names.items():
        (root / sub).mkdir(parents=True, exist_ok=True)
        for f in files:
            (root / sub / f).write_bytes(b"")
    return root


MARKET = {"bounding_box_train": ["0002_c1s1_000451_03.jpg", "0002_c2s1_000301_01.jpg", "0007_c2s3_070952_01.jpg"],
          "query": ["0001_c1s1_001051_00.jpg"],
          "bounding_box_test": ["0001_c3s1_000551_01.jpg", "-1_c1s1_000401_03.jpg", "0000_c1s1_000151_01.jpg"]}


def test_market_records_and_junk_rules(tmp_path):
    recs = datasets.read_market(make_tree(tmp_path, MARKET))
    assert len(recs[recs.split == "train"]) == 3
    assert sorted(recs[recs.split == "gallery"].pid) == [-1, 1]  # distractor kept, junk dropped
    q = recs[recs.split == "query"].iloc[0]
    assert (q.pid, q.camid, q.image) == (1, 1, "query/0001_c1s1_001051_00.jpg")
    s = datasets.summary(recs).set_index("split")
    assert s.loc["train", "identities"] == 2 and s.loc["train", "cameras"] == 2


def test_missing_root_is_named(tmp_path):
    with pytest.raises(datasets.DatasetError, match="nowhere"):
        datasets.read_market(tmp_path / "nowhere")


def test_missing_subfolder_is_named(tmp_path):
    tree = {k: v for k, v in MARKET.items() if k != "query"}
    with pytest.raises(datasets.DatasetError, match="query"):
        datasets.read_market(make_tree(tmp_path, tree))


def test_bad_file_name_is_named(tmp_path):
    tree = {**MARKET, "query": ["0001_c1s1_001051_00.jpg", "person7.jpg"]}
    with pytest.raises(datasets.DatasetError, match="person7.jpg"):
        datasets.read_market(make_tree(tmp_path, tree))


def test_query_id_absent_from_gallery(tmp_path):
    tree = {**MARKET, "query": ["0001_c1s1_001051_00.jpg", "0009_c1s1_001051_00.jpg"]}
    with pytest.raises(datasets.DatasetError, match=r"\[9\]"):
        datasets.read_market(make_tree(tmp_path, tree))


def test_real_market1501_mini(shared_data):
    recs = datasets.read_market(shared_data / "market1501_mini", "market1501")
    s = datasets.summary(recs).set_index("split")
    assert s.loc["train", "identities"] == 16 and s.loc["train", "images"] == 32
    assert s.loc["query", "images"] == 32 and s.loc["gallery", "images"] == 32
