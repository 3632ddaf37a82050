"""The Findings chapter's sentences (reidlib.pages.findings): built from the results, keyed as glued."""
from __future__ import annotations

import pandas as pd

from reidlib.pages import findings as page


def _tost(margins):
    return pd.DataFrame([{"metric": m, "after": a, "margin": g, "n_pairs": 30, "mean_difference": 0.8,
                          "ci90_low": 0.5, "ci90_high": 1.1, "p_tost": 0.01 if g > 1 else 0.6,
                          "equivalent": g > 1, "why_not_shown": ""}
                         for m in ("mAP", "rank1") for a in ("orig_anon", "anon_anon") for g in margins])


def test_tost_sentences_key_each_comparison_at_both_margins():
    got = page.tost_sentences(_tost([1.0, 2.0]), [1.0, 2.0])
    assert set(got) == {f"tost_{m}_{a}_{w}" for m in ("mAP", "rank1") for a in ("orig_anon", "anon_anon")
                        for w in ("smallest", "largest")}
    assert got["tost_mAP_orig_anon_smallest"] != got["tost_mAP_orig_anon_largest"]
    assert "Rank-1" in got["tost_rank1_anon_anon_largest"]


def test_header_numbers_list_the_margins():
    assert page.header_numbers(0.5, [1.0, 2.5]) == {"share": "0.5", "margins": "1 and 2.5", "largest_margin": "2.5"}


def test_per_query_text_says_why_when_there_are_no_effects():
    assert page.per_query_text([]) == page.NO_PER_QUERY


def _result(reenc_share: float) -> dict:
    verdict = {"verdict": "inconclusive", "metric": "mAP", "face": 0.1, "face_sd": 0.2, "face_low": -0.2,
               "face_high": 0.4, "p_value": 0.3, "margin": 1.0, "runs": 6, "protocol": 1.6,
               "reencoding": 1.6 * reenc_share, "face_share": 0.06, "reencoding_share": reenc_share, "why": ""}
    tests = [{"metric": "mAP", "after": "orig_anon", "mean_difference": 1.23}]
    return {"face_part": verdict, "paper_tests": tests}


def test_the_face_part_and_the_papers_reading_come_from_the_result():
    r = _result(0.9)
    assert "1.60" in page.face_part_text(r)
    text = page.paper_reading_text(r)
    assert "1.23" in text and "1.44 (90%): most of it" in text
    assert "on a copy saved as anonymization tools save one (every image encoded again)" in text  # not the run's copy
    assert text.endswith("its orig→anon drop is the face part above.")
    assert "(30%). If the paper's copies" in page.paper_reading_text(_result(0.3))
    assert "none of it" in page.paper_reading_text(_result(-1.0))


def test_without_a_decomposition_the_page_says_why():
    assert page.face_part_text({"paper_tests": []}) == page.NO_PARTS
    assert "no re-encoding part" in page.paper_reading_text({"paper_tests": [], "face_part": None})


def test_claims_cards_give_each_claim_its_verdict_and_evidence_as_a_list():
    claims = pd.DataFrame([{"claim": "Drops are small", "verdict": "not reproduced", "paper_evidence": "TOST fails",
                            "run_evidence": "drop 2.1", "why": "interval reaches past 1"},
                           {"claim": "Ranking kept", "verdict": "reproduced", "paper_evidence": "tau 0.8",
                            "run_evidence": "n/a", "why": "tau above 0.6"}])
    text = page.claims_cards(claims)
    assert text.startswith("**1. Drops are small** — *✘ not reproduced*")
    assert "**2. Ranking kept** — *✔ reproduced*" in text
    assert "\n- **This run:** drop 2.1\n" in text and text.count("\n- **Why:**") == 2


def test_a_run_without_a_drop_says_there_is_nothing_to_take_apart():
    r = _result(0.5)
    r["face_part"]["protocol"] = -0.4
    assert "no drop to take apart" in page.paper_reading_text(r) and "+0.40" in page.paper_reading_text(r)


def _drops(neg_found, pos_found) -> pd.DataFrame:
    return pd.DataFrame([{"control": c, "face_identity_share": s, "metric": "mAP", "after": "orig_anon",
                          "n_seeds": 3, "mean_drop": d, "seed_sd": 0.3, "p_value": 0.01, "found": f,
                          "why_not_shown": ""}
                         for c, s, d, f in (("negative", 0.0, 0.1, neg_found), ("positive", 1.0, 4.0, pos_found))])


def _ratios(separated: bool) -> pd.DataFrame:
    high = 2.0 if separated else 1.1
    return pd.DataFrame([{"run": run, "control_seed": 0, "model": "HACNN", "trained_on": "orig", "method": "grad-cam",
                          "kind": "true match", "ratio": r, "ratio_low": r - 0.2, "ratio_high": r + 0.2, "queries": 6}
                         for run, r in (("share 0", 1.0), ("share 1", high))])


