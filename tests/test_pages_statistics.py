"""Chapter 6's page (reidlib.pages.statistics) and the results it reads: glued numbers, sentences, tables."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from IPython.display import Markdown

from reidlib.analyses import per_query
from reidlib.pages import statistics as page
from reidlib.stages import statistics


def results(drops: dict[str, float], base: float = 60.0, dataset: str = "D1") -> pd.DataFrame:
    """A results table: each model scores `base + i` on the originals and loses drops[model] per protocol."""
    rows = []
    for i, (model, drop) in enumerate(drops.items()):
        for protocol, k in (("orig_orig", 0), ("orig_anon", 1), ("anon_anon", 0.5)):
            score = base + i - k * drop
            rows.append({"dataset": dataset, "model": model, "protocol": protocol, "mAP": score, "rank1": score + 10})
    return pd.DataFrame(rows)


@pytest.fixture
def paper():
    return pd.concat([results({"A": 1.0, "B": 2.0, "C": 0.5}), results({"A": 3.0, "B": -4.0, "C": 1.5}, dataset="D2")],
                     ignore_index=True)


def test_drop_numbers_keys_and_formats(paper):
    tests = statistics.test_all(paper)
    out = page.drop_numbers(tests)
    row = tests[(tests.metric == "mAP") & (tests["after"] == "orig_anon")].iloc[0]
    assert out["diff_mAP_orig_anon"] == f"{row.mean_difference:.2f}"
    assert out["p_rank1_anon_anon"] == f"{tests.p_value.iloc[3]:.2g}"
    assert out["ci_mAP_orig_anon"] == f"{row.ci_low:.2f} to {row.ci_high:.2f}"
    assert out["n_pairs"] == 6 and isinstance(out["n_pairs"], int)
    assert {f"{q}_{m}_{a}" for q in ("p", "diff", "t", "mde", "ci", "wilcoxon")
            for m in ("mAP", "rank1") for a in ("orig_anon", "anon_anon")} | {"n_pairs"} == set(out)


def test_largest_gain_is_the_cell_that_rises_most(paper):
    top = statistics.largest_gain(paper, "mAP")
    assert (top["dataset"], top["model"]) == ("D2", "B")
    assert top["gain"] == pytest.approx(4.0)
    assert page.outlier_numbers(paper) == {"outlier": "B on D2", "outlier_gain": "4.0"}


def test_largest_gain_skips_a_cell_missing_a_protocol(paper):
    gaining = pd.DataFrame([{"dataset": "D3", "model": "Z", "protocol": "orig_anon", "mAP": 99.0, "rank1": 99.0}])
    top = statistics.largest_gain(pd.concat([paper, gaining], ignore_index=True), "mAP")
    assert top["model"] == "B"
    with pytest.raises(ValueError, match="no \\(dataset, model\\) cell"):
        statistics.largest_gain(gaining)


def test_claims_checked_against_the_tables(paper):
    claims = pd.DataFrame({"metric": ["mAP", "rank1"], "protocol": ["orig_orig", "orig_anon"],
                           "claimed_mean": [60.0, 70.0], "claimed_p_below": [np.nan, 0.05]})
    check = statistics.check_claims(paper, claims)
    expected_map = paper[paper.protocol == "orig_orig"].mAP.mean()
    expected_r1 = paper[paper.protocol == "orig_anon"].rank1.mean()
    assert check.mean_from_tables.tolist() == pytest.approx([expected_map, expected_r1])
    assert check.difference.tolist() == pytest.approx([expected_map - 60.0, expected_r1 - 70.0])
    numbers = page.claim_numbers(check)
    assert numbers["claim_mAP_orig_orig"] == "60.00"
    assert numbers["table_rank1_orig_anon"] == f"{expected_r1:.2f}"
    text = page.claims_table(check).data
    assert list(text.columns) == ["metric", "protocol", "mean the paper states", "p the paper states",
                                  "mean of Tables III-VII", "tables minus stated"]
    assert text.protocol.tolist() == ["original → original", "original → anonymized"]
    assert text["p the paper states"].tolist() == ["–", "0.05"]
    assert text.metric.tolist() == ["mAP", "Rank-1"]


def test_the_paper_claims_file_is_read():
    claims = statistics.load_paper_claims()
    assert {"metric", "protocol", "claimed_mean", "claimed_p_below"} <= set(claims.columns)
    assert len(statistics.check_claims(statistics.load_paper_results(), claims)) == len(claims)


def test_closest_numbers_names_the_subset():
    out = page.closest_numbers({"max_gap": 1.234, "datasets": ["D1", "D2"], "models": ["A"]})
    assert out == {"closest_gap": "1.23", "closest_subset": "D1, D2 with A"}


def test_pooled_row_takes_the_all_row_or_the_only_one(paper):
    by = statistics.test_all(paper, by="dataset")
    row = statistics.pooled_row(by, "mAP", "anon_anon")
    assert (row["dataset"], row["metric"], row["after"], row["n_pairs"]) == ("all", "mAP", "anon_anon", 6)
    plain = statistics.test_all(paper[paper.dataset == "D1"])
    assert statistics.pooled_row(plain, "rank1", "orig_anon")["n_pairs"] == 3
    with pytest.raises(ValueError, match="no pooled test"):
        statistics.pooled_row(plain, "mINP", "orig_anon")


def test_run_text_names_another_table_only_when_given(paper):
    tests = statistics.test_all(paper)
    own = page.run_text(tests)
    assert own == statistics.describe_drop(statistics.pooled_row(tests), "mAP")
    assert "statistics.results" not in own
    other = page.run_text(tests, "runs/paper/results.csv")
    assert other.startswith("The table tested here is `runs/paper/results.csv`") and other.endswith(own)


def test_tests_table_writes_small_p_in_scientific_notation_and_hides_degenerate_rows():
    strong = results({m: 5.0 + 0.01 * i for i, m in enumerate("ABCDEFGH")})
    strong.loc[strong.protocol == "orig_anon", "mAP"] += np.linspace(0, 0.3, 8)
    two = results({"A": 1.0, "B": 2.0})
    tests = pd.concat([statistics.test_all(strong).iloc[:1], statistics.test_all(two).iloc[:1]], ignore_index=True)
    assert tests.p_value.iloc[0] < 1e-3
    text = page.tests_table(tests).data
    p = text["p (one-sided)"].tolist()
    assert "e-" in p[0] and p[1] == "not shown"
    assert text.index.name == "metric" and list(text.index) == ["mAP", "mAP"]
    assert text["pairs"].tolist() == ["8", "2"]
    assert "a paired test needs at least 3" in text["why no statistic"].iloc[1]
    assert text["why no statistic"].iloc[0] == ""
    row = tests.iloc[0]
    assert text["95% CI"].iloc[0] == f"{row.ci_low:.2f} to {row.ci_high:.2f}"


def test_tests_table_puts_a_dash_where_a_shown_test_lacks_a_value():
    tests = statistics.test_all(results({"A": 1.0, "B": 2.0, "C": 1.0})).iloc[:1]
    tests = tests.assign(wilcoxon_p=np.nan)
    text = page.tests_table(tests).data
    assert text["Wilcoxon p"].tolist() == ["–"]
    assert "why no statistic" not in text.columns


def test_effects_table_shows_groups_without_row_numbers():
    eff = pd.DataFrame({"model": ["m", "m"], "factor": ["face", "face"], "level": ["face visible", "back of the head"],
                        "queries": [10, 2], "mean_delta_ap": [-3.25, 1.0], "ci_low": [-5.0, np.nan],
                        "ci_high": [-1.5, np.nan], "why_not_shown": ["", "2 queries: an interval needs at least 3"]})
    styler = page.effects_table(eff)
    text = styler.data
    assert text["95% CI"].tolist() == ["-5.00 to -1.50", "not shown"]
    assert text["queries"].tolist() == ["10", "2"]
    assert text["mean change in AP"].tolist() == ["-3.25", "1.00"]
    assert text["model"].tolist() == ["m", "m"] and text["group"].tolist() == list(eff.level)
    assert "<th class=\"row_heading" not in styler.to_html()
    assert page.effects_table(pd.DataFrame(columns=per_query.EFFECT_COLUMNS)).data.empty


def test_per_query_skipped_for_another_table():
    cfg = SimpleNamespace(statistics=SimpleNamespace(results="runs/paper/results.csv"))
    assert not per_query.applies(cfg)
    table, eff = per_query.load(cfg)
    assert table.empty and list(table.columns) == per_query.COLUMNS
    assert eff.empty and list(eff.columns) == per_query.EFFECT_COLUMNS
    items = page.per_query_items(cfg, table, eff)
    assert list(items) == ["per_query_text"] and isinstance(items["per_query_text"], Markdown)
    assert "skipped" in items["per_query_text"].data
    assert per_query.applies(SimpleNamespace(statistics=SimpleNamespace(results="")))


def test_drop_parts_say_why_for_a_given_table():
    from reidlib.core import config
    cfg = config.from_dict({"run_dir": "/tmp/parts-config-only", "statistics": {"results": "grid.csv"}})
    text, table = page.drop_parts(cfg)
    assert text == page.NO_PARTS and table is None


def test_chapter_6_solutions_give_the_numbers_the_reader_should_find():
    from reidlib.stages import statistics as st
    paper = st.load_paper_results()
    text = page.outlier_solution(paper)
    top = st.largest_gain(paper, "mAP")
    assert f"without {top['model']} on {top['dataset']}" in text and text.count("p-value") == 1
    tests = st.test_all(paper)
    two = page.detectable_solution(tests, 0.5)
    n = int(two.split(" needs ")[1].split(" pairs")[0])
    sd = float(tests[(tests.metric == "mAP") & (tests["after"] == "orig_anon")].sd_difference.iloc[0])
    assert st.smallest_detectable(n, sd) <= 0.5 < st.smallest_detectable(n - 1, sd)  # the fewest pairs that do
    pq = pd.DataFrame({"delta_ap": [5.0, -1.0, 0.0, 3.0], "has_face": [True, True, False, False],
                       "face_width": [10.0, 14.0, None, None]})
    assert page.gainers_solution(pq) == ("2 of 4 query-model rows gain AP (mean gain 4.0 points): 50% show a face, "
                                         "faces 10.0 px wide on average, against 50% show a face, faces 14.0 px wide "
                                         "on average for the rest.")
    assert page.gainers_solution(pq.assign(delta_ap=-1.0)).startswith("No query gains AP")
