import numpy as np
import pandas as pd
import pytest
from scipy import stats as st

from reidlib.stages import statistics


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


def two_pair_table():
    """The run's situation before replication: two models, identical drops of one query step."""
    return pd.DataFrame({"dataset": ["d"] * 6, "model": ["a", "b"] * 3,
                         "protocol": ["orig_orig"] * 2 + ["orig_anon"] * 2 + ["anon_anon"] * 2,
                         "mAP": [52.0, 4.8, 47.8333, 0.6333, 50.0, 4.1],
                         "rank1": [41.6667, 4.1667, 37.5, 0.0, 40.0, 4.1667]})


def test_two_pairs_print_no_t_p_or_dz():
    tests = statistics.test_all(two_pair_table())
    assert tests.why_not_shown.str.contains("2 pairs: a paired test needs at least 3").all()
    assert tests[["t", "p_value", "cohens_dz", "mde"]].isna().all().all()
    shown = statistics.display_tests(tests, readable=False)
    for col in ("t", "p_value", "cohens_dz", "wilcoxon_p", "ci_low", "ci_high"):
        assert (shown[col] == "not shown").all(), col
    readable = statistics.display_tests(tests)
    assert (readable["Cohen's d_z"] == "not shown").all() and "cohens_dz" not in readable
    assert not readable.isna().any().any()  # no NaN printed
    sentence = statistics.describe_drop(tests.iloc[0].to_dict())
    assert "t =" not in sentence and "p =" not in sentence and "d_z" not in sentence
    assert "needs at least 3" in sentence


def test_zero_variance_is_refused_even_with_rounding_noise():
    res = pd.DataFrame({"dataset": ["d"] * 8, "model": list("abcd") * 2,
                        "protocol": ["orig_orig"] * 4 + ["orig_anon"] * 4,
                        "mAP": [50, 60, 70, 80, 45.8333, 55.8334, 65.8333, 75.8333]})
    out = statistics.paired_test(res, "mAP", "orig_orig", "orig_anon")
    assert "zero variance" in out["why_not_shown"] and np.isnan(out["t"])
    assert "zero variance" in statistics.tost(res, "mAP", "orig_orig", "orig_anon", 1.0)["why_not_shown"]


def test_smallest_detectable_drop_has_the_stated_power():
    n, sd = 30, 2.4
    mde = statistics.smallest_detectable(n, sd, alpha=0.05)
    crit = st.t.ppf(0.95, n - 1)
    assert st.nct.sf(crit, n - 1, mde / sd * np.sqrt(n)) == pytest.approx(0.8, abs=1e-6)
    # large-sample check: (z_0.95 + z_0.8) * sd / sqrt(n), slightly below the t version
    assert mde == pytest.approx((st.norm.ppf(0.95) + st.norm.ppf(0.8)) * sd / np.sqrt(n), rel=0.05)
    assert statistics.smallest_detectable(60, sd) < mde  # more pairs, smaller detectable drop
    assert np.isnan(statistics.smallest_detectable(1, sd))


def test_tost_matches_its_definition():
    rng = np.random.default_rng(1)
    d = rng.normal(0.3, 1.0, 20)
    res = pd.DataFrame({"dataset": "x", "model": [f"m{i}" for i in range(20)] * 2,
                        "protocol": ["orig_orig"] * 20 + ["orig_anon"] * 20,
                        "mAP": np.r_[50 + d, np.full(20, 50.0)]})
    out = statistics.tost(res, "mAP", "orig_orig", "orig_anon", margin=1.0)
    se = d.std(ddof=1) / np.sqrt(20)
    p_lo = st.t.sf((d.mean() + 1.0) / se, 19)
    p_hi = st.t.cdf((d.mean() - 1.0) / se, 19)
    assert out["p_tost"] == pytest.approx(max(p_lo, p_hi))
    # equivalence exactly when the 90% interval lies inside the margin
    assert out["equivalent"] == (out["ci90_low"] > -1.0 and out["ci90_high"] < 1.0)
    assert statistics.tost(res, "mAP", "orig_orig", "orig_anon", margin=0.05)["equivalent"] is False


