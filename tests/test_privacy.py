"""The privacy chapter: attack scores, the dlib face attacker, head crops, the front, the stage."""
from __future__ import annotations

import importlib.util
import sys

import cv2
import numpy as np
import pandas as pd
import pytest

from reidlib.analyses import controls, face_attack, privacy, teaching
from reidlib.core import config
from reidlib.models import faces as dlib_faces
from reidlib.stages import anonymize, datasets, synthetic
from tests.conftest import tiny_dataset_config

needs_dlib = pytest.mark.skipif(not dlib_faces.available(),
                                reason="dlib / face_recognition_models not installed (pip install dlib-bin "
                                       "face_recognition_models)")


def _faces(n_ids: int = 10, per_id: int = 4) -> pd.DataFrame:
    pids = np.repeat(np.arange(n_ids), per_id)
    cams = np.tile([1, 2], n_ids * per_id // 2)
    split = np.tile(["query", "query", "gallery", "gallery"], n_ids)
    return pd.DataFrame(dict(pid=pids, camid=cams, split=split))


def test_identical_features_score_chance_and_separating_ones_score_all():
    faces = _faces()
    same = face_attack.attack_scores(np.zeros((len(faces), 4)), faces)
    # every face a probe; its gallery: the 38 other faces less its identity's other face from its own camera, 2 of
    # them its identity's (from the other camera); all tied, so Rank-1 and mAP are both 2 / 38
    assert same["rank1"] == pytest.approx(100 / 19) and same["map"] == pytest.approx(100 / 19)
    assert same == face_attack.chance_scores(faces)
    n_imp = (len(faces) * (len(faces) - 1) - 10 * 4 * 3) // 2
    assert same["tar_far0.01"] == pytest.approx(100 * (np.floor(0.01 * n_imp) + 1) / (n_imp + 1))
    onehot = np.eye(10)[faces.pid] + np.random.default_rng(0).normal(0, 0.01, (len(faces), 10))
    assert face_attack.attack_scores(onehot, faces) == {"rank1": 100.0, "map": 100.0, "tar_far0.01": 100.0,
                                                        "tar_far0.001": 100.0}
    assert len(face_attack.identification_hits(onehot, faces.pid, faces.camid)) == len(faces)  # every face a probe


def test_attacker_map_ranks_every_true_match():
    # one identity's faces 0 and 1 (cameras 1, 2), another's 2 and 3; face 0 sits nearer the other identity
    feats = np.array([[0.0], [3.0], [10.0], [11.0]])
    faces = pd.DataFrame(dict(pid=[0, 0, 1, 1], camid=[1, 2, 1, 2]))
    # probe 0's ranking: 1 (true, 3.0), 2, 3 -> AP 1; probe 1: 0 (true) at 3.0 -> AP 1; probes 2 and 3: AP 1
    assert face_attack.identification_map(feats, faces.pid, faces.camid) == pytest.approx(100.0)
    feats = np.array([[0.0], [12.0], [10.0], [11.0]])  # probe 0: 2, 3, 1 -> AP 1/3; probe 1: 3, 2, 0 -> 1/3
    got = face_attack.identification_map(feats, faces.pid, faces.camid)
    # probe 2: 3 (true, 1.0) first -> 1; probe 3: 2 (1.0, true) and 1 (1.0) tied, one step -> 1/2
    assert got == pytest.approx(100 * (1 / 3 + 1 / 3 + 1 + 1 / 2) / 4)
    assert face_attack.identification_rank1(feats, faces.pid, faces.camid) == pytest.approx(100 * (0 + 0 + 1 + 0.5) / 4)
    assert face_attack.probe_count(faces.pid, faces.camid) == 4
    assert face_attack.probe_count(faces.pid, [1, 1, 1, 2]) == 2  # identity 0 seen by one camera only: no probe


def test_attack_scores_need_matches():
    faces = _faces(2, 4).assign(pid=[0, 1, 2, 3, 4, 5, 6, 7])
    with pytest.raises(ValueError, match="genuine"):
        face_attack.attack_scores(np.zeros((8, 2)), faces)


def test_model_files_are_found_without_importing_their_package():
    if importlib.util.find_spec("face_recognition_models") is None:
        pytest.skip("face_recognition_models not installed")
    path = dlib_faces.model_file("descriptor")
    assert path.is_file() and path.name == "dlib_face_recognition_resnet_model_v1.dat"
    assert "face_recognition_models" not in sys.modules
    with pytest.raises(ValueError, match="unknown dlib model"):
        dlib_faces.model_file("nose")


def test_face_chip_uses_only_the_box():
    img = np.random.default_rng(0).integers(0, 255, (128, 64, 3), dtype=np.uint8)
    wiped = img.copy()
    wiped[:20] = 7  # everything around the box changes
    wiped[40:] = 200
    a, b = dlib_faces.face_chip(img, (20, 25, 40, 39)), dlib_faces.face_chip(wiped, (20, 25, 40, 39))
    assert a.shape == (150, 150, 3) and np.array_equal(a, b)
    with pytest.raises(ValueError, match="empty face box"):
        dlib_faces.face_chip(img, (70, 5, 90, 20))


def _generated(tmp_path, width: int):
    root = synthetic.generate(tmp_path / f"w{width}", tiny_dataset_config(train_ids=2, test_ids=8, cameras=2,
                                                                         face_size=(width, width)), seed=0)
    faces = pd.read_csv(root / "face_boxes.csv").merge(datasets.read_market(root, "synthetic"), on="image")
    return root, faces[faces.split != "train"].reset_index(drop=True)


@needs_dlib
def test_face_attacker_finds_unmodified_faces_and_not_zeroed_ones(tmp_path):
    """At 24 px faces dlib is well above chance; zeroing every true face box leaves it at chance exactly
    (in memory: a JPEG copy's ringing at the box edge carries the surroundings into the box)."""
    root, faces = _generated(tmp_path, 24)
    chance = face_attack.chance_scores(faces)
    orig = face_attack.attack_scores(privacy.face_features(root, faces), faces)
    assert orig["rank1"] > 50 > 5 * chance["rank1"]
    assert orig["tar_far0.01"] > 10 * chance["tar_far0.01"]
    chips = []
    for r in faces.itertuples():
        box = (r.x0, r.y0, r.x1, r.y1)
        img = cv2.cvtColor(cv2.imread(str(root / r.image)), cv2.COLOR_BGR2RGB)
        chips.append(dlib_faces.face_chip(anonymize.anonymize_image(img, [box], "zero"), box))
    zeroed = face_attack.attack_scores(dlib_faces.describe(chips), faces)
    assert zeroed == pytest.approx(chance)


def test_head_crop_is_centred_on_the_face():
    img = np.zeros((128, 64, 3), np.uint8)
    img[20:30, 30:40] = 255  # a 10 px face
    crop = privacy.head_crop(img, (30, 20, 40, 30), 2.0, (64, 64))
    assert crop.shape == (64, 64, 3)
    ys, xs = np.nonzero(crop[..., 0] > 128)
    assert (ys.min(), ys.max(), xs.min(), xs.max()) == pytest.approx((16, 47, 16, 47), abs=1)


def test_pareto_front_and_knee():
    attack = np.array([90.0, 50.0, 10.0, 60.0, 10.0, np.nan])
    util = np.array([80.0, 70.0, 20.0, 60.0, 10.0, 50.0])
    front = privacy.pareto_front(attack, util)
    assert front.tolist() == [True, True, True, False, False, False]  # 3 is beaten by 1, 4 by 2
    assert privacy.knee(attack, util, front) == 1


def test_points_and_config():
    cfg = config.from_dict({"privacy": {"blur_ratios": [0.0625, 0.5], "pixelate_sizes": [4], "techniques": ["blank"]}})
    labels = [p.label for p in privacy.points(cfg.privacy)]
    assert labels == ["none", "blur_0.0625", "blur_0.5", "pixelate_4", "blank"]
    assert privacy.Point("pixelate", 4.0).params() == {"size": 4}
    assert privacy.run_point(cfg).label == "blur_0.125"
    with pytest.raises(config.ConfigError, match="privacy.techniques"):
        config.from_dict({"privacy": {"techniques": ["blur"]}})
    with pytest.raises(config.ConfigError, match="privacy.align"):
        config.from_dict({"privacy": {"align": "eyes"}})
    with pytest.raises(config.ConfigError, match="privacy.head_frozen_blocks"):
        config.from_dict({"privacy": {"head_model": "osnet_x0_25"}})  # the default 11 frozen blocks: BoT only
    head = privacy.head_training(config.from_dict({}))  # the default attacker starts from ImageNet, trunk kept
    assert (head.model, head.pretrained, head.frozen_blocks, head.image_size) == ("bot_mnv2", "imagenet", 11, (96, 96))


def test_stage_privacy_trains_the_head_attacker_through_the_stage_functions(tmp_path):
    """The whole stage on a tiny run: the head attacker is trained by `training.train` for every point
    and control, utility comes from the run's model, and a second call reuses the file."""
    cfg = config.load("config/tiny.yaml", {
        "run_dir": str(tmp_path / "run"), "models": {},
        "privacy": {"blur_ratios": [0.125], "pixelate_sizes": [], "techniques": ["zero"], "face_attacker": False,
                    "head_epochs": 1, "control_seeds": [0]}})
    out = privacy.stage_privacy(cfg, progress=False)
    res = privacy.load(cfg)
    pts = res["points"]
    assert pts.label.tolist() == ["none", "blur_0.125", "zero"]
    assert (pts.head_rank1.between(0, 100)).all() and pts.map_orig_anon.notna().all()
    assert pts.loc[pts.label == "blur_0.125", "map_anon_anon"].notna().all()  # the run's own point
    assert pts.loc[pts.label == "zero", "map_anon_anon"].isna().all()  # retrain is off
    for p in pts.label:
        assert (out.parent / "head_models" / p / "model.pt").is_file()
    ctrl = res["controls"]
    assert sorted(ctrl.face_identity_share.unique()) == [0.0, 1.0] and set(ctrl.variant) == {"original", "anonymized"}
    for share, c in ctrl.groupby("face_identity_share"):  # each world's own floor, on the faces it scores
        faces = privacy.test_faces(teaching.sweep_config(cfg, share))
        floor = face_attack.chance_scores(faces[faces.split != "train"], privacy.FARS)["rank1"]
        assert np.allclose(c.chance_rank1, floor, atol=1e-3)
    assert res["summary"]["face_attacker"] is False and "false" in res["summary"]["face_attacker_reason"]
    assert {f["protocol"] for f in res["summary"]["fronts"]} == {"orig_anon"}
    stamp = out.stat().st_mtime_ns
    assert privacy.stage_privacy(cfg, progress=False) == out and out.stat().st_mtime_ns == stamp


def test_per_probe_aps_average_to_the_attackers_map():
    feats = np.array([[0.0], [12.0], [10.0], [11.0]])
    faces = pd.DataFrame(dict(pid=[0, 0, 1, 1], camid=[1, 2, 1, 2]))
    aps = face_attack.identification_aps(feats, faces.pid, faces.camid)
    assert aps.to_dict() == pytest.approx({0: 100 / 3, 1: 100 / 3, 2: 100.0, 3: 50.0})
    assert aps.mean() == pytest.approx(face_attack.identification_map(feats, faces.pid, faces.camid))


@needs_dlib
def test_face_controls_score_every_probe_of_both_worlds_on_both_copies(tmp_path):
    cfg = config.load("config/tiny.yaml", {"run_dir": str(tmp_path / "run"), "models": {}})
    fc = privacy.face_controls(cfg)
    assert set(fc.columns) == set(privacy.FACE_CONTROL_COLUMNS)
    assert sorted(fc.face_identity_share.unique()) == [0.0, 1.0] and set(fc.variant) == {"original", "anonymized"}
    for share, world in fc.groupby("face_identity_share"):
        faces = privacy.test_faces(teaching.sweep_config(cfg, share))
        test = faces[faces.split != "train"]
        for _, g in world.groupby("variant"):  # every probe of the world's test faces, paired by probe and image
            assert len(g) == face_attack.probe_count(test.pid, test.camid)
            assert g.ap.between(0, 100).all() and g.hit.between(0, 1).all()
        orig, anon = (world[world.variant == v].set_index("probe") for v in ("original", "anonymized"))
        assert orig.image.equals(anon.image)
    assert controls._face_attacker_row(fc)["verdict"] in (controls.PASSES, controls.FAILS, controls.CANNOT)


@needs_dlib
def test_identical_chips_are_described_once_with_the_descriptor_each_would_get(monkeypatch):
    rng = np.random.default_rng(0)
    face = rng.integers(0, 255, (150, 150, 3), np.uint8)
    black = np.zeros((150, 150, 3), np.uint8)
    alone = dlib_faces.describe([face])[0], dlib_faces.describe([black])[0]
    dlib, net, predictor = dlib_faces._models()
    calls = []

    class Counting:
        def compute_face_descriptor(self, chip):
            calls.append(chip.sum())
            return net.compute_face_descriptor(chip)

    monkeypatch.setattr(dlib_faces, "_models", lambda: (dlib, Counting(), predictor))
    rows = dlib_faces.describe([black, face, black.copy(), black])
    assert len(calls) == 2
    np.testing.assert_array_equal(rows, np.stack([alone[1], alone[0], alone[1], alone[1]]))
