"""The control worlds: at share 0 each crop's face is drawn at random (the face carries no identity), at
share 1 only the face separates clothing twins; every control of the book is built by teaching.sweep_config."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from reidlib.analyses import teaching
from reidlib.core import config, images
from reidlib.stages import synthetic


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


def test_the_controls_train_the_runs_models_with_their_recipes_seeds_and_size():
    cfg = _cfg()
    for share in (0.0, 1.0):
        sub = teaching.sweep_config(cfg, share)
        assert list(config.trainings(sub)) == list(config.trainings(cfg)) == ["hacnn", "bot_mnv2"]
        for name, t in config.trainings(cfg).items():
            assert config.recipe(config.trainings(sub)[name]) == config.recipe(t)
            assert config.trainings(sub)[name].seeds == t.seeds
        d, run = sub.dataset, cfg.dataset
        assert (d.train_ids, d.test_ids, d.cameras) == (run.train_ids, run.test_ids, run.cameras)
        assert tuple(d.face_size) == tuple(cfg.teaching.face_size) and (d.face_blur, d.profile, d.occluded) == (0, 0, 0)
    small = teaching.sweep_config(_cfg(train_ids=12, test_ids=10, cameras=3, epochs=2), 1.0)
    assert (small.dataset.train_ids, small.dataset.test_ids, small.dataset.cameras) == (12, 10, 3)
    assert {t.epochs for t in config.trainings(small).values()} == {2}
    with pytest.raises(config.ConfigError, match="teaching.cameras"):
        _cfg(cameras=1)


def test_in_the_positive_control_only_the_face_tells_twins_apart():
    """Share 1: every identity has a clothing twin, and two twins drawn in the same place and light are the
    same picture outside the face (blurred by the camera's optics a few pixels beyond the box)."""
    ds = teaching.sweep_config(_cfg(), 1.0).dataset
    people = synthetic.make_identities(ds, 0)
    by_pid = {p.pid: p for p in people}
    pairs = [(p, by_pid[p.clothing_source]) for p in people if p.clothing_source != p.pid]
    assert sorted(x.pid for pair in pairs for x in pair) == sorted(by_pid)  # everyone has exactly one twin
    faces = images.lfw_faces()
    cam = synthetic.make_cameras(ds, 0)[0]
    margin = int(np.ceil(3 * cam.blur)) + 1
    for a, b in pairs[:6]:
        (img_a, box), (img_b, box_b) = (synthetic.render(p, cam, faces[p.face_index], 20, np.random.default_rng(7))
                                        for p in (a, b))
        assert box == box_b
        near = np.zeros(img_a.shape[:2], bool)
        near[max(box[1] - margin, 0):box[3] + margin, max(box[0] - margin, 0):box[2] + margin] = True
        assert (img_a[~near] == img_b[~near]).all()
        assert np.abs(img_a[box[1]:box[3], box[0]:box[2]].astype(int) - img_b[box[1]:box[3], box[0]:box[2]]).mean() > 5


def test_a_face_only_world_shows_only_the_face_and_a_face_blind_world_everything_else(tmp_path):
    img = np.random.default_rng(0).integers(0, 255, (128, 64, 3)).astype(np.uint8)
    box = (20, 10, 40, 30)
    only, blind = synthetic.masked(img, box, "face_only"), synthetic.masked(img, box, "face_blind")
    inside = np.zeros(img.shape[:2], bool)
    inside[10:30, 20:40] = True
    assert (only[inside] == img[inside]).all() and (only[~inside] == synthetic.GREY).all()
    assert (blind[~inside] == img[~inside]).all() and (blind[inside] == synthetic.GREY).all()
    assert (synthetic.masked(img, None, "face_only") == synthetic.GREY).all()  # the back of a head: nothing
    assert synthetic.masked(img, box, "all") is img
    with pytest.raises(config.ConfigError, match="dataset.visible"):
        config.from_dict({"dataset": {"visible": "face"}})


def test_the_model_controls_are_the_positive_world_masked_on_the_first_seeds():
    cfg = _cfg()
    top = teaching.sweep_config(cfg, 1.0)
    for visible in ("face_only", "face_blind"):
        sub = teaching.model_control_config(cfg, visible)
        assert sub.dataset.visible == visible and sub.run_path.name == f"{top.run_path.name}_{visible}"
        assert config.to_dict(sub.dataset) == {**config.to_dict(top.dataset), "visible": visible}
        assert {m: t.seeds for m, t in config.trainings(sub).items()} == {"hacnn": [0], "bot_mnv2": [0]}
        assert {m: config.recipe(t) for m, t in config.trainings(sub).items()} == \
            {m: config.recipe(t) for m, t in config.trainings(top).items()}
    with pytest.raises(config.ConfigError, match="teaching.model_controls"):
        _cfg(model_controls=["all"])


def test_the_sweep_evaluates_each_training_where_it_trains(tmp_path):
    """Each sweep job trains and then evaluates (orig/orig, orig→anon) side by side with the others, so the
    chapter finds every world's results made; with teaching.retrain the evaluation waits for both trainings."""
    from reidlib.core import runfiles

    cfg = config.load("config/tiny.yaml", {"run_dir": str(tmp_path / "run"), "models": {},
                                           "training": {"seeds": [0]},
                                           "teaching": {"model_controls": ["face_only"]}})
    teaching.train_sweep(cfg, progress=False)
    for sub in (teaching.sweep_config(cfg, 0.0), teaching.sweep_config(cfg, 1.0),
                teaching.model_control_config(cfg, "face_only")):
        res = runfiles.model_results_path(sub, "hacnn", 0)
        assert res.is_file() and set(pd.read_csv(res).protocol) == {"orig_orig", "orig_anon"}
    retrained = config.load("config/tiny.yaml", {"run_dir": str(tmp_path / "retrain"), "models": {},
                                                 "training": {"seeds": [0]},
                                                 "teaching": {"model_controls": [],
                                                              "retrain": True}})
    teaching.train_sweep(retrained, progress=False)
    assert not runfiles.model_results_path(teaching.sweep_config(retrained, 1.0), "hacnn", 0).is_file()


def test_the_face_removed_completely_leaves_the_face_only_world_no_face(tmp_path):
    """The removal copies of a face-only world: on the true boxes, zero leaves grey and black only (the face's
    pixels gone); the table has each (boxes, technique) per model and seed, its drop the difference it shows."""
    from reidlib.analyses import attribution
    from reidlib.models.zoo import display_name
    from reidlib.pipeline import rundir
    from reidlib.stages import evaluation

    cfg = config.load("config/tiny.yaml", {"run_dir": str(tmp_path / "run"), "models": {},
                                           "training": {"seeds": [0]}, "teaching": {"model_controls": ["face_only"]}})
    sub = teaching.model_control_config(cfg, "face_only")
    teaching.train_sweep(cfg, progress=False)
    test, copies = attribution.removal_copies(sub)
    assert set(copies) == {(b, t) for b in ("detected", "truth") for t in (cfg.anonymization.technique, "zero")}
    for raw, orig, (_, r) in zip(copies[attribution.REMOVAL], test.raws, test.all.iterrows()):
        img = images.decode_image(raw, r.image).astype(int)
        face = test.boxes.get(r.image, [])
        if not len(face):
            assert raw is orig  # nothing to remove: the very file
            continue
        x0, y0, x1, y1 = np.asarray(face[0], int)
        inside = np.zeros(img.shape[:2], bool)
        inside[y0:y1, x0:x1] = True
        near = np.zeros_like(inside)
        near[max(y0 - 8, 0):y1 + 8, max(x0 - 8, 0):x1 + 8] = True  # JPEG's 8x8 blocks blur the edge
        assert np.abs(img[~near] - synthetic.GREY).mean() < 3
        assert img[inside & np.roll(np.roll(inside, 3, 0), 3, 1) & np.roll(np.roll(inside, -3, 0), -3, 1)].mean() < 20
        orig_img = images.decode_image(orig, r.image).astype(int)
        assert np.abs(orig_img[inside] - synthetic.GREY).mean() > 20  # there was a face to remove
    table = attribution.model_control_removal(cfg)
    assert len(table) == 4 * len(config.trainings(sub)) and set(table.visible) == {"face_only"} and set(table.seed) == {0}
    assert np.allclose(table["drop"], table.orig_orig - table.after)
    assert table.floor.iloc[0] == evaluation.random_ranking_map(rundir.records(sub), sub.seed)
    protocol = table[(table.boxes == "detected") & (table.technique == cfg.anonymization.technique)]
    for r in protocol.itertuples():  # the protocol's copy, tested as stage 5 tests it: stage 5's numbers
        model = {display_name(m): m for m in config.trainings(sub)}[r.model]
        res = pd.read_csv(rundir.stage_evaluate_model(sub, model, False, r.seed, retrain=False)).set_index("protocol")
        assert abs(r.orig_orig - res.loc["orig_orig", "mAP"]) < 1e-3 and abs(r.after - res.loc["orig_anon", "mAP"]) < 1e-3
