"""The speed mechanics: CenterFace's setting chosen at first use, and the anonymized-copy writer pool."""
import sys
from dataclasses import replace

import cv2
import numpy as np
import pandas as pd
import pytest

from reidlib.stages import anonymize, datasets, detection


def _crops(root, n=12):
    recs = datasets.read_market(root).head(n)
    return [cv2.cvtColor(cv2.imread(str(root / r)), cv2.COLOR_BGR2RGB) for r in recs.image]


def test_centerface_setting_is_chosen_once_among_the_candidates(tiny_root, monkeypatch):
    imgs = _crops(tiny_root)
    detection._CHOSEN.clear()
    calls = []
    real = detection._fastest
    monkeypatch.setattr(detection, "_fastest", lambda *a, **k: calls.append(a[2]) or real(*a, **k))
    st = detection.choose_setting(imgs, 2)
    assert replace(st, batch=4) in detection.threadings() and st.batch in detection.BATCH_SIZES
    sizes = [b for b in detection.BATCH_SIZES if b * st.callers <= 32]
    assert [len(c) for c in calls] == [len(detection.threadings()), len(sizes)]
    assert detection.choose_setting(imgs, 2) == st and len(calls) == 2  # kept
    # a fixed batch size is kept; only the threading is timed
    assert detection.choose_setting(imgs, 2, batch_size=3).batch == 3 and len(calls) == 3


def test_one_single_threaded_call_per_core_is_a_candidate(monkeypatch):
    monkeypatch.setattr(detection, "_cores", lambda: 2)
    assert detection.Setting(1, False, 4, 2) in detection.threadings()
    monkeypatch.setattr(detection, "_cores", lambda: 1)
    assert all(st.callers == 1 for st in detection.threadings())


def test_every_setting_gives_the_same_boxes(tiny_root):
    imgs = _crops(tiny_root, 20)
    default = detection.CenterFace(0.3, 2).batch(imgs)
    for threads, size, callers in [(0, 1, 1), (1, 7, 1), (0, 64, 1), (1, 3, 2), (1, 1, 3)]:
        got = detection.CenterFace(0.3, 2, batch_size=size, threads=threads, callers=callers).batch(imgs)
        assert len(got) == len(default) == len(imgs)
        for a, b in zip(got, default):
            np.testing.assert_allclose(a, b, atol=1e-3)
    assert sum(len(d) for d in default) > len(imgs) // 2
    with pytest.raises(ValueError, match="batch_size"):
        detection.CenterFace(0.3, 2, batch_size=0)


def test_writer_workers_are_reused_and_never_import_torch(tiny_root, tmp_path):
    import torch  # noqa: F401  (the parent has torch; the workers must not)

    assert "torch" in sys.modules
    dets = pd.read_csv(tiny_root / "face_boxes.csv")
    one = anonymize.anonymize_dataset(tiny_root, dets, tmp_path / "one", progress=False, processes=2, chunk=8)
    pool = anonymize.writer_pool(2)
    workers = set(pool._processes)  # worker pids
    assert 1 <= len(workers) <= 2
    loaded = [pool.submit(eval, "'torch' in __import__('sys').modules").result() for _ in range(4)]
    assert loaded == [False] * 4
    two = anonymize.anonymize_dataset(tiny_root, dets, tmp_path / "two", progress=False, processes=2, chunk=8)
    assert anonymize.writer_pool(2) is pool and set(pool._processes) >= workers  # the same processes again
    assert one["files"] == two["files"]
    single = anonymize.anonymize_dataset(tiny_root, dets, tmp_path / "single", progress=False, processes=1)
    assert single["files"] == one["files"]
