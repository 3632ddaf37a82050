import numpy as np
import pandas as pd
import pytest
from conftest import tiny_dataset_config
from PIL import Image

from reidlib.core import config, images, runfiles
from reidlib.stages import datasets, synthetic


def test_layout_naming_and_size(tiny_root):
    recs = datasets.read_market(tiny_root, "synthetic")
    assert set(recs.split) == {"train", "query", "gallery"}
    for rel in recs.image:
        name = rel.split("/")[1]
        assert datasets.MARKET_NAME.match(name), name
        assert "s1_" in name and name.endswith("_01.jpg")
    with Image.open(tiny_root / recs.image.iloc[0]) as im:
        assert im.size == (64, 128) and im.mode == "RGB"
    train_ids = set(recs[recs.split == "train"].pid)
    test_ids = set(recs[recs.split != "train"].pid)
    assert train_ids.isdisjoint(test_ids)


def test_every_query_has_a_gallery_match_from_another_camera(tiny_root):
    recs = datasets.read_market(tiny_root)
    g = recs[recs.split == "gallery"]
    for q in recs[recs.split == "query"].itertuples():
        assert ((g.pid == q.pid) & (g.camid != q.camid)).any()


def test_deterministic_from_seed(tmp_path):
    cfg = tiny_dataset_config()
    a = synthetic.generate(tmp_path / "a", cfg, seed=3)
    b = synthetic.generate(tmp_path / "b", cfg, seed=3)
    c = synthetic.generate(tmp_path / "c", cfg, seed=4)
    assert runfiles.fingerprint_files(a) == runfiles.fingerprint_files(b)
    assert runfiles.fingerprint_files(a) != runfiles.fingerprint_files(c)


def test_ground_truth_boxes(tiny_root):
    recs = datasets.read_market(tiny_root)
    truth = pd.read_csv(tiny_root / "face_boxes.csv")
    assert set(truth.image) <= set(recs.image)
    widths = truth.x1 - truth.x0
    assert widths.between(8, 20).all()
    assert ((truth.x0 >= 0) & (truth.y0 >= 0) & (truth.x1 <= 64) & (truth.y1 <= 128)).all()
    assert 0.5 < len(truth) / len(recs) < 1.0  # some heads turned away, most not


def test_face_pixels_are_the_lfw_face(tmp_path):
    """The pasted face correlates with its LFW source, not with another LFW face."""
    cfg = tiny_dataset_config(turned_away=0.0)
    root = synthetic.generate(tmp_path / "d", cfg, seed=1)
    truth = pd.read_csv(root / "face_boxes.csv")
    ids = pd.read_csv(root / "identities.csv").set_index("pid")
    faces = images.lfw_faces()
    r = truth.assign(w=truth.x1 - truth.x0).sort_values("w").iloc[-1]
    pid = int(r.image.split("/")[1].split("_")[0])
    crop = np.asarray(Image.open(root / r.image).convert("L"), float)[r.y0:r.y1, r.x0:r.x1]
    import cv2
    def corr(face):
        f = cv2.resize(face, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_AREA)
        c = (crop - crop.mean()).ravel(); f = (f - f.mean()).ravel()
        return float(c @ f / np.linalg.norm(c) / np.linalg.norm(f))
    own = corr(faces[ids.loc[pid, "face_index"]])
    others = [corr(faces[i]) for i in range(100) if i != ids.loc[pid, "face_index"]]
    assert own > 0.5 and own > np.percentile(others, 95)


@pytest.mark.parametrize("share", [0.0, 0.5, 1.0])
def test_face_identity_share_sets_clothing_twins(tmp_path, share):
    cfg = tiny_dataset_config(train_ids=8, test_ids=8, face_identity_share=share)
    ids = synthetic.make_identities(cfg, seed=0)
    twins = [p for p in ids if p.clothing_source != p.pid]
    assert len(twins) == 2 * round(share * 8 / 2)
    by_pid = {p.pid: p for p in ids}
    for t in twins:
        src = by_pid[t.clothing_source]
        assert (t.upper, t.lower, t.hair, t.build) == (src.upper, src.lower, src.hair, src.build)
        assert t.face_index != src.face_index and t.split == src.split


def test_interrupted_generation_leaves_nothing(tmp_path, monkeypatch):
    calls = {"n": 0}
    real = synthetic.render

    def flaky(*a, **k):
        calls["n"] += 1
        if calls["n"] == 5:
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(synthetic, "render", flaky)
    with pytest.raises(KeyboardInterrupt):
        synthetic.generate(tmp_path / "x", tiny_dataset_config(), seed=0)
    assert list(tmp_path.iterdir()) == []


def test_other_configuration_is_refused(tmp_path):
    synthetic.generate(tmp_path / "x", tiny_dataset_config(), seed=0)
    with pytest.raises(FileExistsError, match="another configuration"):
        synthetic.generate(tmp_path / "x", tiny_dataset_config(train_ids=5), seed=0)