def test_tost_on_the_paper_tables(paper):
    t = statistics.tost_all(paper, [1.0, 2.0]).set_index(["metric", "after", "margin"])
    assert len(t) == 2 * 2 * 2 and (t.n_pairs == 30).all()
    # retraining on anonymized data: within one point; testing on it: not even within two (mAP)
    assert t.loc[("mAP", "anon_anon", 1.0), "equivalent"]
    assert not t.loc[("mAP", "orig_anon", 2.0), "equivalent"]
    assert (t.p_tost <= 1).all() and (t.ci90_low < t.mean_difference).all()


def replicated(seed_sd=1.0, drop=3.0, seeds=4, models=("a", "b", "c")):
    rng = np.random.default_rng(0)
    rows = []
    for k, m in enumerate(models):
        for s in range(seeds):
            base = 50 + 10 * k + rng.normal(0, seed_sd)
            for prot, value in (("orig_orig", base), ("orig_anon", base - drop + rng.normal(0, 0.2)),
                                ("anon_anon", base - drop / 3 + rng.normal(0, 0.2))):
                rows.append(dict(dataset="d", model=m, seed=s, protocol=prot, mAP=value, rank1=value))
    return pd.DataFrame(rows)


def test_seed_spread_compares_the_drop_with_rerun_noise():
    spread = statistics.seed_spread(replicated(seed_sd=1.0, drop=3.0))
    oa = spread[spread["after"] == "orig_anon"]
    assert (oa.n_seeds == 4).all() and (oa.why_not_shown == "").all()
    assert oa.mean_drop.mean() == pytest.approx(3.0, abs=0.3)
    assert (oa.seed_sd > 0.2).all() and (oa.p_value < 0.01).all()
    one = statistics.seed_spread(replicated(seeds=1))
    assert one.seed_sd.isna().all() and one.why_not_shown.str.contains("1 seed").all()
    text = statistics.describe_seed_spread(one)
    assert "not measured" in text and "p =" not in text


def test_variance_components_recover_known_spreads():
    rng = np.random.default_rng(3)
    rows = [dict(cell=c, y=mu + rng.normal(0, 0.5)) for c, mu in enumerate(rng.normal(0, 5, 40)) for _ in range(5)]
    out = statistics.variance_components(pd.DataFrame(rows), "cell", "y")
    assert out["sd_within"] == pytest.approx(0.5, rel=0.15)
    assert out["sd_between"] == pytest.approx(5, rel=0.3)
    assert out["p_value"] < 1e-6 and out["share_between"] > 0.9
    single = statistics.variance_components(pd.DataFrame(rows).drop_duplicates("cell"), "cell", "y")
    assert "one seed" in single["why_not_shown"] and np.isnan(single["F"])
    dec = statistics.seed_decomposition(replicated())
    assert list(dec.quantity) == ["orig_orig score", "drop to orig_anon", "drop to anon_anon"]
    assert dec.loc[0, "sd_between"] > dec.loc[0, "sd_within"]  # models differ by 10 points, seeds by 1


def test_seeds_are_averaged_within_a_cell_before_pairing():
    r = replicated(seeds=3)
    pooled = statistics.paired_test(r, "mAP", "orig_orig", "orig_anon")
    assert pooled["n_pairs"] == 3  # three models, not nine runs


def test_the_reference_page_wide_tables_are_the_long_table(tmp_path):
    """data/paper/wide/ (the reference page) holds exactly the long table's numbers, in the paper's layout."""
    paper = statistics.load_paper_results()
    for table in paper.table.unique():
        out = tmp_path / f"table_{table}.csv"
        statistics.write_wide_csv(statistics.paper_table_wide(paper, table), out)
        committed = statistics.paper_results_path().parent / "wide" / f"table_{table}.csv"
        assert committed.read_text() == out.read_text(), f"{committed} differs from the long table"
    wide = statistics.paper_table_wide(paper, "III")
    assert wide.loc["BoT", ("original → anonymized", "mAP")] == 93.7 and wide.shape == (6, 6)
    with pytest.raises(ValueError, match="no Table IX"):
        statistics.paper_table_wide(paper, "IX")
    viii = statistics.paper_table_wide(statistics.load_paper_techniques(), "VIII", row="technique")
    out = tmp_path / "table_VIII.csv"
    statistics.write_wide_csv(viii, out)
    assert (statistics.paper_results_path().parent / "wide" / "table_VIII.csv").read_text() == out.read_text()
    assert viii.shape == (5, 4) and viii.loc["blur", ("original → anonymized", "mAP")] == 93.7


