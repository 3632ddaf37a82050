"""Exact JPEG copies (reidlib.core.jpeg): only the pixels of the MCUs a face box touches, and a seam, change."""
from __future__ import annotations

import cv2
import numpy as np
import pytest

from reidlib.core import jpeg

jpeglib = pytest.importorskip("jpeglib")

SAMPLING = {"420": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_420, "444": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_444,
            "422": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_422, "440": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_440,
            "411": cv2.IMWRITE_JPEG_SAMPLING_FACTOR_411}


def smooth_image(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Bright smooth random BGR content (values 100-255), like a crop's clothes and background."""
    small = rng.integers(100, 256, (height // 8 + 2, width // 8 + 2, 3), dtype=np.uint8)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)


def encode(image: np.ndarray, sampling: str = "420", quality: int = 95) -> bytes:
    params = [cv2.IMWRITE_JPEG_QUALITY, quality]
    if image.ndim == 3:
        params += [cv2.IMWRITE_JPEG_SAMPLING_FACTOR, SAMPLING[sampling]]
    return cv2.imencode(".jpg", image, params)[1].tobytes()


def decode(data: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def pixel_box(box: np.ndarray, shape: tuple[int, ...]) -> tuple[slice, slice]:
    x0, y0 = max(int(np.floor(box[0])), 0), max(int(np.floor(box[1])), 0)
    x1, y1 = min(int(np.ceil(box[2])), shape[1]), min(int(np.ceil(box[3])), shape[0])
    return slice(y0, y1), slice(x0, x1)


def make_crops() -> list[tuple[str, bytes, np.ndarray]]:
    """About 50 real JPEG crops: mostly 64x128 and sizes that are not multiples of 16, in several samplings."""
    rng = np.random.default_rng(2024)
    sizes = [(128, 64), (125, 61), (97, 50), (128, 64), (61, 125), (17, 9), (16, 16), (1, 1)]
    crops = []
    for i in range(48):
        height, width = sizes[i % len(sizes)] if i < 32 else (int(rng.integers(8, 140)), int(rng.integers(8, 90)))
        sampling = ["420", "420", "444", "420", "422", "420", "440", "411"][i % 8]
        image = smooth_image(rng, height, width)
        if i % 12 == 11:
            image, sampling = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), "gray"
        crops.append((f"crop{i:02d}-{height}x{width}-{sampling}.jpg", encode(image, sampling), image))
    return crops


CROPS = make_crops()


def random_box(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """A face-sized float box inside the image (partly outside for some)."""
    height, width = shape[:2]
    w, h = rng.uniform(2, max(3, min(20, width))), rng.uniform(2, max(3, min(20, height)))
    x0, y0 = rng.uniform(-2, width - 1), rng.uniform(-2, height - 1)
    return np.array([[x0, y0, x0 + w, y0 + h]])


@pytest.fixture(scope="module")
def copies():
    """Per crop: name, original bytes, decoded original, box, edited image, exact copy, decoded copy."""
    rng = np.random.default_rng(7)
    out = []
    for i, (name, data, _) in enumerate(CROPS):
        original = decode(data)
        box = random_box(rng, original.shape)
        rows, cols = pixel_box(box[0], original.shape)
        edited = original.copy()
        if i % 2:
            edited[rows, cols] = cv2.GaussianBlur(edited[rows, cols], (0, 0), 3.0)
        else:
            edited[rows, cols] = 0
        copy = jpeg.exact_jpeg(data, edited, box, path_hint=name)
        out.append((name, data, original, box, edited, copy, decode(copy), i % 2 == 0))
    return out


def test_the_crops_cover_sizes_and_samplings():
    samplings = {jpeg.sampling_of(data) for _, data, _ in CROPS}
    assert {((2, 2), (1, 1), (1, 1)), ((1, 1), (1, 1), (1, 1)), ((2, 1), (1, 1), (1, 1)), ((1, 1),)} <= samplings
    assert any(img.shape[0] % 16 and img.shape[1] % 16 for _, _, img in CROPS)


def test_pixels_outside_the_touched_mcus_and_seam_are_exactly_the_original(copies):
    for name, data, original, box, _, _, decoded, _ in copies:
        outside = ~jpeg.touched_mask(original.shape, box, jpeg.sampling_of(data))
        assert np.array_equal(decoded[outside], original[outside]), name


def test_a_zeroed_face_decodes_dark_and_the_copy_follows_the_edited_pixels(copies):
    checked = 0
    for name, data, original, box, edited, _, decoded, zeroed in copies:
        rows, cols = pixel_box(box[0], original.shape)
        if decoded[rows, cols].size < 12:
            continue
        # within JPEG's error: as close to the edited pixels as OpenCV encoding them in the same sampling
        sampling = name.rsplit("-", 1)[1][:-4]
        params = [cv2.IMWRITE_JPEG_QUALITY, 95] + ([cv2.IMWRITE_JPEG_SAMPLING_FACTOR, SAMPLING[sampling]]
                                                   if sampling in SAMPLING else [])
        encoded = decode(cv2.imencode(".jpg", edited, params)[1].tobytes())
        error = np.abs(decoded[rows, cols].astype(int) - edited[rows, cols]).mean()
        assert error < 1.25 * np.abs(encoded[rows, cols].astype(int) - edited[rows, cols]).mean() + 1, name
        assert error < 10, name
        if zeroed:
            assert np.abs(decoded[rows, cols].astype(int) - original[rows, cols].astype(int)).mean() > 20, name
            assert decoded[rows, cols].mean() < 20, name
        checked += 1
    assert checked >= 30


def test_the_whole_touched_mcus_follow_the_edited_image(copies):
    """Inside the touched MCUs (not just the box) the copy encodes the edited pixels, chroma included."""
    for name, data, original, box, edited, _, decoded, _ in copies:
        sampling = jpeg.sampling_of(data)
        mh, mw = jpeg.mcu_size(sampling)
        for r0, r1, c0, c1 in jpeg.touched_mcus(original.shape, box, sampling):
            region = (slice(r0 * mh, r1 * mh), slice(c0 * mw, c1 * mw))
            error = np.abs(decoded[region].astype(int) - edited[region].astype(int))
            assert error.mean() < 6, name


def test_coefficients_outside_the_touched_mcus_are_the_originals_and_tables_are_kept(copies, tmp_path):
    for name, data, original, box, _, copy, _, _ in copies[::3]:
        (tmp_path / "a.jpg").write_bytes(data)
        (tmp_path / "b.jpg").write_bytes(copy)
        before, after = jpeglib.read_dct(str(tmp_path / "a.jpg")), jpeglib.read_dct(str(tmp_path / "b.jpg"))
        assert np.array_equal(before.qt, after.qt), name
        assert np.array_equal(before.quant_tbl_no, after.quant_tbl_no), name
        assert np.array_equal(before.samp_factor, after.samp_factor), name
        assert (before.height, before.width, before.num_components) == (after.height, after.width,
                                                                        after.num_components), name
        assert jpeg.parse_jpeg(copy).ids == jpeg.parse_jpeg(data).ids, name
        sampling = jpeg.sampling_of(data)
        rects = jpeg.touched_mcus(original.shape, box, sampling)
        components = [(before.Y, after.Y)] + ([(before.Cb, after.Cb), (before.Cr, after.Cr)] if len(sampling) == 3
                                               else [])
        for (old, new), (h, v) in zip(components, sampling):
            keep = np.ones(old.shape[:2], bool)
            for r0, r1, c0, c1 in rects:
                keep[r0 * v:r1 * v, c0 * h:c1 * h] = False
            assert np.array_equal(old[keep], new[keep]), name


def test_threads_and_forked_workers_give_the_same_copies(copies):
    """Each thread and process has its own scratch files and buffers."""
    import multiprocessing
    from concurrent.futures import ThreadPoolExecutor

    jobs = [(data, edited, box) for _, data, _, box, edited, _, _, _ in copies[:16]]
    expected = [copy for *_, copy, _, _ in copies[:16]]
    with ThreadPoolExecutor(4) as pool:
        assert list(pool.map(lambda job: jpeg.exact_jpeg(*job), jobs * 3)) == expected * 3
    with multiprocessing.get_context("fork").Pool(2) as pool:
        assert pool.starmap(jpeg.exact_jpeg, jobs) == expected


def test_no_box_returns_the_original_bytes():
    name, data, _ = CROPS[0]
    decoded = decode(data)
    for boxes in ([], np.zeros((0, 4)), None, [[500.0, 500.0, 520.0, 520.0]], [[10.0, 10.0, 10.0, 30.0]]):
        assert jpeg.exact_jpeg(data, decoded, boxes, path_hint=name) is data


def test_copy_of_unchanged_coefficients_is_byte_identical(tmp_path):
    """Read and written back untouched, an OpenCV JPEG comes out byte for byte the same."""
    for name, data, _ in CROPS[:12]:
        path = tmp_path / name
        path.write_bytes(data)
        info = jpeg.parse_jpeg(data, name)
        space = jpeg._workspace(info.height, info.width, info.sampling)
        table_of = space.read(str(path).encode(), name)
        space.write(str(tmp_path / "out.jpg").encode(), table_of, info.markers)
        key = (info.ids, info.sampling, table_of, space.tables.tobytes(), ())
        assert jpeg._patched((tmp_path / "out.jpg").read_bytes(), key) == data, name


def test_the_old_full_reencode_changes_pixels_outside_the_mask(copies):
    """The way it was done before, and what these tests exist to catch: re-encoding everything."""
    fractions = []
    for name, data, original, box, edited, _, _, _ in copies:
        if original.size < 1000:
            continue
        reencoded = decode(cv2.imencode(".jpg", edited, [cv2.IMWRITE_JPEG_QUALITY, 95])[1].tobytes())
        outside = ~jpeg.touched_mask(original.shape, box, jpeg.sampling_of(data))
        fractions.append((reencoded[outside] != original[outside]).any(-1).mean())
    assert np.mean(fractions) > 0.3


def test_seam_is_one_pixel_where_chroma_is_subsampled_twice_and_needed():
    assert jpeg.seam_of(((2, 2), (1, 1), (1, 1))) == (1, 1)
    assert jpeg.seam_of(((2, 1), (1, 1), (1, 1))) == (0, 1)
    assert jpeg.seam_of(((1, 2), (1, 1), (1, 1))) == (1, 0)
    assert jpeg.seam_of(((1, 1), (1, 1), (1, 1))) == (0, 0)
    assert jpeg.seam_of(((4, 1), (1, 1), (1, 1))) == (0, 0)
    assert jpeg.seam_of(((1, 1),)) == (0, 0)
    # at 4:2:0 the seam is not slack: some pixels just outside the touched MCUs do change
    rng = np.random.default_rng(3)
    image = smooth_image(rng, 128, 64)
    data = encode(image, "420")
    original = decode(data)
    box = np.array([[20.0, 20.0, 40.0, 40.0]])
    edited = original.copy()
    edited[20:40, 20:40] = (255, 0, 0)
    decoded = decode(jpeg.exact_jpeg(data, edited, box))
    sampling = jpeg.sampling_of(data)
    seam = jpeg.touched_mask(original.shape, box, sampling) & ~jpeg.touched_mask(original.shape, box, ((1, 1),) * 3)
    seam &= ~jpeg.touched_mask(original.shape, box, ((2, 2),))  # the ring around the 16x16 MCUs
    assert seam.sum() > 0 and (decoded[seam] != original[seam]).any()


def test_touched_mask_geometry():
    mask = jpeg.touched_mask((128, 64), np.array([[25.0, 4.0, 39.0, 18.0]]), ((2, 2), (1, 1), (1, 1)))
    expected = np.zeros((128, 64), bool)
    expected[0:33, 15:49] = True  # MCU rows 0-1, columns 1-2, grown by 1
    assert np.array_equal(mask, expected)
    assert jpeg.touched_mcus((128, 64), [[25.5, 4.2, 39.9, 18.0]], ((1, 1),) * 3).tolist() == [[0, 3, 3, 5]]


def test_grayscale_accepts_a_2d_edited_image():
    rng = np.random.default_rng(5)
    gray = smooth_image(rng, 40, 30)[:, :, 0]
    data = encode(gray)
    original = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    edited = original.copy()
    edited[8:20, 8:20] = 0
    copy = jpeg.exact_jpeg(data, edited, [[8, 8, 20, 20]])
    decoded = cv2.imdecode(np.frombuffer(copy, np.uint8), cv2.IMREAD_GRAYSCALE)
    outside = ~jpeg.touched_mask(original.shape, [[8, 8, 20, 20]], ((1, 1),))
    assert np.array_equal(decoded[outside], original[outside])
    assert decoded[8:20, 8:20].mean() < 10


def test_a_large_box_on_a_larger_image_and_write_exact_jpeg(tmp_path):
    rng = np.random.default_rng(6)
    data = encode(smooth_image(rng, 300, 211))
    source = tmp_path / "big.jpg"
    source.write_bytes(data)
    original = decode(data)
    box = np.array([[13.3, 7.6, 190.2, 270.9], [150.0, 250.0, 211.0, 300.0]])
    edited = original.copy()
    edited[7:271, 13:191] = cv2.GaussianBlur(edited[7:271, 13:191], (0, 0), 8)
    edited[250:300, 150:211] = 0
    copy = jpeg.exact_jpeg(data, edited, box, source_path=str(source))
    assert copy == jpeg.exact_jpeg(data, edited, box)
    jpeg.write_exact_jpeg(data, edited, box, str(tmp_path / "out.jpg"), source_path=str(source))
    assert (tmp_path / "out.jpg").read_bytes() == copy
    jpeg.write_exact_jpeg(data, edited, box, str(tmp_path / "out2.jpg"))
    assert (tmp_path / "out2.jpg").read_bytes() == copy
    decoded = decode(copy)
    outside = ~jpeg.touched_mask(original.shape, box, jpeg.sampling_of(data))
    assert np.array_equal(decoded[outside], original[outside])
    assert np.abs(decoded[7:271, 13:191].astype(int) - edited[7:271, 13:191]).mean() < 3


def test_quantized_blocks_reproduce_the_originals_coefficients(tmp_path):
    """The numpy encoder (colour conversion, subsampling, DCT, quantization) agrees with libjpeg's."""
    for name, data, _ in CROPS[:8]:
        path = tmp_path / name
        path.write_bytes(data)
        blocks, tables, table_of = jpeg.read_coefficients(str(path))
        sampling = jpeg.sampling_of(data)
        again = jpeg.quantized_blocks(decode(data), sampling, [tables[t] for t in table_of])
        for c, (old, new) in enumerate(zip(blocks, again)):
            diff = np.abs(old.astype(int) - new[:old.shape[0], :old.shape[1]])
            assert (diff == 0).mean() > (0.9 if c == 0 else 0.75), (name, c)
            assert diff.max() <= (4 if c == 0 else 16), (name, c)


def test_markers_are_carried_over():
    _, data, _ = CROPS[0]
    comment = b"\xff\xfe\x00\x0ereid comment"
    with_comment = data[:20] + comment + data[20:]  # after SOI and the JFIF header
    original = decode(with_comment)
    edited = original.copy()
    edited[4:18, 25:39] = 0
    copy = jpeg.exact_jpeg(with_comment, edited, [[25, 4, 39, 18]])
    assert comment in copy
    assert jpeg.parse_jpeg(copy).markers == ((0xFE, b"reid comment"),)


@pytest.mark.parametrize("tables", [[[3] * 64, [5] * 64, [9] * 64], [[300] * 64, [2] * 64], [list(range(1, 65))]],
                         ids=["three tables", "16-bit table", "one table"])
def test_unusual_quantization_tables_are_kept(tables, tmp_path):
    """Pillow's encoder: a table per component, a 16-bit table, one table for all components."""
    image_module = pytest.importorskip("PIL.Image")
    import io
    buffer = io.BytesIO()
    image_module.fromarray(smooth_image(np.random.default_rng(8), 70, 45)).save(buffer, "JPEG", qtables=tables)
    data = buffer.getvalue()
    original = decode(data)
    edited = original.copy()
    edited[10:30, 5:25] = 0
    box = [[5.0, 10.0, 25.0, 30.0]]
    (tmp_path / "a.jpg").write_bytes(data)
    jpeg.write_exact_jpeg(data, edited, box, str(tmp_path / "b.jpg"), source_path=str(tmp_path / "a.jpg"))
    before, after = jpeglib.read_dct(str(tmp_path / "a.jpg")), jpeglib.read_dct(str(tmp_path / "b.jpg"))
    assert np.array_equal(before.qt, after.qt) and np.array_equal(before.quant_tbl_no, after.quant_tbl_no)
    decoded = decode((tmp_path / "b.jpg").read_bytes())
    outside = ~jpeg.touched_mask(original.shape, box, jpeg.sampling_of(data))
    assert np.array_equal(decoded[outside], original[outside])


@pytest.mark.parametrize("damage", ["garbage", "truncated", "progressive", "not a jpeg", "empty", "cut header"])
def test_unusable_originals_raise_a_clear_error_naming_the_file(damage):
    _, data, image = CROPS[0]
    bad = {"garbage": data[:2] + bytes(np.random.default_rng(0).integers(0, 256, 500, dtype=np.uint8)),
           "truncated": data[:len(data) // 2],
           "progressive": cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1])[1].tobytes(),
           "not a jpeg": cv2.imencode(".png", image)[1].tobytes(),
           "empty": b"",
           "cut header": data[:100]}[damage]
    with pytest.raises(ValueError, match="market/0001_c1s1_000151_01.jpg") as error:
        jpeg.exact_jpeg(bad, decode(data), [[25, 4, 39, 18]], path_hint="market/0001_c1s1_000151_01.jpg")
    if damage == "progressive":
        assert "progressive" in str(error.value)


def test_an_edited_image_of_the_wrong_size_is_refused():
    name, data, _ = CROPS[0]
    with pytest.raises(ValueError, match=name):
        jpeg.exact_jpeg(data, np.zeros((10, 10, 3), np.uint8), [[1, 1, 5, 5]], path_hint=name)
