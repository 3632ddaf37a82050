import numpy as np
import pandas as pd
import pytest

from reidlib.analyses import findings, per_query
from reidlib.stages import evaluation, statistics


def sweep(neg_drop, pos_drop, seeds=4, sd=0.3):
    rng = np.random.default_rng(0)
    rows = []
    for share, drop in ((0.0, neg_drop), (1.0, pos_drop)):
        for s in range(seeds):
            base = 40 + rng.normal(0, 2)
            for prot, v in (("orig_orig", base), ("orig_anon", base - drop + rng.normal(0, sd)),
                            ("anon_anon", base - drop / 2 + rng.normal(0, sd))):
                rows.append(dict(face_identity_share=share, model="HACNN", seed=s, protocol=prot, mAP=v, rank1=v))
    return pd.DataFrame(rows)


def test_controls_pass_when_the_measure_finds_only_the_positive():
    c = findings.control_drops(sweep(neg_drop=0.0, pos_drop=5.0))
    assert set(c.control) == {"negative", "positive"} and (c.n_seeds == 4).all()
    m = c[(c.metric == "mAP") & (c["after"] == "orig_anon")].set_index("control")
    assert not m.loc["negative", "found"] and m.loc["positive", "found"]
    assert findings.measure_checked(c).startswith("for HACNN it passes (")
    assert "as it should" in findings.describe_control(m.loc["positive"].to_dict() | {"control": "positive"})
    broken = findings.control_drops(sweep(neg_drop=5.0, pos_drop=5.0))
    assert findings.measure_checked(broken).startswith("for HACNN it fails (a drop beyond seed noise at the negative")


def test_controls_with_one_seed_cannot_tell():
    c = findings.control_drops(sweep(0.0, 5.0, seeds=1))
    said = findings.measure_checked(c)
    assert said.startswith("for HACNN it cannot tell (the controls have 1 seed;")
    text = findings.describe_control(c.iloc[0].to_dict())
    assert "cannot be told" in text and "p =" not in text
    without_seed_column = sweep(0.0, 5.0, seeds=1).drop(columns="seed")
    assert findings.control_drops(without_seed_column).n_seeds.eq(1).all()


@pytest.fixture(scope="module")
def claims():
    paper = statistics.load_paper_results()
    folder = statistics.paper_results_path().parent
    run = pd.DataFrame({"dataset": "synthetic", "model": ["HACNN", "BoT"] * 3,
                        "protocol": ["orig_orig"] * 2 + ["orig_anon"] * 2 + ["anon_anon"] * 2,
                        "mAP": [52.0, 4.8, 50.8, 4.0, 50.6, 4.1], "rank1": [41.7, 0, 37.5, 0, 40.0, 0]})
    recall = {"ground_truth": True, "recall": {"value": 0.9, "n": 100, "k": 90, "wilson": [0.83, 0.94]}}
    return findings.claims_table(paper, pd.read_csv(folder / "claims_section_IV_B.csv"),
                                 statistics.load_paper_techniques(), run, [1.0, 2.0], 0.05,
                                 findings.control_drops(sweep(0.0, 5.0, seeds=1)), recall, "centerface", 0.5)


def test_claims_table_verdicts(claims):
    c = claims.set_index("id")
    assert set(c.verdict) <= set(findings.VERDICTS)
    assert c.loc["averages", "verdict"] == "not reproduced"  # the stated levels are not the tables'
    assert c.loc["significant", "verdict"] == "reproduced"
    assert c.loc["small_orig_anon", "verdict"] == "not reproduced"  # mAP not within 2 points by TOST
    assert c.loc["small_anon_anon", "verdict"] == "reproduced"
    small = c.loc["small_anon_anon"]  # the evidence's smallest margin (1) and the verdict's (2) are both named
    assert "within ±1" in small.paper_evidence and "within ±2 points, the margin the verdict uses" in small.why
    assert c.loc["faces", "verdict"] == "cannot tell here" and c.loc["recall", "verdict"] == "cannot tell here"
    # the run's 2 pairs: its evidence names the reason and prints no statistic
    run_text = c.loc["significant", "run_evidence"]
    assert "2 pairs: a paired test needs at least 3" in run_text and "t =" not in run_text
    assert "2 models" in c.loc["ranking", "run_evidence"]
    assert findings.verdict_counts(claims).startswith(f"Of {len(claims)} claims, ")


