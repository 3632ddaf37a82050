"""Shared fixtures: a tiny generated dataset, and the real samples in ../shared/data when present."""
from __future__ import annotations

from pathlib import Path

import pytest

from reidlib import config, synthetic

PROJECT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT.parent / "shared" / "data"


def tiny_dataset_config(**kw) -> config.DatasetConfig:
    base = dict(train_ids=4, test_ids=4, cameras=2, images_per_camera=2)
    base.update(kw)
    return config.DatasetConfig(**base)


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory) -> Path:
    """A small generated dataset, shared by the tests that only read it."""
    root = tmp_path_factory.mktemp("tiny") / "synthetic"
    return synthetic.generate(root, tiny_dataset_config(train_ids=6, test_ids=6, cameras=3), seed=0)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test images absent: {SHARED_DATA} (only in the project's workplace)")
    return SHARED_DATA
