"""The privacy chapter's verdicts (reidlib.analyses.privacy) and what its page shows (reidlib.pages.privacy)."""
from __future__ import annotations

import math

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from reidlib.analyses import controls, privacy
from reidlib.pages import privacy as page


def _points(retrained_run_point: bool = True) -> pd.DataFrame:
    rows = [("none", math.nan, "none", 100.0, 90.0, 95.0, 60.0, 50.0, 50.0, math.nan, math.nan),
            ("blur", 0.125, "blur_0.125", 10.0, 40.0, 30.0, 45.0, 40.0, math.nan, True, True),
            ("pixelate", 6.0, "pixelate_6", 10.0, 20.0, 10.0, 40.0, 35.0, math.nan, True, False),
            ("zero", math.nan, "zero", 10.0, 5.0, 2.0, 30.0, 20.0, 18.0 if retrained_run_point else math.nan,
             True, True)]
    cols = ["technique", "strength", "label", "leaked_faces", "face_rank1", "face_tar_far0.01", "head_rank1",
            "map_orig_anon", "map_anon_anon", "front_face_orig_anon", "front_head_orig_anon"]
    return pd.DataFrame(rows, columns=cols)


def _summary(face: bool = True, run_point: str = "zero") -> dict:
    fronts = [{"attacker": "face", "protocol": "orig_anon", "knee": "pixelate_6", "knee_attack_rank1": 20.0,
               "knee_map": 35.0},
              {"attacker": "head", "protocol": "orig_anon", "knee": "blur_0.125", "knee_attack_rank1": 45.0,
               "knee_map": 40.0},
              {"attacker": "head", "protocol": "anon_anon", "knee": "zero", "knee_attack_rank1": 30.0,
               "knee_map": 18.0}]
    return {"face_attacker": face, "face_attacker_reason": "" if face else "privacy.face_attacker is false",
            "chance": {"rank1": 12.5}, "test_faces": 40, "run_point": run_point,
            "model": "bot_r50", "head_model": "bot_mnv2", "head_pretrained": "imagenet", "head_size": [96, 96],
            "fronts": fronts if face else fronts[1:]}


def _ctrl(high_gain: float, seeds=(0, 1), jitter: float = 1.0, chance: float = 4.0,
          rank1_gain: float | None = None) -> pd.DataFrame:
    """Control rows whose mAP loses `high_gain` at share 1 (Rank-1 loses `rank1_gain`, the same unless given)."""
    rows = []
    r1 = high_gain if rank1_gain is None else rank1_gain
    for share, gain, g1 in ((0.0, 0.0, 0.0), (1.0, high_gain, r1)):
        for k, seed in enumerate(seeds):
            rows.append({"face_identity_share": share, "variant": "original", "seed": seed, "rank1": 80.0,
                         "map": 70.0, "chance_rank1": chance})
            rows.append({"face_identity_share": share, "variant": "anonymized", "seed": seed,
                         "rank1": 80.0 - g1 - k * jitter, "map": 70.0 - gain - k * jitter, "chance_rank1": chance})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- verdicts

def test_controls_pass_only_when_the_gain_clears_the_seed_spread():
    assert privacy.control_verdict(_ctrl(high_gain=20.0))["found"]
    assert not privacy.control_verdict(_ctrl(high_gain=0.5))["found"]
    wide = privacy.control_verdict(_ctrl(high_gain=5.0, jitter=10.0))
    assert wide["spread"] == pytest.approx(10.0) and not wide["found"]
    # the verdict reads the attacker's mAP: a Rank-1 loss alone is not a finding, an mAP loss alone is
    assert not privacy.control_verdict(_ctrl(high_gain=0.0, rank1_gain=30.0))["found"]
    assert privacy.control_verdict(_ctrl(high_gain=20.0, rank1_gain=0.0))["found"]


def test_an_attacker_at_chance_on_the_positive_control_cannot_be_read():
    v = privacy.control_verdict(_ctrl(high_gain=20.0, chance=50.0))  # Rank-1 80 < 2 x 50: at chance
    assert v["found"] and not v["readable"] and v["chance_rank1"] == pytest.approx(50.0)
    assert privacy.control_verdict(_ctrl(high_gain=20.0, chance=39.0))["readable"]
    text = page.control_text(v)
    assert "at chance" in text and page.CONTROLS_PASS not in text
    row = controls.instruments(pd.DataFrame(columns=["metric", "after", "model", "control"]), head=_ctrl(high_gain=20.0, chance=50.0))
    assert row.verdict.tolist() == [controls.CANNOT] and "80.0% on the positive control" in row.why.iloc[0]
    row = controls.instruments(pd.DataFrame(columns=["metric", "after", "model", "control"]), head=_ctrl(high_gain=20.0))
    assert row.verdict.tolist() == [controls.PASSES]