def _head(gain: float) -> pd.DataFrame:
    return pd.DataFrame([{"face_identity_share": s, "variant": v, "seed": seed,
                          "rank1": 50.0 - (gain * s if v == "anonymized" else 0.0) + seed,
                          "map": 45.0 - (gain * s if v == "anonymized" else 0.0) + seed, "chance_rank1": 4.0}
                         for s in (0.0, 1.0) for v in ("original", "anonymized") for seed in (0, 1)])


def test_each_measure_passes_or_fails_its_controls_by_its_own_results():
    from reidlib.analyses import controls
    good = controls.instruments(_drops(False, True), _ratios(True), _head(20.0))
    assert good.verdict.tolist() == ["passes", "passes", "passes"]
    bad = controls.instruments(_drops(True, True), _ratios(False), _head(0.0))
    assert bad.verdict.tolist() == ["fails", "fails", "fails"]
    assert controls.instruments(_drops(None, True)).verdict.tolist() == ["cannot tell"]
    assert controls.passing(good)[0].startswith("protocol drop") and controls.passing(bad) == []
    assert "rests on them alone" in page.controls_sentence(good)
    assert page.controls_sentence(bad).startswith("No measure passes both controls")


def test_detectable_text_counts_the_datasets_whose_drop_is_below_what_their_pairs_detect():
    by = pd.DataFrame([{"dataset": d, "metric": "mAP", "after": "orig_anon", "n_pairs": n, "mean_difference": m,
                        "mde": e} for d, n, m, e in (("all", 30, 1.3, 1.1), ("Airport", 6, 1.75, 2.46),
                                                     ("Market1501", 6, 0.92, 0.47))])
    text = page.detectable_text(by)
    assert "Airport 1.75 against 2.46 (6 pairs)" in text and "all" not in text.split(":")[1].split(";")[0]
    assert text.endswith("In 1 of 2 datasets the drop is smaller than what its pairs can detect.")


def _sanity(changed: bool) -> pd.DataFrame:
    trained = _ratios(True)
    rand = 2.0 if not changed else 1.0
    extra = [{"run": "share 1", "control_seed": 0, "model": "HACNN", "trained_on": t, "method": "grad-cam",
              "kind": "true match", "ratio": rand, "ratio_low": rand - 0.2, "ratio_high": rand + 0.2, "queries": 6}
             for t in ("random weights", "shuffled identities")]
    return pd.concat([trained, pd.DataFrame(extra)], ignore_index=True)


def test_the_randomization_checks_pass_only_when_the_ratio_changes():
    from reidlib.analyses import attribution, controls
    checks = attribution.sanity_checks(_sanity(changed=True))
    assert checks.check.tolist() == ["model randomization", "data randomization"] and checks.changed.all()
    assert not attribution.sanity_checks(_sanity(changed=False)).changed.any()
    rows = controls.instruments(_drops(False, True), _sanity(changed=True))
    sanity = rows[rows.measure.str.contains("randomization")]
    assert sanity.verdict.tolist() == ["passes", "passes"]
    assert not any("randomization" in m for m in controls.passing(rows))  # checks of a measure, not measures
    assert "face share ratio (grad-cam), HACNN (true matches)" in controls.passing(rows)
    rows = controls.instruments(_drops(False, True), _sanity(changed=False))
    assert rows[rows.measure.str.contains("randomization")].verdict.tolist() == ["fails", "fails"]
    # the ratio separates the controls, but a map that ignores what the model learned is not a measure
    assert rows.set_index("measure").loc["face share ratio (grad-cam), HACNN (true matches)", "verdict"] == "passes"
    assert controls.passing(rows) == ["protocol drop (mAP, orig→anon)"]
    shown = page.controls_table(rows).data
    assert shown.index.name == "measure" and list(shown.columns) == ["row", "negative control", "positive control",
                                                                     "verdict", "why"]
    assert "trained 2.00 [1.80, 2.20]" in rows.iloc[-1]["positive control"]


def _model_controls(only_drop: float, blind_drop: float, only_orig: float = 40.0) -> pd.DataFrame:
    return pd.DataFrame([{"visible": v, "model": "HACNN", "seed": 0, "orig_orig": oo, "orig_anon": oo - d,
                          "drop": d, "floor": 8.0, "accuracy": 90.0}
                         for v, d, oo in (("face_only", only_drop, only_orig), ("face_blind", blind_drop, 40.0))])


def _model_ratios(only: float, blind: float) -> pd.DataFrame:
    return pd.DataFrame([{"run": "model controls", "control_seed": 0, "model": "HACNN", "trained_on": t,
                          "method": "grad-cam", "kind": "true match", "ratio": r, "ratio_low": r - 0.3,
                          "ratio_high": r + 0.3, "queries": 6} for t, r in (("face only", only), ("face blind", blind))])


