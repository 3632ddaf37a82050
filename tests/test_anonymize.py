import cv2
import numpy as np
import pandas as pd
import pytest

from reidlib.core import registry
from reidlib.stages import anonymize, datasets

BOX = (20, 10, 44, 34)  # 24 x 24, divisible by 6


@pytest.fixture
def image():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(128, 64, 3), dtype=np.uint8)


def outside(img):
    m = np.ones(img.shape[:2], bool)
    x0, y0, x1, y1 = BOX
    m[y0:y1, x0:x1] = False
    return img[m]


@pytest.mark.parametrize("technique", list(registry.TECHNIQUES))
def test_pixels_outside_the_box_are_untouched(image, technique):
    out = anonymize.anonymize_image(image, [BOX], technique)
    assert out.dtype == image.dtype and out.shape == image.shape
    np.testing.assert_array_equal(outside(out), outside(image))
    x0, y0, x1, y1 = BOX
    changed = not np.array_equal(out[y0:y1, x0:x1], image[y0:y1, x0:x1])
    assert changed == registry.TECHNIQUES[technique].changes_face  # the null technique changes nothing


def test_zero(image):
    x0, y0, x1, y1 = BOX
    assert (anonymize.zero(image, BOX)[y0:y1, x0:x1] == 0).all()


def test_blank_is_the_box_mean_per_channel(image):
    x0, y0, x1, y1 = BOX
    box = anonymize.blank(image, BOX)[y0:y1, x0:x1].reshape(-1, 3)
    assert (box == box[0]).all()
    np.testing.assert_allclose(box[0], image[y0:y1, x0:x1].reshape(-1, 3).mean(0), atol=0.5)


def test_pixelate_makes_six_by_six_blocks(image):
    x0, y0, x1, y1 = BOX
    box = anonymize.pixelate(image, BOX, 6)[y0:y1, x0:x1]
    blocks = box.reshape(6, 4, 6, 4, 3)
    assert (blocks == blocks[:, :1, :, :1]).all()
    assert len(np.unique(box.reshape(-1, 3), axis=0)) > 1


def test_blur_removes_high_frequencies(image):
    """Energy of the Laplacian (a high-pass filter) inside the box falls by more than 95%."""
    x0, y0, x1, y1 = BOX
    def hf(img):
        lap = cv2.Laplacian(img.astype(np.float64), cv2.CV_64F)
        return float((lap[y0 + 1:y1 - 1, x0 + 1:x1 - 1] ** 2).mean())
    assert hf(anonymize.blur(image, BOX, 0.125)) < 0.05 * hf(image)


def test_blur_sigma_scales_with_box_width():
    img = np.zeros((128, 64, 3), np.uint8)
    img[:, 32:] = 255  # a vertical edge through both boxes
    small = anonymize.blur(img, (24, 10, 40, 26), 0.125)[18, 24:40, 0]  # sigma 2
    big = anonymize.blur(img, (16, 40, 48, 72), 0.125)[56, 16:48, 0]  # sigma 4
    assert np.count_nonzero((small > 5) & (small < 250)) < np.count_nonzero((big > 5) & (big < 250))


def test_inpaint_solves_laplace_inside_the_box(image):
    filled = anonymize.poisson_fill(image, BOX)
    x0, y0, x1, y1 = BOX
    f = filled
    lap = (f[y0 - 1:y1 - 1, x0:x1] + f[y0 + 1:y1 + 1, x0:x1] + f[y0:y1, x0 - 1:x1 - 1]
           + f[y0:y1, x0 + 1:x1 + 1] - 4 * f[y0:y1, x0:x1])
    assert np.abs(lap).max() < 1e-8
    np.testing.assert_array_equal(outside(filled), outside(image.astype(float)))


def test_inpaint_at_the_image_border(image):
    out = anonymize.inpaint(image, (0, 0, 10, 10))
    assert out.shape == image.shape


def test_unknown_technique_is_named(image):
    with pytest.raises(ValueError, match="smudge"):
        anonymize.anonymize_image(image, [BOX], "smudge")


def _dets(root):
    recs = datasets.read_market(root)
    truth = pd.read_csv(root / "face_boxes.csv")
    return truth.assign(score=1.0), recs