def test_the_retraining_claim_pairs_the_runs_training_runs_as_the_other_claims_do():
    paper = statistics.load_paper_results()
    rows = []
    for model in ("HACNN", "BoT"):
        for seed in range(3):
            for prot, v in (("orig_orig", 50.0), ("orig_anon", 48.0 - seed * 0.1), ("anon_anon", 49.0 + seed * 0.2)):
                rows.append(dict(dataset="synthetic", model=model, seed=seed, protocol=prot, mAP=v, rank1=v))
    c = findings.claim_recovered(paper, pd.DataFrame(rows), 0.05)
    assert "over 6 training runs (each model, each seed)" in c["run_evidence"] and "p =" in c["run_evidence"]
    one_seed = findings.claim_recovered(paper, pd.DataFrame(rows).query("seed == 0"), 0.05)
    assert "over 2 (dataset, model) pairs; no test" in one_seed["run_evidence"]


def test_verdict_counts_sentence():
    c = pd.DataFrame({"verdict": ["reproduced", "not reproduced", "cannot tell here", "cannot tell here"]})
    assert findings.verdict_counts(c) == ("Of 4 claims, 1 is reproduced from the paper's own tables, 1 not "
                                          "reproduced, and 2 cannot be told here.")
    assert findings.within(1) == "within ±1 point" and findings.within(2.0) == "within ±2 points"


def test_per_query_ap_averages_to_the_stage_5_map():
    rng = np.random.default_rng(0)
    q_pids, g_pids = rng.integers(0, 10, 40), rng.integers(0, 10, 120)
    q_cams, g_cams = rng.integers(0, 3, 40), rng.integers(0, 3, 120)
    dist = rng.random((40, 120))
    ap = 100 * evaluation.per_query_ap(dist, q_pids, g_pids, q_cams, g_cams)
    whole = evaluation.rank_metrics(dist, q_pids, g_pids, q_cams, g_cams)
    assert np.isfinite(ap).sum() == whole.valid_queries
    assert np.nanmean(ap) == pytest.approx(100 * whole.mAP)
    # a query whose only match ranks first has AP 100
    d = np.array([[0.1, 0.5, 0.9]])
    assert evaluation.per_query_ap(d, [1], np.array([1, 2, 3]), [0], np.array([1, 1, 1]))[0] == 1


def test_query_covariates_and_effects():
    queries = pd.DataFrame({"image": list("abcdef"), "pid": [1, 1, 2, 2, 3, 3], "camid": [0, 1] * 3})
    truth = pd.DataFrame({"image": list("abcd"), "x0": 0, "y0": 0, "x1": [8, 10, 12, 20], "y1": 10})
    dets = pd.DataFrame({"image": ["a", "b", "c", "f"], "score": [0.3, 0.9, 0.5, 0.2],
                         "source": ["detector", "detector", "detector", "default_box"]})
    residual = pd.DataFrame({"image": ["b", "b", "c"], "technique": ["blur", "zero", "blur"]})
    cov = per_query.query_covariates(queries, truth, dets, residual, "blur").set_index("image")
    assert list(cov.has_face) == [True] * 4 + [False] * 2
    assert cov.loc["d", "missed"] and not cov.loc["a", "missed"] and not cov.loc["f", "detected"]
    assert cov.loc["b", "audit_hits"] == 1 and cov.loc["b", "det_score"] == 0.9
    table = cov.reset_index().assign(model="m", delta_ap=[-10.0, -8.0, -12.0, -9.0, 0.0, 0.0])
    eff = per_query.effects(table).set_index(["factor", "level"])
    face = eff.loc[("face", "face visible")]
    assert face.queries == 4 and face.mean_delta_ap == pytest.approx(-9.75) and face.ci_low < -9.75 < face.ci_high
    assert "2 queries" in eff.loc[("face", "back of the head"), "why_not_shown"]
    assert np.isnan(eff.loc[("face", "back of the head"), "ci_low"])
    losers = per_query.biggest_losers(table, k=2)
    assert list(losers.image) == ["c", "a"]
    text = per_query.describe_effects(per_query.effects(table))
    assert "4 queries" in text and "no interval: 2 queries" in text
    named = per_query.describe_effects(per_query.effects(table.assign(model="bot_mnv2")))
    assert named.startswith("BoT (MobileNetV2), face visible:") and "bot_mnv2" not in named


