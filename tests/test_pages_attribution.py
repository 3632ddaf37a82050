"""Chapter 8's verdicts (reidlib.analyses.attribution) and what its page shows (reidlib.pages.attribution),
on small synthetic summaries."""
from __future__ import annotations

import matplotlib
import numpy as np
import pandas as pd
import pytest

from reidlib.analyses import attribution
from reidlib.pages import attribution as page

matplotlib.use("Agg")


def _share(rows) -> pd.DataFrame:
    """face_share_summary rows from (run, seed, model, trained_on, method, kind, ratio, low, high)."""
    cols = ["run", "control_seed", "model", "trained_on", "method", "kind", "ratio", "ratio_low", "ratio_high"]
    return pd.DataFrame(rows, columns=cols).assign(queries=4)


MAIN = _share([
    ("default", 0, "HACNN", "orig", "grad-cam", "true match", 1.2, 1.0, 1.4),
    ("default", 0, "HACNN", "orig", "grad-cam", "hardest false match", 0.9, 0.8, 1.0),
    ("default", 0, "HACNN", "anon", "grad-cam", "true match", 0.7, 0.5, 0.9),
    ("default", 0, "BoT", "orig", "decomposition", "true match", 1.5, 1.25, 1.75),
    ("default", 0, "BoT", "anon", "decomposition", "true match", 0.95, 0.9, 1.0),
])


def _controls(high_low: float) -> pd.DataFrame:
    """Two controls and two seeds for BoT (share 1's lowest bound `high_low`), one model trained on anonymized
    images and one hardest false match that must not count."""
    return pd.concat([MAIN, _share([
        ("share 0", 0, "BoT", "orig", "decomposition", "true match", 1.0, 0.9, 1.1),
        ("share 0", 1, "BoT", "orig", "decomposition", "true match", 1.05, 0.95, 1.2),
        ("share 0", 0, "BoT", "orig", "decomposition", "hardest false match", 3.0, 2.9, 3.1),
        ("share 1", 0, "BoT", "orig", "decomposition", "true match", 2.0, high_low, 2.5),
        ("share 1", 1, "BoT", "orig", "decomposition", "true match", 2.1, 1.8, 2.4),
        ("share 1", 0, "BoT", "anon", "decomposition", "true match", 0.1, 0.0, 0.2),
    ])], ignore_index=True)


def _inter() -> pd.DataFrame:
    rows = []
    for model, base in (("HACNN", 30.0), ("BoT", 50.0)):
        for k, technique in enumerate(("blur", "swap")):
            for placement in attribution.PLACEMENTS:
                for trained_on in ("orig", "anon"):
                    change = -(k + 1) * (2.0 if placement == "both" else 1.0) * (1 if trained_on == "orig" else 10)
                    rows.append({"run": "default", "control_seed": 0, "model": model, "trained_on": trained_on,
                                 "technique": technique, "placement": placement, "mAP": base,
                                 "mAP_after": base + change, "sim_change": change / 100, "ap_change": change,
                                 "queries": 4})
    return pd.DataFrame(rows)


# ---------------------------------------------------------------- verdicts

def test_controls_separate_only_when_every_interval_of_the_first_lies_below_the_last():
    apart = attribution.control_separation(_controls(1.5))
    assert apart.to_dict("records") == [{"model": "BoT", "method": "decomposition", "low": "share 0", "high": "share 1",
                                         "separated": True, "reversed": False}]
    # each method is judged alone: a second method's intervals, far apart, do not make the first separate
    other = _controls(1.15).assign(method=attribution.GRADIENT_INPUT,
                                   ratio_low=lambda d: d.ratio_low + 10 * (d.run == "share 1"))
    both = attribution.control_separation(pd.concat([_controls(1.15), other], ignore_index=True)).set_index("method")
    assert not both.loc["decomposition"].separated and both.loc[attribution.GRADIENT_INPUT].separated
    # one seed of share 1 reaches below the highest bound of share 0 (1.2): overlap
    assert not attribution.control_separation(_controls(1.15)).separated.iloc[0]
    # the hardest false match (3.1) and the model trained on anonymized images (0.0 .. 0.2) play no part
    assert attribution.control_separation(_controls(1.21)).separated.iloc[0]