def test_a_controls_table_without_its_chance_rate_is_refused_naming_the_folder(tmp_path):
    path = tmp_path / "privacy" / "controls.csv"
    path.parent.mkdir()
    _ctrl(high_gain=20.0).drop(columns="chance_rank1").to_csv(path, index=False)
    with pytest.raises(ValueError, match=r"no column chance_rank1.*delete .*privacy"):
        privacy.read_controls(path)
    _ctrl(high_gain=20.0).to_csv(path, index=False)
    assert privacy.control_verdict(privacy.read_controls(path))["readable"]


def test_beats_chance_is_the_one_rule_for_both_the_knees_and_the_controls():
    assert privacy.beats_chance(8.0, 4.0) and not privacy.beats_chance(7.9, 4.0)
    assert privacy.beats_chance(8.0, 4.0, factor=2.0) == privacy.control_verdict(_ctrl(20.0, chance=40.0))["readable"]


def test_control_verdict_reports_the_gains_at_both_shares():
    v = privacy.control_verdict(_ctrl(high_gain=20.0))
    assert (v["low_share"], v["high_share"]) == (0.0, 1.0)
    assert v["low_gain"] == pytest.approx(0.5) and v["high_gain"] == pytest.approx(20.5)


def test_ceiling_summary_finds_the_first_width_passing_the_level():
    ceiling = pd.DataFrame({"source": ["this run", "this run", "generated at one width"],
                            "width": ["<12", ">=16", "24"], "rank1": [20.0, 55.0, 90.0]})
    s = privacy.ceiling_summary(ceiling)
    assert (s["low"], s["high"], s["best_width"], s["passes_at"]) == (20.0, 90.0, "24", ">=16")
    assert privacy.ceiling_summary(ceiling.assign(rank1=[1.0, 2.0, 3.0]))["passes_at"] is None


def test_ceiling_is_shown_only_when_the_face_attacker_ran_on_some_faces():
    ceiling = pd.DataFrame({"source": ["this run"], "width": ["<12"], "rank1": [20.0]})
    assert privacy.ceiling_shown(_summary(face=True), ceiling)
    assert not privacy.ceiling_shown(_summary(face=False), ceiling)
    assert not privacy.ceiling_shown(_summary(face=True), ceiling.iloc[:0])


def test_attackers_and_knees_follow_the_summary():
    assert privacy.attackers(_summary(face=True)) == ["face", "head"]
    assert privacy.attackers(_summary(face=False)) == ["head"]
    assert privacy.knees(_summary())["head"]["knee"] == "blur_0.125"
    assert privacy.knees(_summary(), "anon_anon")["head"]["knee"] == "zero"
    assert privacy.original(_points()).technique == "none"


# ---------------------------------------------------------------- the page

def test_settings_are_named_in_plain_words():
    assert page.setting_names(_points()) == ["original", "blur, sigma = w/8", "pixelate, 6x6 blocks", "black box"]


def test_headline_numbers_are_keyed_as_glued_and_say_when_the_face_attacker_did_not_run():
    got = page.headline_numbers(_points(), _summary())
    assert got == {"n_faces": 40, "chance_rank1": "12.5", "head_model": "BoT (MobileNetV2)",
                   "head_origin": "fine-tuned from ImageNet weights", "head_size": "96x96", "reid_model": "bot_r50", "leaked": "10", "head_orig_rank1": "60.0", "face_orig_rank1": "90.0"}
    assert page.headline_numbers(_points(), _summary(face=False))["face_orig_rank1"] == "not measured"
    assert page.headline_numbers(_points(), {**_summary(), "model": "hacnn"})["reid_model"] == "HACNN"
    assert page.face_status(_summary()) == ""
    assert page.head_origin("none") == "trained from scratch"
    assert page.head_origin("/data/w/heads.pth") == "fine-tuned from the weights in heads.pth"
    assert "privacy.face_attacker is false" in page.face_status(_summary(face=False))


