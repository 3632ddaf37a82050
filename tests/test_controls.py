"""The control worlds: at share 0 each crop's face is drawn at random (the face carries no identity), at
share 1 only the face separates clothing twins; every control of the book is built by teaching.sweep_config."""
from __future__ import annotations

import pytest

from reidlib.analyses import teaching
from reidlib.core import config


def _cfg(**teaching_keys) -> config.Config:
    return config.from_dict({"run_dir": "/tmp/controls-config-only", "teaching": teaching_keys})


def test_the_negative_control_draws_a_face_per_crop_and_the_positive_keeps_each_identitys_own():
    cfg = _cfg()
    neg, pos = teaching.sweep_config(cfg, 0.0).dataset, teaching.sweep_config(cfg, 1.0).dataset
    assert (neg.face_identity, neg.face_identity_share) == ("random", 0.0)
    assert (pos.face_identity, pos.face_identity_share) == ("own", 1.0)
    assert teaching.sweep_config(cfg, 0.5).dataset.face_identity == "own"


def test_the_old_negative_control_is_one_key_away():
    assert teaching.sweep_config(_cfg(negative_faces="own"), 0.0).dataset.face_identity == "own"
    with pytest.raises(config.ConfigError, match="teaching.negative_faces"):
        _cfg(negative_faces="shuffled")