def test_replicated_runs_are_paired_run_by_run():
    """Two models x three seeds: pairing cells gives 2 pairs (no test); pairing runs gives 6."""
    rng = np.random.default_rng(0)
    rows = []
    for model in ("a", "b"):
        for seed in range(3):
            base = 50 + rng.normal(0, 5)
            for protocol, drop in (("orig_orig", 0.0), ("orig_anon", 1.5 + rng.normal(0, 0.3)),
                                   ("anon_anon", rng.normal(0, 2))):
                rows.append(dict(dataset="d", model=model, seed=seed, protocol=protocol, mAP=base - drop,
                                 rank1=base - drop))
    res = pd.DataFrame(rows)
    assert statistics.unit_of(res) == "run" and statistics.unit_of(res[res.seed == 0]) == "cell"
    cells = statistics.test_all(res)
    assert (cells.n_pairs == 2).all() and cells.why_not_shown.str.contains("2 pairs").all()
    runs = statistics.test_all(res, unit="run")
    row = runs[(runs.metric == "mAP") & (runs["after"] == "orig_anon")].iloc[0]
    assert row.n_pairs == 6 and not row.why_not_shown and row.p_value < 0.01
    assert "Over 6 training runs (each model, each seed)" in statistics.describe_drop(row.to_dict())
    tost = statistics.tost_all(res, [2.0], unit="run")
    assert (tost.n_pairs == 6).all() and "6 training runs" in statistics.describe_tost(tost.iloc[0].to_dict())


def test_readable_tests_table_fits_a_page():
    """Words for protocols and columns, each interval in one column, no test internals, 2 decimals."""
    rng = np.random.default_rng(0)
    res = pd.DataFrame({"dataset": ["d"] * 24, "model": [f"m{i}" for i in range(8)] * 3,
                        "protocol": ["orig_orig"] * 8 + ["orig_anon"] * 8 + ["anon_anon"] * 8,
                        "mAP": np.r_[rng.normal(50, 5, 8), rng.normal(48, 5, 8), rng.normal(49, 5, 8)],
                        "rank1": rng.normal(60, 5, 24)})
    tests = statistics.test_all(res)
    shown = statistics.display_tests(tests)
    assert "95% CI" in shown and not {"ci_low", "ci_high", "df", "t", "95% CI low"} & set(shown.columns)
    assert "why no statistic" not in shown  # every statistic is shown here
    assert set(shown["after"]) <= set(statistics.PROTOCOL_WORDS.values())
    low, high = (float(v) for v in shown["95% CI"].iloc[0].split(" to "))
    assert low < high and round(low, 2) == low
    assert len(shown.columns) <= 13  # was 18 with the test internals


def test_protocol_wide_averages_replicated_runs_in_the_papers_layout():
    run = pd.DataFrame({"model": ["a", "a", "b", "b"] * 2, "seed": [0, 1, 0, 1] * 2,
                        "protocol": ["orig_orig"] * 4 + ["orig_anon"] * 4,
                        "mAP": [50, 52, 30, 30, 48, 50, 29, 31], "rank1": [60, 62, 40, 40, 58, 60, 39, 41]})
    wide = statistics.protocol_wide(run)
    assert list(wide.index) == ["a", "b"] and wide.shape == (2, 4)  # no anon_anon columns: none were run
    assert wide.loc["a", ("original → original", "mAP")] == 51.0
    assert wide.loc["b", ("original → anonymized", "Rank-1")] == 40.0


def test_readable_tables_say_yes_or_no_never_true_or_false():
    tost = statistics.tost_all(statistics.load_paper_results(), [1.0, 2.0], 0.05)
    readable = statistics.display_tests(tost)
    cells = set(readable.astype(str).to_numpy().ravel())
    assert not cells & {"True", "False", "nan", "NaN"} and cells & {"yes", "no"}


def test_a_drop_grows_only_beyond_the_seeds_noise():
    assert statistics.drop_grows([8.5, 9.5, 9.0], [0.5, 1.5, 1.0])["found"] is True
    within = statistics.drop_grows([0.5, 2.0, 2.5], [0.5, 1.5, 2.5])
    assert within["found"] is False and within["p_value"] > 0.05
    assert statistics.drop_grows([3.0], [0.0, 1.0])["found"] is None  # one seed: no noise to measure