def test_ceiling_text_says_where_the_attacker_works_or_that_it_was_not_run():
    ceiling = pd.DataFrame({"source": ["this run", "generated at one width"], "width": ["<12", "24"],
                            "rank1": [20.0, 90.0]})
    text = page.ceiling_text(ceiling, _summary())
    assert text.startswith("By face width, Rank-1 runs from 20% to 90% (at 24 px). It passes 50% from 24 px.")
    assert page.ceiling_text(ceiling.assign(rank1=[5.0, 8.0]), _summary()).count("never reaches 50%") == 1
    assert page.ceiling_text(ceiling, _summary(face=False)).startswith(page.NO_CEILING)


def test_front_text_names_each_attackers_knee():
    text = page.front_text(_points(), _summary())
    assert "face attacker the knee of the front is **pixelate, 6x6 blocks**: attacker Rank-1 20.0%" in text
    assert "head attacker the knee of the front is **blur, sigma = w/8**" in text
    assert "face" not in page.front_text(_points(), _summary(face=False))
    assert "buys no privacy" not in text  # head 45.0 at the knee against 60.0 on the originals
    points = _points()
    points.loc[points.technique == "none", "head_rank1"] = 45.0
    text = page.front_text(points, _summary())
    assert "no lower than its Rank-1 on the original images (45.0%): against this attacker the knee buys no" in text
    assert text.count("buys no privacy") == 1  # the face attacker's knee (20.0 against 90.0) does buy some
    points.loc[points.technique == "none", "head_rank1"] = 45.00004  # a results file's rounding, not a gain
    assert "buys no privacy" in page.front_text(points, _summary())


def test_control_text_follows_the_verdict():
    passed = page.control_text(privacy.control_verdict(_ctrl(high_gain=20.0)))
    assert passed.endswith(page.CONTROLS_PASS) and "by 20.5 points at share 1" in passed
    assert page.control_text(privacy.control_verdict(_ctrl(high_gain=0.5))).endswith(page.CONTROLS_FAIL)
    raised = page.control_text(privacy.control_verdict(_ctrl(high_gain=-5.0)))  # anonymized above the originals
    assert "and raises it by 4.5 points at share 1" in raised and "by -" not in raised


def test_summary_is_a_markdown_list_with_the_run_point():
    lines = page.summary_lines(_points(), _summary()).split("\n")
    assert len(lines) == 4 and all(x.startswith("- ") for x in lines)
    assert "(black box) it falls to Rank-1 5.0%" in lines[1]
    assert lines[2].endswith("60.0% on the originals and 30.0% after retraining on the run's anonymization.")
    head_only = page.summary_lines(_points(), _summary(face=False, run_point="missing")).split("\n")
    assert len(head_only) == 2 and head_only[0].endswith("on the originals.")


def test_points_table_names_columns_and_dashes_missing_values():
    t = page.points_table(_points()).data
    assert t.index.name == "setting" and t.index[0] == "original"
    assert "face Rank-1" in t.columns and "re-ID mAP (retrained on copy)" in t.columns
    assert t.loc["blur, sigma = w/8", "re-ID mAP (retrained on copy)"] == "–"
    assert t.loc["black box", "face Rank-1"] == "5.0"


@pytest.mark.parametrize("face", [True, False])
def test_figures_draw_a_panel_per_attacker(face):
    ceiling = pd.DataFrame({"source": ["this run"], "width": ["<12"], "rank1": [20.0]})
    figs = [page.front_figure(_points(), _summary(face)), page.ceiling_figure(ceiling, _summary(face)),
            page.control_figure(_ctrl(high_gain=10.0))]
    assert len(figs[0].axes) == (2 if face else 1)
    assert figs[1].axes[0].get_ylabel() == ("Rank-1 (%)" if face else "")
    legend = [t.get_text() for t in figs[0].axes[0].get_legend().get_texts()]
    assert "black box" in legend and "zero" not in legend and "front" in legend  # the table's words
    for f in figs:
        plt.close(f)


def test_no_knee_is_named_for_an_attacker_at_chance():
    points = _points()
    points.loc[points.technique == "none", "head_rank1"] = 20.0  # < 2 x chance (12.5)
    assert not privacy.above_chance(points, _summary(), "head") and privacy.above_chance(points, _summary(), "face")
    text = page.front_text(points, _summary())
    assert "head attacker the knee" not in text and "no knee is named for it" in text
    assert "Rank-1 on the original images (20.0%) is not clearly above chance (12.5%" in text
    assert "face attacker the knee of the front is **pixelate, 6x6 blocks**" in text
    fig = page.front_figure(points, _summary())  # the attacker at chance is left out of the front
    assert len(fig.axes) == 1 and [t.get_text() for t in fig.axes[0].texts] == ["knee"]
    assert fig.axes[0].get_xlabel().startswith("face attacker")
    plt.close(fig)
    points.loc[points.technique == "none", "face_rank1"] = 20.0  # neither attacker above chance: no front at all
    shown = page.front_figure(points, _summary())
    assert isinstance(shown, str) and "no attacker is clearly above chance (12.5%)" in shown.lower()