def test_a_ratio_higher_where_the_face_carries_nothing_is_said_to_point_the_wrong_way():
    from reidlib.analyses import controls
    d = _controls(1.5)
    d.loc[(d.run == "share 0") & (d.kind == "true match") & (d.trained_on == "orig"),
          ["ratio", "ratio_low", "ratio_high"]] += 1.5  # share 0 at 2.5 .. 2.7, above share 1's 2.0 .. 2.1
    v = attribution.control_separation(d).iloc[0]
    assert not v.separated and v.reversed
    assert page.REVERSED_WORDS in page.control_list(d)
    row = controls._ratio_rows(d)[0]
    assert row["verdict"] == "fails" and row["why"].endswith("it points the wrong way")
    assert not attribution.control_separation(_controls(1.15)).reversed.iloc[0]  # overlapping, the right way


def test_no_controls_give_no_rows():
    assert attribution.control_separation(MAIN).empty


def test_swap_and_removal_reads_the_both_sides_rows_of_models_trained_on_originals():
    inter = _inter()
    assert attribution.swap_and_removal(inter, "BoT", "blur") == {"swap": -4.0, "removal": -2.0}
    assert attribution.swap_and_removal(inter[inter.technique != "swap"], "BoT", "blur") == {}
    assert attribution.swap_and_removal(inter, "BoT", "pixelate") == {}


# ---------------------------------------------------------------- the page

def test_names_and_methods_keep_the_order_of_appearance():
    assert page.names(MAIN.model) == "HACNN, BoT"
    assert page.method_list(MAIN) == "HACNN: grad-cam; BoT: decomposition"


def test_share_list_is_a_markdown_list_with_words_for_the_training():
    text = page.share_list(MAIN)
    lines = text.split("\n")
    assert len(lines) == len(MAIN) and all(line.startswith("- ") for line in lines)
    assert lines[0] == "- HACNN (trained on original images, true matches): 1.20 [1.00, 1.40]"
    assert lines[1] == "- HACNN (trained on original images, hardest false matches): 0.90 [0.80, 1.00]"
    assert lines[2] == "- HACNN (trained on anonymized images, true matches): 0.70 [0.50, 0.90]"


def test_control_list_gives_each_seed_and_the_verdict_in_words():
    apart = page.control_list(_controls(1.5))
    assert apart == ("- BoT: share 0: 1.00 [0.90, 1.10], 1.05 [0.95, 1.20]; share 1: 2.00 [1.50, 2.50], "
                     "2.10 [1.80, 2.40]. " + page.SEPARATION_WORDS[True])
    assert apart.endswith("do not overlap.")
    assert page.control_list(_controls(1.15)).endswith(page.SEPARATION_WORDS[False])
    assert page.control_list(MAIN) == ""


def test_control_labels_name_run_and_seed():
    ctrl = page.controls(_controls(1.5))
    assert list(dict.fromkeys(ctrl.control)) == ["share 0\nseed 0", "share 0\nseed 1", "share 1\nseed 0",
                                                 "share 1\nseed 1"]
    assert set(ctrl.trained_on) == {"orig"}


def test_swap_text_says_nothing_without_both_techniques():
    assert page.swap_text({}, "BoT", "blur") == ""
    assert page.swap_text({"swap": -4.04, "removal": 0.5}, "BoT", "blur") == (
        "For BoT, the face swap changes AP by -4.0 points and anonymizing the face by blur by +0.5 points (mean over "
        "queries, faces changed in query and gallery; a plus sign: AP rose).")


def test_summary_list_has_three_items_with_signed_changes():
    text = page.summary_list(MAIN, _inter(), ["HACNN", "BoT"])
    lines = text.split("\n")
    assert [line[:2] for line in lines] == ["- "] * 3
    assert lines[0] == ("- Face share ratio, true matches, trained on original images: HACNN 1.20 [1.00, 1.40] "
                        "(grad-cam); BoT 1.50 [1.25, 1.75] (decomposition)")
    assert lines[1] == "- Trained on anonymized images: HACNN 0.70 [0.50, 0.90]; BoT 0.95 [0.90, 1.00]"
    assert lines[2] == ("- AP change with faces anonymized in query and gallery: HACNN blur -2.0, swap -4.0; "
                        "BoT blur -2.0, swap -4.0")


def test_techniques_table_sets_the_run_beside_table_viii():
    paper = pd.DataFrame({"technique": ["blur", "blur", "zero"], "protocol": ["orig_anon", "anon_anon", "orig_anon"],
                          "mAP": [93.7, 94.0, 93.4]})
    data = page.techniques_table(_inter(), paper).data
    assert data.index.name == page.TABLE_INDEX
    assert list(data.index) == ["blur", "face swap"]
    assert list(data.columns) == ["this run, HACNN", "this run, BoT", page.PAPER_COLUMN]
    assert data.loc["blur"].tolist() == ["28.0", "48.0", "93.7"]
    assert data.loc["face swap", page.PAPER_COLUMN] == "–"