def test_dataset_copy_keeps_layout_and_resumes_byte_identically(tmp_path, tiny_root):
    dets, recs = _dets(tiny_root)
    full = anonymize.anonymize_dataset(tiny_root, dets, tmp_path / "a", anonymize.Writer("blur", {"width_ratio": 0.125}),
                                      progress=False)
    assert set(recs.image) <= set(full["files"])
    from reidlib.core.runfiles import file_sha256, fingerprinted, tree_digest
    copied = sorted(r for r in full["files"] if fingerprinted(r.rsplit("/", 1)[-1]))
    assert full["source_fingerprint"] == tree_digest((r, file_sha256(tiny_root / r)) for r in copied)
    assert not (tmp_path / "a" / "face_boxes.csv").exists()  # the generated set's truth stays out of the copy
    assert datasets.read_market(tmp_path / "a").equals(recs)
    # interrupted: half the files and the manifest missing; the rerun completes to the same bytes
    files = sorted(full["files"])
    for rel in files[::2]:
        (tmp_path / "a" / rel).unlink()
    (tmp_path / "a" / "manifest.json").unlink()
    again = anonymize.anonymize_dataset(tiny_root, dets, tmp_path / "a", anonymize.Writer("blur", {"width_ratio": 0.125}),
                                      progress=False)
    assert again == full


def test_copy_killed_inside_a_chunk_keeps_recorded_chunks_and_rewrites_the_cut_file(tmp_path, tiny_root, monkeypatch):
    dets, _ = _dets(tiny_root)
    fresh = anonymize.anonymize_dataset(tiny_root, dets, tmp_path / "fresh", progress=False, chunk=8)
    real, writes = anonymize.write_bytes, []

    def cut_short(path, data):
        if len(writes) == 20:  # the fifth file of the third chunk: half its bytes, then a kill
            real(path, data[: len(data) // 2])
            raise KeyboardInterrupt
        writes.append(path)
        real(path, data)

    monkeypatch.setattr(anonymize, "write_bytes", cut_short)
    with pytest.raises(KeyboardInterrupt):
        anonymize.anonymize_dataset(tiny_root, dets, tmp_path / "a", progress=False, chunk=8)
    assert (tmp_path / "a" / anonymize.JOURNAL).exists() and not (tmp_path / "a" / "manifest.json").exists()
    rewritten = []
    monkeypatch.setattr(anonymize, "write_bytes", lambda path, data: (rewritten.append(path), real(path, data)))
    again = anonymize.anonymize_dataset(tiny_root, dets, tmp_path / "a", progress=False, chunk=8)
    assert again["files"] == fresh["files"]  # the cut file was rewritten whole
    assert len(rewritten) == len(fresh["files"]) - 16  # the two recorded chunks were kept
    assert not (tmp_path / "a" / anonymize.JOURNAL).exists()


def test_refuses_to_write_inside_the_source(tiny_root):
    dets, _ = _dets(tiny_root)
    with pytest.raises(ValueError, match="inside the source"):
        anonymize.anonymize_dataset(tiny_root, dets, tiny_root / "anon", progress=False)


def test_truncated_jpeg_is_named(tmp_path, tiny_root):
    src = tmp_path / "src"
    import shutil
    shutil.copytree(tiny_root, src)
    victim = sorted((src / "query").iterdir())[0]
    victim.write_bytes(victim.read_bytes()[:50])
    dets, _ = _dets(src)
    with pytest.raises(ValueError, match=victim.name):
        anonymize.anonymize_dataset(src, dets, tmp_path / "out", progress=False)


def test_boxes_by_image_keeps_each_image_s_rows_in_order():
    from reidlib.core.boxes import BOX, boxes_by_image

    rng = np.random.default_rng(0)
    dets = pd.DataFrame({"image": rng.choice([f"i{k}" for k in range(40)], 300),
                         **{c: rng.random(300) for c in BOX}})
    got = boxes_by_image(dets)
    assert sorted(got) == sorted(dets.image.unique())
    for name, part in got.items():
        np.testing.assert_array_equal(part, dets[dets.image == name][BOX].to_numpy())
    assert boxes_by_image(dets.iloc[:0]) == {}