def test_equivalence_margins_come_from_the_config():
    from reidlib.core import config

    assert config.load("config/default.yaml").statistics.equivalence_margins == [1.0, 2.0]
    assert config.from_dict({"statistics": {"equivalence_margins": [0.5]}}).statistics.equivalence_margins == [0.5]
    with pytest.raises(config.ConfigError, match="statistics.equivalence_margins"):
        config.from_dict({"statistics": {"equivalence_margins": [0, 1]}})


def test_loser_gallery_without_losers_still_draws(tmp_path):
    fig = per_query.loser_gallery(pd.DataFrame(columns=["image", "model", "delta_ap"]), tmp_path, tmp_path)
    assert "no query loses AP" in fig.axes[0].texts[0].get_text()


def test_controls_judge_each_model_alone():
    both = pd.concat([sweep(0.0, 5.0).assign(model="HACNN"), sweep(0.0, 0.0).assign(model="BoT")])
    c = findings.control_drops(both)
    assert set(c.model) == {"HACNN", "BoT"} and (c.n_seeds == 4).all()  # seeds are not pooled over models
    said = findings.measure_checked(c)
    assert "for HACNN it passes" in said and "; for BoT it fails" in said
    from reidlib.analyses import controls
    rows = controls.instruments(c)
    assert rows.measure.tolist() == ["protocol drop (mAP, orig→anon), HACNN", "protocol drop (mAP, orig→anon), BoT"]
    assert rows.verdict.tolist() == ["passes", "fails"]


def test_findings_and_the_controls_table_judge_the_drop_alike():
    from reidlib.analyses import controls
    both = pd.concat([sweep(0.0, 5.0).assign(model="HACNN"), sweep(5.0, 5.0).assign(model="BoT"),
                      sweep(0.0, 5.0, seeds=1).assign(model="PCB")])
    c = findings.control_drops(both)
    table = controls.instruments(c).set_index("measure")
    mine = c[(c.metric == "mAP") & (c["after"] == "orig_anon")]
    for model in ("HACNN", "BoT", "PCB"):
        judged = table.loc[f"protocol drop (mAP, orig→anon), {model}", "verdict"]
        assert findings.measure_checked(mine[mine.model == model]).startswith(f"for {model} it {judged} (")
    assert table.verdict.tolist() == [controls.PASSES, controls.FAILS, controls.CANNOT]
    said = findings.measure_checked(c)  # in the table's words, model by model, as the faces claim says it
    assert said.startswith("for HACNN it passes (no drop beyond seed noise at the negative control, a drop at the ")
    assert "; for BoT it fails (a drop beyond seed noise at the negative control" in said
    assert "; for PCB it cannot tell (" in said
    assert said in findings.claim_faces(c, 0.5)["why"]


def _inter(neg_loss: float, pos_loss: float, seeds: int = 3, queries: int = 20) -> pd.DataFrame:
    """Per-query intervention rows as chapter 8 writes them: each control world, seed and technique; the faces
    anonymized in query and gallery take `*_loss` AP points (with noise), the other placements nothing."""
    rng = np.random.default_rng(1)
    rows = []
    for share, loss in ((0.0, neg_loss), (1.0, pos_loss)):
        for s in range(seeds):
            for placement in ("query", "gallery", "both"):
                for q in range(queries):
                    ap = rng.uniform(0.3, 0.9)
                    lost = (loss if placement == "both" else 0.0) / 100 + rng.normal(0, 0.02)
                    rows.append(dict(run=f"share {share:g}", model="BoT", trained_on="orig", technique="swap",
                                     placement=placement, query=q, ap=ap, ap_after=ap - lost, control_seed=s,
                                     face_identity_share=share))
    default = pd.DataFrame(rows[:5]).assign(run="default", face_identity_share=np.nan, ap_after=0.0)
    return pd.concat([default, pd.DataFrame(rows)], ignore_index=True)


