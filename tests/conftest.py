"""Shared fixtures: a tiny generated dataset, and the real samples in ../shared/data when present."""
from __future__ import annotations

from pathlib import Path

import pytest

from reidlib.core import config
from reidlib.stages import synthetic

PROJECT = Path(__file__).resolve().parent.parent
SHARED_DATA = PROJECT.parent / "shared" / "data"


def tiny_dataset_config(**kw) -> config.DatasetConfig:
    # the easy face regime (sharp, frontal, uncovered, 8-20 px): unit tests check the generator's
    # geometry and the stages on faces every detector finds; the hard regime has its own test
    base = dict(train_ids=4, test_ids=4, cameras=2, images_per_camera=2, face_size=(8, 20), face_blur=0.0,
                profile=0.0, occluded=0.0)
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
