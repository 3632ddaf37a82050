import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from reidlib import statistics


@pytest.fixture(scope="module")
def paper():
    return statistics.load_paper_results()


def test_paper_tables_are_complete(paper):
    assert len(paper) == 5 * 6 * 3
    assert set(paper.protocol) == {"orig_orig", "orig_anon", "anon_anon"}


def test_paired_test_matches_a_hand_computation():
    res = pd.DataFrame({"dataset": ["d"] * 8, "model": ["a", "b", "c", "d"] * 2,
                        "protocol": ["orig_orig"] * 4 + ["orig_anon"] * 4,
                        "mAP": [50, 60, 70, 80, 49, 58, 70, 77]})
    out = statistics.paired_test(res, "mAP", "orig_orig", "orig_anon")
    d = np.array([1, 2, 0, 3])
    t = d.mean() / (d.std(ddof=1) / 2)
    assert out["t"] == pytest.approx(t)
    assert out["p_value"] == pytest.approx(st.t.sf(t, 3))
    assert out["mean_difference"] == pytest.approx(1.5)


def test_single_pair_gives_nan():
    res = pd.DataFrame({"dataset": ["d", "d"], "model": ["a", "a"], "protocol": ["orig_orig", "orig_anon"],
                        "mAP": [50.0, 49.0]})
    assert np.isnan(statistics.paired_test(res, "mAP", "orig_orig", "orig_anon")["p_value"])


def test_paper_claims_of_section_iv_b(paper):
    """The drops the text states (1.39 / 0.63 mAP, 1.24 / 0.44 Rank-1) and its significance levels."""
    tests = statistics.test_all(paper).set_index(["metric", "after"])
    claims = {("mAP", "orig_anon"): 1.39, ("mAP", "anon_anon"): 0.63,
              ("rank1", "orig_anon"): 1.24, ("rank1", "anon_anon"): 0.44}
    for key, drop in claims.items():
        assert tests.loc[key, "mean_difference"] == pytest.approx(drop, abs=0.08), key
    assert (tests.loc["mAP", "p_value"] < 0.01).all()
    assert (tests.loc["rank1", "p_value"] < 0.05).all()


def test_wilcoxon_bootstrap_and_groups(paper):
    t = statistics.test_all(paper, by="dataset")
    assert set(t.dataset) == {"all", "Market1501", "DukeMTMC-reID", "VIPeR", "Airport", "CUHK03"}
    pooled = t[(t.dataset == "all") & (t.metric == "mAP") & (t["after"] == "orig_anon")].iloc[0]
    assert pooled.ci_low < pooled.mean_difference < pooled.ci_high
    assert 0 < pooled.wilcoxon_p < 0.05
    market = t[(t.dataset == "Market1501") & (t.metric == "mAP") & (t["after"] == "orig_anon")].iloc[0]
    assert market.n_pairs == 6
    again = statistics.test_all(paper, by="dataset")
    pd.testing.assert_frame_equal(t, again)  # seeded bootstrap: reruns agree


def test_no_subset_of_the_tables_gives_the_stated_averages(paper):
    claims = pd.read_csv(statistics.paper_results_path().parent / "claims_section_IV_B.csv")
    exact = claims.assign(claimed_mean=[paper[paper.protocol == p][m].mean()
                                        for m, p in zip(claims.metric, claims.protocol)])
    assert statistics.closest_subset(paper, exact)["max_gap"] < 1e-9  # the full tables match their own means
    best = statistics.closest_subset(paper, claims)
    assert best["max_gap"] > 0.3  # the text's averages match no subset of datasets and models