def test_figures_have_one_panel_per_model():
    import matplotlib.pyplot as plt

    fig = page.share_figure(MAIN)
    assert [ax.get_title() for ax in fig.axes] == ["HACNN (grad-cam)", "BoT (decomposition)"]
    plt.close(fig)
    fig = page.controls_figure(_controls(1.5))
    assert [ax.get_title() for ax in fig.axes] == ["BoT (decomposition)\ntrained on original images"]
    assert fig.axes[0].get_xticklabels()[0].get_text() == "share 0\nseed 0"
    plt.close(fig)
    fig = page.interventions_figure(_inter(), ["HACNN", "BoT"])
    titles = [ax.get_title() for ax in fig.axes]
    assert titles == ["HACNN: AP change (points)", "BoT: AP change (points)", "HACNN: similarity change",
                      "BoT: similarity change"]
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["query only", "gallery only",
                                                                    "query and gallery"]
    plt.close(fig)
    shown = [("original", np.zeros((8, 4, 3), np.uint8)), ("blur", np.ones((8, 4, 3), np.uint8))]
    fig = page.techniques_figure(shown)
    assert [ax.get_title() for ax in fig.axes] == ["original", "blur"]
    plt.close(fig)


@pytest.mark.parametrize("top", [2, 3])
def test_ranked_figure_frames_matches_green_and_others_red(top):
    import matplotlib.pyplot as plt

    rows, arrays = [], {}
    for case in ("best", "worst"):
        key = f"BoT/{case}/orig"
        arrays[f"{key}/query"] = np.zeros((8, 4, 3), np.uint8)
        for r in range(top):
            arrays[f"{key}/{r}/image"] = np.zeros((8, 4, 3), np.uint8)
            arrays[f"{key}/{r}/saliency"] = np.ones((4, 2), np.float32)
            rows.append({"model": "BoT", "case": case, "view": "orig", "ap": 0.5, "rank": r + 1,
                         "correct": r == 0, "similarity": 0.9 - r / 10, "key": key})
    fig = page.ranked_figure(pd.DataFrame(rows), arrays, MAIN)
    assert fig.subfigs[0]._suptitle.get_text() == "BoT (decomposition saliency)"
    axes = fig.subfigs[0].axes
    assert len(axes) == 2 * (top + 1)
    assert axes[0].get_title() == "best, orig, AP 50"
    assert matplotlib.colors.to_hex(axes[1].spines["top"].get_edgecolor()) == matplotlib.colors.to_hex("tab:green")
    assert matplotlib.colors.to_hex(axes[2].spines["top"].get_edgecolor()) == matplotlib.colors.to_hex("tab:red")
    plt.close(fig)


def test_heatmap_cells_never_read_zero_for_a_change():
    got = page.annotations(np.array([[0.0, 0.00031, -0.0042], [12.5, float("nan"), -1.0]]))
    assert got.tolist() == [["0", "+0.00031", "-0.0042"], ["+12.5", "–", "-1.0"]]


def test_the_query_count_is_the_rows_own():
    from reidlib.pages import attribution as attribution_page
    assert attribution_page.query_counts(pd.DataFrame({"queries": [36, 23, 39]})) == "23 to 39"
    assert attribution_page.query_counts(pd.DataFrame({"queries": [20, 20]})) == "20"


def test_the_intervention_control_sentence_gives_both_controls_and_the_computed_verdict():
    means = pd.DataFrame({"face_identity_share": [0.0] * 3 + [1.0] * 3, "control_seed": [0, 1, 2] * 2,
                          "model": "BoT", "technique": "swap", "ap_lost": [0.2, -0.3, 0.1, 6.0, 8.0, 7.0],
                          "queries": 20})
    text = page.intervention_control_text(means)
    assert "BoT, swap: 0.00 ± 0.26 AP points lost at share 0 and 7.00 ± 1.00 at share 1 (mean ± SD over 3 seeds), passes" in text
    assert text.startswith("- BoT, swap: ") and text.count("\n- ") == 0  # one item per model and technique
    flat = means.assign(ap_lost=[0.2, -0.3, 0.1, 0.1, -0.2, 0.3])
    assert ", fails: no drop beyond seed noise at the negative control, no drop at the positive" in \
        page.intervention_control_text(flat)
    assert "not run on the controls" in page.intervention_control_text(means[means.face_identity_share == 1.0])
    assert page.alpha_text(0.05) == "alpha 0.05"