def test_the_model_controls_judge_the_drop_and_the_ratio_from_their_own_numbers():
    from reidlib.analyses import controls
    drops = _drops(False, True).assign(model="HACNN")  # the positive control's seed SD of the drop: 0.3
    good = controls.instruments(drops, _model_ratios(3.0, 0.9), model_controls=_model_controls(30.0, 0.1))
    rows = good[good.measure.str.contains("face-only model")].set_index("measure")
    assert rows.verdict.tolist() == ["passes", "passes"]
    assert "(orig→anon 10.0, 1.2x the floor)" in rows.iloc[0]["positive control"]
    bad = controls.instruments(drops, _model_ratios(1.5, 1.6), model_controls=_model_controls(0.2, 3.0))
    assert bad[bad.measure.str.contains("face-only model")].verdict.tolist() == ["fails", "fails"]
    # a face-only model at the floor on the originals learned no face: its small drop is not read as a finding
    idle = controls.instruments(drops, model_controls=_model_controls(0.9, 0.0, only_orig=8.5))
    row = idle[idle.measure.str.contains("face-only model")].iloc[0]
    assert row.verdict == "cannot tell" and "learned too little of the faces to be read: orig/orig 8.5, 1.1x the floor" in row.why


def _removal(only_after: float, blind_after: float, only_orig: float = 40.0) -> pd.DataFrame:
    rows = []
    for v, oo, after in (("face_only", only_orig, only_after), ("face_blind", 40.0, blind_after)):
        for boxes, technique, a in (("detected", "blur", oo - 2), ("truth", "zero", after)):
            rows.append({"visible": v, "model": "HACNN", "seed": 0, "boxes": boxes, "technique": technique,
                         "orig_orig": oo, "after": a, "drop": oo - a, "floor": 8.0})
    return pd.DataFrame(rows)


def test_the_face_removed_completely_must_take_the_face_only_model_to_the_floor():
    from reidlib.analyses import controls
    drops = _drops(False, True).assign(model="HACNN")  # noise: 2 x 0.3 points

    def row(removal):
        t = controls.instruments(drops, removal=removal)
        return t[t.measure.str.contains("removed completely")].iloc[0]

    good = row(_removal(only_after=10.0, blind_after=39.9))
    assert good.verdict == "passes" and "(after 10.0, 1.2x the floor)" in good["positive control"]
    assert "(zero on the true boxes, not the run's anonymization)" in good.measure and good.role == "check"
    # a check: it never counts as a measure, but the protocol drop it checks counts only while it does not fail
    assert controls.passing(controls.instruments(drops, removal=_removal(10.0, 39.9))) == [
        "protocol drop (mAP, orig→anon), HACNN"]
    residue = row(_removal(only_after=20.0, blind_after=39.9))  # a large drop, but the face leaves 2.5x the floor
    assert residue.verdict == "fails" and "stays at 2.5x the floor (at most 1.5x needed)" in residue.why
    assert controls.passing(controls.instruments(drops, removal=_removal(20.0, 39.9))) == []
    assert row(_removal(only_after=10.0, blind_after=35.0)).verdict == "fails"  # the face-blind model lost 5
    idle = row(_removal(only_after=8.0, blind_after=39.9, only_orig=9.0))
    assert idle.verdict == "cannot tell" and "learned too little of the faces to be read" in idle.why


def _training(accuracy: dict[str, float]) -> pd.DataFrame:
    return pd.DataFrame([{"face_identity_share": share, "model": m, "seed": seed,
                          "accuracy": (acc if share == 1.0 else 90.0) + seed, "twin_ceiling": 50.0 if share else 100.0,
                          "seconds": 1.0} for m, acc in accuracy.items() for share in (0.0, 1.0) for seed in (0, 1)])


def test_a_model_the_positive_control_did_not_teach_the_faces_counts_in_no_reading():
    from reidlib.analyses import controls
    ratios = _ratios(True)  # HACNN's face share ratio separates the controls
    taught = controls.instruments(_drops(False, True), ratios, training=_training({"HACNN": 75.0}))
    check = taught.iloc[0]
    assert (check.role, check.instrument, check.model, check.verdict) == ("check", controls.EVERY, "HACNN", "passes")
    assert "75.5% over 2 seeds (twin ceiling 50%)" == check["positive control"]
    one = _training({"HACNN": 75.0}).query("seed == 0")
    assert controls.instruments(_drops(False, True), training=one).iloc[0]["positive control"] == \
        "75.0% over 1 seed (twin ceiling 50%)"
    assert "face share ratio (grad-cam), HACNN (true matches)" in controls.passing(taught)
    untaught = controls.instruments(_drops(False, True), ratios, training=_training({"HACNN": 60.0}))
    assert untaught.iloc[0].verdict == "fails" and "+10.5 points" in untaught.iloc[0].why  # 20 asked
    assert controls.passing(untaught) == ["protocol drop (mAP, orig→anon)"]  # a reading of no model stays
    # another model's failed check leaves this model's readings alone
    other = controls.instruments(_drops(False, True), ratios, training=_training({"HACNN": 75.0, "BoT": 40.0}))
    assert "face share ratio (grad-cam), HACNN (true matches)" in controls.passing(other)
