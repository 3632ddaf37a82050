"""The anonymization chapter's numbers and sentences (reidlib.pages.anonymization) on generated crops."""
from __future__ import annotations

import numpy as np
import pandas as pd

from reidlib.core.images import encode_image
from reidlib.pages import anonymization as page
from reidlib.stages import anonymize

DETS = pd.DataFrame({"image": ["b.jpg", "a.jpg", "a.jpg"], "x0": [10, 20, 5], "y0": [8, 10, 30],
                     "x1": [26, 30, 40], "y1": [24, 20, 60], "score": [0.9, 0.8, 0.7]})


def _copy(tmp_path, encode: str) -> tuple:
    rng = np.random.default_rng(0)
    img = (rng.random((128, 64, 3)) * 255).astype(np.uint8)
    root, anon = tmp_path / "orig", tmp_path / f"anon_{encode}"
    root.mkdir(exist_ok=True), anon.mkdir()
    raw = encode_image(img, ".jpg", 90)
    (root / "b.jpg").write_bytes(raw)
    writer = anonymize.Writer("blur", {}, 0, 90, encode)
    (anon / "b.jpg").write_bytes(writer.write(raw, "b.jpg", page.boxes_of(DETS, "b.jpg")))
    return root, anon


def test_an_exact_copy_changes_nothing_outside_the_touched_blocks_and_a_reencoded_one_does(tmp_path):
    exact = page.outside_change(*_copy(tmp_path, "exact"), "b.jpg", DETS, 0)
    again = page.outside_change(*_copy(tmp_path, "reencode"), "b.jpg", DETS, 0)
    assert exact["share_outside_blocks"] == 0 and exact["share_outside_boxes"] > 0
    assert again["share_outside_blocks"] > 0.3
    assert "exact" in page.outside_text(exact, "b.jpg", "exact", 90)
    assert "quality 90" in page.outside_text(again, "b.jpg", "reencode", 90)


def test_galleries_pick_images_with_faces_and_the_widest_face():
    assert page.shown_images(DETS) == ["a.jpg", "b.jpg"]
    assert page.widest_face(DETS).image == "a.jpg" and page.widest_face(DETS).w == 35
    assert page.boxes_of(DETS, "a.jpg").shape == (2, 4)


def test_audit_numbers_per_technique_and_none_without_an_audit():
    summary = pd.DataFrame({"technique": ["blur", "zero"], "share_with_face_in_box": [0.5, 0.0],
                            "share_with_face_found": [0.625, 0.125]})
    assert page.audit_numbers(summary) == {"in_box_blur": "50.0", "found_blur": "62.5", "in_box_zero": "0.0",
                                           "found_zero": "12.5"}
    assert page.audit_numbers(None) == {} and page.load_audit(None) == (None, None)
    assert page.audit_table(None) is None


def test_audit_table_names_techniques_and_dashes_what_does_not_apply():
    summary = pd.DataFrame({"technique": ["blur", "swap"], "images": [32, 32], "share_with_face_found": [0.5, 0.9],
                            "share_swapped_matching_owner": [float("nan"), 0.25]})
    t = page.audit_table(summary).data
    assert t.index.name == "technique" and "share found" in t.columns
    assert t.loc[t.index[0], "share_swapped_matching_owner"] == "–" and "nan" not in t.to_string().lower()


def test_swap_text_says_whether_swapped_faces_still_pass_for_their_owner():
    summary = pd.DataFrame({"technique": ["blur", "swap"], "share_swapped_matching_owner": [float("nan"), 0.85]})
    assert "85% of the swapped faces still pass" in page.swap_text(summary)
    assert "does not count it as anonymization" in page.swap_text(summary)
    summary.loc[1, "share_swapped_matching_owner"] = 0.02
    assert "hides most owners" in page.swap_text(summary)
    assert page.swap_text(None).startswith("The audit did not check")


def test_no_real_sample_gives_a_sentence_not_a_placeholder_image():
    from reidlib.core import config
    shown = page.real_figure("", config.DetectionConfig(), config.AnonymizationConfig())
    assert isinstance(shown, str) and shown.startswith("No real crops are given") and shown.endswith(".")
