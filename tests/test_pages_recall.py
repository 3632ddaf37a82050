"""The recall chapter's tables and sentences (reidlib.pages.recall) from small results."""
from __future__ import annotations

import pandas as pd

from reidlib.pages import recall as page
from reidlib.stages import recall


def _rate(k, n):
    r = recall.rate(k, n)
    return {"k": k, "n": n, "value": r.value, "wilson": list(r.wilson), "clopper_pearson": list(r.clopper_pearson)}


def test_rates_table_holds_both_rates_with_intervals():
    t = page.rates_table({"recall": _rate(45, 50), "precision": _rate(45, 47)})
    assert list(t.index) == ["recall", "precision"]
    assert t.loc["recall", "value"] == 0.9 and t.loc["precision", "n"] == 47
    low, high = t.loc["recall", "Wilson 95%"]
    assert low < 0.9 < high


def test_inspection_text_adds_the_filled_sheets_recall():
    result = {"detection_rates": [{"images": 10, "with_face": 4}, {"images": 10, "with_face": 6}]}
    sheet = pd.DataFrame({"image": ["a.jpg"] * 5})
    plain = page.inspection_text(result, sheet)
    filled = page.inspection_text({**result, "inspection": _rate(9, 10)}, sheet)
    assert filled.startswith(plain) and "9 of 10 visible faces detected, recall 90.0%" in filled


def test_faces_for_is_the_first_count_whose_lower_bound_reaches_the_target():
    n = page.faces_for(0.95)
    assert recall.rate(n, n).wilson[0] >= 0.95 > recall.rate(n - 1, n - 1).wilson[0]
    assert page.faces_for(0.95, lower=0.5) < n


def test_without_ground_truth_the_exercises_say_so():
    found = page.Misses(None, "unknown misses", None)
    got = page.exercise_numbers(None, {"ground_truth": False}, pd.DataFrame(), found)
    assert got["ex_recall_03"] == page.NO_TRUTH and got["summary_text"] == "unknown misses"