def test_the_face_only_intervention_is_judged_against_both_controls_from_its_seeds():
    from reidlib.analyses import attribution, controls
    means = attribution.control_intervention_means(_inter(0.0, 6.0))
    assert len(means) == 2 * 3 and (means.queries == 20).all()  # the run's own rows and other placements left out
    assert means.groupby("face_identity_share").ap_lost.mean().to_dict() == pytest.approx({0.0: 0.0, 1.0: 6.0}, abs=1.0)
    iv = attribution.control_interventions(means)
    assert iv.set_index("control").found.to_dict() == {"negative": False, "positive": True}
    row = controls.instruments(findings.control_drops(sweep(0.0, 5.0)), interventions=iv).set_index("measure")
    assert row.loc["face-only intervention (swap, AP lost), BoT", "verdict"] == controls.PASSES
    assert "face-only intervention (swap, AP lost), BoT" in controls.passing(row.reset_index())
    for neg, pos in ((6.0, 6.0), (0.0, 0.0)):  # a loss where the face carries nothing, or none where it carries all
        broken = attribution.control_interventions(attribution.control_intervention_means(_inter(neg, pos)))
        assert controls.instruments(findings.control_drops(sweep(0.0, 5.0)),
                                    interventions=broken).verdict.tolist()[-1] == controls.FAILS
    one = attribution.control_interventions(attribution.control_intervention_means(_inter(0.0, 6.0, seeds=1)))
    assert controls.instruments(findings.control_drops(sweep(0.0, 5.0)),
                                interventions=one).verdict.tolist()[-1] == controls.CANNOT
    assert attribution.control_interventions(means[means.face_identity_share == 1.0]).empty  # one world: no controls


def test_the_intervention_that_is_the_protocol_drop_is_counted_once():
    from reidlib.core import config
    both = pd.concat([_inter(0.0, 6.0), _inter(0.0, 6.0).assign(technique="blur")], ignore_index=True)
    from reidlib.analyses import attribution
    means = attribution.control_intervention_means(both)
    detected = findings._interventions(config.Config(), means, 0.05)  # blur on stage 1's boxes: the copy itself
    assert set(detected.technique) == {"swap"}
    truth = findings._interventions(config.from_dict({"attribution": {"boxes": "truth"}}), means, 0.05)
    assert set(truth.technique) == {"swap", "blur"}
    assert findings._interventions(config.Config(), None, 0.05) is None


def _training(accuracy_at_one: float, model: str = "HACNN") -> pd.DataFrame:
    """The controls' training accuracy as `teaching.sweep_training` gives it: three seeds per share."""
    return pd.DataFrame([{"face_identity_share": share, "model": model, "seed": s, "seconds": 1.0,
                          "accuracy": (accuracy_at_one if share else 90.0) + s - 1,
                          "twin_ceiling": 50.0 if share else 100.0} for share in (0.0, 1.0) for s in range(3)])


def test_a_model_the_positive_control_did_not_teach_cannot_test_the_drop():
    from reidlib.analyses import controls

    c = findings.control_drops(sweep(neg_drop=0.0, pos_drop=0.0))
    assert findings.measure_checked(c).startswith("for HACNN it fails (")  # judged alone, the measure fails
    untaught = controls.untaught(_training(61.7))
    assert untaught == {"HACNN": "the positive control did not teach HACNN the faces: 61.7% training accuracy, "
                                 "+11.7 points from the twin ceiling where at least +20 are needed"}
    said = findings.measure_checked(c, untaught=untaught)
    assert said == f"for HACNN it cannot tell ({untaught['HACNN']})"
    assert said in findings.claim_faces(c, 0.5, untaught)["why"]
    assert controls.untaught(_training(70.0)) == {} and controls.untaught(None) == {}
    rows = controls.instruments(c, training=_training(61.7))
    assert rows.iloc[0].verdict == controls.FAILS and rows.iloc[0].why.startswith("+11.7 points from the twin ceiling")