def test_hard_face_regime_off_leaves_the_plan_unchanged_and_on_makes_faces_a_detector_misses(tmp_path):
    """The harder regime (small, blurred, profile, covered faces) draws from its own random stream, so
    with it off the plan is the easy one; with it on, CenterFace misses small and covered faces more
    often than large uncovered ones, as detectors do on real data."""
    from reidlib.core import config
    from reidlib.stages import detection, recall

    easy = tiny_dataset_config(train_ids=20, test_ids=20, cameras=4, images_per_camera=2, face_size=(5, 20))
    hard = tiny_dataset_config(train_ids=20, test_ids=20, cameras=4, images_per_camera=2, face_size=(5, 20),
                               face_blur=1.0, profile=0.3, occluded=0.3)
    p_easy, p_hard = synthetic.plan(easy, 0), synthetic.plan(hard, 0)
    same = ["pid", "camid", "split", "frame", "face_w", "turned_away", "image"]
    assert p_easy[same].equals(p_hard[same])
    assert not p_easy.profile.any() and not p_easy.occluded.any() and (p_easy.face_blur == 0).all()
    assert 0.15 < p_hard.profile.mean() < 0.45 and 0.15 < p_hard.occluded.mean() < 0.45
    root = synthetic.generate(tmp_path / "hard", hard, seed=0)
    truth = pd.read_csv(root / "face_boxes.csv")
    assert set(synthetic.TRUTH_CONDITIONS) <= set(truth.columns)
    ratio = (truth.x1 - truth.x0) / (truth.y1 - truth.y0)
    assert ratio[truth.profile].median() < 0.85 < ratio[~truth.profile].median()  # profiles are narrower
    det = detection.detector_from_config(config.DetectionConfig())
    rows = [(rel, *b[:5]) for rel in truth.image.unique()
            for b in det(images.read_rgb(root / rel))]
    dets = pd.DataFrame(rows, columns=["image", "x0", "y0", "x1", "y1", "score"])
    matched = recall.match(truth, dets)
    width = truth.x1 - truth.x0
    small, large = matched.matched[width <= 8].mean(), matched.matched[(width >= 14) & ~truth.occluded].mean()
    assert small < large - 0.2, (small, large)
    assert matched.matched[truth.occluded].mean() < matched.matched[~truth.occluded].mean()
    result = recall.evaluate(truth, dets)
    conditions = [r["condition"] for r in result["by_condition"]]
    assert conditions[:4] == ["frontal", "profile", "uncovered", "partly covered"]


def _faces_by_pid(root) -> pd.DataFrame:
    truth = pd.read_csv(root / "face_boxes.csv")
    return truth.assign(pid=truth.image.str.split("/").str[1].str[:4].astype(int))


def test_own_faces_carry_identity_and_random_faces_carry_none(tmp_path):
    """dataset.face_identity: own gives every crop of an identity its one face; random (the negative
    control) draws each crop's face on its own, so a face says nothing about who it is."""
    own = _faces_by_pid(synthetic.generate(tmp_path / "own", tiny_dataset_config(turned_away=0.0), seed=3))
    ids = pd.read_csv(tmp_path / "own" / "identities.csv").set_index("pid")
    assert (own.groupby("pid").face_index.nunique() == 1).all()
    assert (own.face_index == ids.loc[own.pid, "face_index"].to_numpy()).all()
    cfg = tiny_dataset_config(turned_away=0.0, face_identity="random", images_per_camera=4)
    rand = _faces_by_pid(synthetic.generate(tmp_path / "random", cfg, seed=3))
    per_pid = rand.groupby("pid").face_index.nunique()
    assert (per_pid > 1).all() and per_pid.mean() > 0.8 * rand.groupby("pid").size().mean()
    # the same clothing, drawn twice, shows other faces: the face is not a function of the identity
    assert (pd.read_csv(tmp_path / "random" / "identities.csv").face_index == -1).all()
    same = synthetic.generate(tmp_path / "random2", cfg, seed=3)
    assert (pd.read_csv(same / "face_boxes.csv").face_index == rand.face_index).all()  # deterministic


def test_a_random_face_world_pastes_the_face_it_records(tmp_path):
    """Among the 100 LFW faces, the one face_boxes.csv records ranks near the top for its crop (a record
    shuffled against the crops would rank about 50th)."""
    cfg = tiny_dataset_config(turned_away=0.0, face_identity="random")
    root = synthetic.generate(tmp_path / "d", cfg, seed=1)
    truth = pd.read_csv(root / "face_boxes.csv")
    faces = images.lfw_faces()
    import cv2
    ranks = []
    for r in truth[truth.x1 - truth.x0 >= 16].itertuples():
        crop = np.asarray(Image.open(root / r.image).convert("L"), float)[r.y0:r.y1, r.x0:r.x1]
        c = (crop - crop.mean()).ravel()
        scores = []
        for face in faces:
            f = cv2.resize(face, (crop.shape[1], crop.shape[0]), interpolation=cv2.INTER_AREA).ravel()
            f = f - f.mean()
            scores.append(float(c @ f / np.linalg.norm(c) / np.linalg.norm(f)))
        ranks.append(int((np.array(scores) > scores[r.face_index]).sum()))
    assert len(ranks) >= 8 and np.median(ranks) <= 5


def test_an_unknown_face_identity_is_refused_by_key():
    with pytest.raises(config.ConfigError, match="dataset.face_identity"):
        tiny_dataset_config(face_identity="shuffled")