def _removal() -> pd.DataFrame:
    rows = []
    for v, oo in (("face_only", 41.0), ("face_blind", 48.0)):
        for seed, shift in ((0, 0.0), (1, 2.0)):
            for boxes, technique, after in (("detected", "blur", 25.0), ("detected", "zero", 17.0),
                                            ("truth", "blur", 19.0), ("truth", "zero", 9.0)):
                a = after + shift if v == "face_only" else oo - 1.0
                rows.append({"visible": v, "model": "BoT", "seed": seed, "boxes": boxes, "technique": technique,
                             "orig_orig": oo, "after": a, "drop": oo - a, "floor": 8.0})
    return pd.DataFrame(rows)


def test_the_removal_table_has_a_column_per_technique_and_boxes_averaged_over_seeds():
    shown = page.removal_table(_removal()).data
    assert list(shown.columns) == ["the model sees", "model", "originals", "blur, detected boxes", "zero, detected boxes",
                                   "blur, true boxes", "zero, true boxes", "random floor"]
    assert shown.iloc[0].tolist() == ["face only", "BoT", "41.0", "26.0", "18.0", "20.0", "10.0", "8.0"]


def test_the_removal_text_says_whether_the_face_removed_leaves_the_floor():
    text = page.removal_text(_removal(), "blur")
    assert "26.0 (3.2x the floor) under the protocol's copy (blur, detected boxes)" in text
    assert "10.0 (1.2x the floor of 8.0)" in text and "nothing is left" in text
    assert "The face-blind model loses 1.00 points" in text
    assert "zero on the detected boxes gives 18.0" in text and "blur on the true boxes gives 20.0" in text
    assert "One change at a time" not in page.removal_text(_removal(), "zero")  # the run's technique is the removal
    high = _removal().assign(after=lambda d: d.after.where(d.visible != "face_only", 20.0))
    assert "even removed completely" in page.removal_text(high, "blur")
    assert "learned too little of the faces to be read" in page.removal_text(_removal().assign(orig_orig=9.0), "blur")
    assert page.removal_text(_removal().iloc[:0], "blur").startswith("The model-level controls are off")


def test_the_model_control_share_text_gives_both_models_and_the_tables_verdict():
    rows = [{"run": attribution.MODEL_CONTROLS_RUN, "control_seed": 0, "model": "BoT", "trained_on": t,
             "method": attribution.GRADIENT_INPUT, "kind": "true match", "ratio": r, "ratio_low": r - 0.5,
             "ratio_high": r + 0.5, "queries": 9} for t, r in (("face only", 20.0), ("face blind", 0.1))]
    text = page.visible_share_text(pd.DataFrame(rows))
    assert text == ("- BoT: face only 20.00 [19.50, 20.50], face blind 0.10 [-0.40, 0.60]; passes: the face-only "
                    "model's interval lies above 2, the face-blind model's covers 1 or lies below it")
    rows[0].update(ratio=1.0, ratio_low=0.5)
    assert "fails: the face-only model's interval reaches below 2" in page.visible_share_text(pd.DataFrame(rows))
    assert page.visible_share_text(pd.DataFrame(rows[:1])).startswith("The model-level controls are off")


def test_the_face_only_models_map_ratio_is_said_from_its_rows():
    rows = [{"run": attribution.MODEL_CONTROLS_RUN, "control_seed": 0, "model": m, "trained_on": t,
             "method": method, "kind": "true match", "ratio": r, "ratio_low": r - 0.2, "ratio_high": r + 0.2,
             "queries": 9} for m, method, t, r in (("BoT", "decomposition", "face only", 1.86),
                                                   ("BoT", "decomposition", "face blind", 0.25),
                                                   ("HACNN", "grad-cam", "face only", 0.5))]
    text = page.face_only_map_text(pd.DataFrame(rows))
    assert "BoT (decomposition) 1.86 [1.66, 2.06]; HACNN (grad-cam) 0.50 [0.30, 0.70]" in text
    assert "none of them lies above 2, where the map of a model that uses nothing else should lie" in text
    assert "as it should" not in text  # a shortfall is never worded as approval
    rows[0].update(ratio=3.0, ratio_low=2.5)
    assert "1 of 2 does not lie above 2" in page.face_only_map_text(pd.DataFrame(rows))
    assert page.face_only_map_text(pd.DataFrame(rows[:0], columns=list(rows[0]))).startswith("The model-level controls")