def test_a_control_figure_with_nothing_to_compare_is_one_sentence():
    flat = _ctrl(high_gain=10.0).assign(map=0.0)
    shown = page.control_figure(flat)
    assert isinstance(shown, str) and "0.0% in every control world" in shown
    assert shown._repr_markdown_().startswith("*The head attacker")
    plt.close(shown)  # what the notebook does with a figure: harmless here


def _face_ctrl(low_gain: float, high_gain: float, n: int = 60, noise: float = 2.0, hit: float = 0.8,
               chance: float = 4.0) -> pd.DataFrame:
    """Per-probe face attacker rows: each probe's AP on the originals, and on the anonymized copy `gain` lower
    (plus noise drawn per probe, seeded)."""
    import numpy as np

    rng = np.random.default_rng(0)
    rows = []
    for share, gain in ((0.0, low_gain), (1.0, high_gain)):
        for probe in range(n):
            ap = float(rng.uniform(40, 90))
            rows.append({"face_identity_share": share, "variant": "original", "probe": probe, "image": f"{probe}.jpg",
                         "ap": ap, "hit": hit, "chance_rank1": chance})
            rows.append({"face_identity_share": share, "variant": "anonymized", "probe": probe,
                         "image": f"{probe}.jpg", "ap": ap - gain + float(rng.normal(0, noise)), "hit": hit / 2,
                         "chance_rank1": chance})
    return pd.DataFrame(rows)


def test_the_face_attackers_controls_are_judged_by_intervals_over_probes():
    v = privacy.face_control_verdict(_face_ctrl(0.0, 20.0))
    assert v["found"] and not v["found_low"] and v["readable"]
    assert v["high_gain"] == pytest.approx(20.0, abs=1.0) and v["high_gain_low"] > v["low_gain_high"]
    assert v["low_gain_low"] <= 0 <= v["low_gain_high"]
    assert not privacy.face_control_verdict(_face_ctrl(0.0, 0.3))["found"]  # no loss where the face identifies
    leaky = privacy.face_control_verdict(_face_ctrl(15.0, 20.0))  # a loss where the face carries no identity
    assert leaky["found_low"] and not leaky["found"]
    assert not privacy.face_control_verdict(_face_ctrl(0.0, 20.0, hit=0.05))["readable"]  # Rank-1 5% < 2 x 4%


def test_the_face_attacker_gets_its_own_row_in_the_controls_table_and_sentence_in_the_chapter():
    from tests.test_pages_findings import _drops  # the drop rows the table starts from

    rows = controls.instruments(_drops(False, True), face=_face_ctrl(0.0, 20.0))
    face = rows[rows.measure.str.startswith("face attacker")].iloc[0]
    assert face.verdict == controls.PASSES and "face attacker (AP taken by anonymization)" in controls.passing(rows)
    failed = controls.instruments(_drops(False, True), face=_face_ctrl(15.0, 20.0))
    assert failed[failed.measure.str.startswith("face attacker")].verdict.iloc[0] == controls.FAILS
    idle = controls.instruments(_drops(False, True), face=_face_ctrl(0.0, 20.0, hit=0.05))
    assert idle[idle.measure.str.startswith("face attacker")].verdict.iloc[0] == controls.CANNOT
    assert "pass" in page.face_control_text(_face_ctrl(0.0, 20.0), _summary())
    assert "fail" in page.face_control_text(_face_ctrl(15.0, 20.0), _summary())
    assert "not run" in page.face_control_text(_face_ctrl(0.0, 20.0), _summary(face=False))


def test_a_face_controls_table_without_its_probes_is_refused_naming_the_folder(tmp_path):
    path = tmp_path / "privacy" / "face_controls.csv"
    path.parent.mkdir()
    _face_ctrl(0.0, 20.0).drop(columns="hit").to_csv(path, index=False)
    with pytest.raises(ValueError, match="hit.*privacy"):
        privacy.read_face_controls(path)
