"""The teaching chapter's sweep table, drops and sentences (reidlib.pages.teaching) from a synthetic sweep."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import pandas as pd

from reidlib.pages import teaching as page


def _sweep(grows: bool, retrain: bool = False, seeds=(0, 1)) -> pd.DataFrame:
    rows = []
    for share in (0.0, 1.0):
        for seed in seeds:
            base = 50 + seed
            cost = (8 if grows else -0.5) * share + 0.5
            rows += [{"face_identity_share": share, "seed": seed, "protocol": "orig_orig", "mAP": base, "rank1": 60},
                     {"face_identity_share": share, "seed": seed, "protocol": "orig_anon", "mAP": base - cost - seed,
                      "rank1": 55}]
            if retrain:
                rows.append({"face_identity_share": share, "seed": seed, "protocol": "anon_anon", "mAP": base - 1,
                             "rank1": 58})
    return pd.DataFrame(rows)


def test_drops_per_share_and_seed_and_retrained_only_when_trained():
    d = page.drops(_sweep(grows=True))
    assert list(d.columns) == ["model", "face_identity_share", "seed", "tested on anonymized"]
    assert d.loc[(d.face_identity_share == 1.0) & (d.seed == 1), "tested on anonymized"].item() == 9.5
    assert "retrained on anonymized" in page.drops(_sweep(grows=True, retrain=True))


def test_sweep_text_says_whether_the_drop_grows_with_the_share():
    grows = page.sweep_text(page.drops(_sweep(grows=True)))
    flat = page.sweep_text(page.drops(_sweep(grows=False)))
    assert "by 9.0 points (SD 0.7 over seeds)" in grows and "as it should" in grows
    assert "does not grow" in flat
    assert "SD" not in page.sweep_text(page.drops(_sweep(grows=True, seeds=(0,))))
    one = page.sweep_text(page.drops(_sweep(grows=True, seeds=(0,))))
    assert "cannot tell that from seed noise" in one and "as it should" not in one


def test_a_drop_larger_on_average_but_within_seed_noise_does_not_grow():
    noisy = _sweep(grows=False, seeds=(0, 1, 2))  # share 1 drops 0, 1, 2 against share 0's 0.5, 1.5, 2.5 ...
    noisy.loc[(noisy.face_identity_share == 1.0) & (noisy.protocol == "orig_anon"), "mAP"] -= [0.5, 1.0, 0.5]  # ... now 0.5, 2, 2.5
    d = page.drops(noisy)
    hi, lo = (d[d.face_identity_share == s]["tested on anonymized"] for s in (1.0, 0.0))
    assert hi.mean() > lo.mean()
    text = page.sweep_text(d)
    assert "does not grow with the share beyond the seeds' noise (p = 0." in text and "as it should" not in text


def test_top_share_numbers_say_when_nothing_was_retrained():
    assert page.top_share_numbers(_sweep(grows=True))["top_aa"].startswith("not trained here")
    got = page.top_share_numbers(_sweep(grows=True, retrain=True))
    assert got["top_share"] == "1" and got["top_oo"] == "50.5 ± 0.7" and got["top_aa"] == "49.5 ± 0.7"


def test_sweep_figure_has_both_panels():
    fig = page.sweep_figure(_sweep(grows=True), page.drops(_sweep(grows=True)))
    assert len(fig.axes) == 2 and fig.axes[1].get_ylabel() == "mAP drop (points)"


def test_two_models_are_read_apart():
    two = pd.concat([_sweep(grows=True).assign(model="HACNN"), _sweep(grows=False).assign(model="BoT")])
    d = page.drops(two)
    assert set(d.model) == {"HACNN", "BoT"} and len(d) == 8  # 2 models x 2 shares x 2 seeds, never averaged
    text = page.sweep_text(d)
    assert "HACNN: at share 0" in text and "BoT: at share 0" in text
    assert "as it should" in text.split("BoT:")[0] and "does not grow" in text.split("BoT:")[1]
    assert page.top_share_numbers(two)["top_oo"] == "HACNN 50.5 ± 0.7, BoT 50.5 ± 0.7"
    table = page.sweep_table(two).data
    assert set(table["model"]) == {"HACNN", "BoT"} and len(table) == 8  # 2 models x 2 shares x 2 protocols, never pooled
    one_seed = page.sweep_table(two[two.seed == 0]).data
    assert (one_seed["mAP seed SD"] == "–").all() and "NaN" not in one_seed.to_string()


def test_sweep_numbers_name_the_runs_models_and_the_worlds_faces():
    from reidlib.core import config
    got = page.sweep_numbers(config.from_dict({"run_dir": "/tmp/sweep-numbers"}))
    assert got == {"sweep_recipes": "HACNN for 4 epochs and BoT (MobileNetV2) for 10 epochs", "sweep_ids": "48",
                   "sweep_faces": "22 to 30"}
    small = page.sweep_numbers(config.from_dict({"run_dir": "/tmp/sweep-numbers", "models": {},
                                                 "teaching": {"epochs": 2, "train_ids": 5, "face_size": [20, 20]}}))
    assert small == {"sweep_recipes": "HACNN for 2 epochs", "sweep_ids": "29", "sweep_faces": "20"}


def test_the_model_controls_say_whether_the_face_only_model_falls_to_the_floor():
    mc = pd.DataFrame([{"visible": v, "model": "BoT", "seed": 0, "orig_orig": oo, "orig_anon": oa, "drop": oo - oa,
                        "floor": 8.0, "accuracy": 80.0} for v, oo, oa in (("face_only", 40.0, 10.0),
                                                                         ("face_blind", 30.0, 30.0))])
    text = page.model_controls_text(mc)
    assert "1.2x the random floor of 8.0 (at the floor" in text and "loses 0.00 points" in text
    assert "above the floor" in page.model_controls_text(mc.assign(orig_anon=[20.0, 30.0]))
    idle = page.model_controls_text(mc.assign(orig_orig=[9.0, 30.0], orig_anon=[8.0, 30.0]))
    assert "it learned too little of the faces to be read: 1.1x the floor" in idle and "at the floor" not in idle
    shown = page.model_controls_table(mc).data
    assert shown["the model sees"].tolist() == ["face only", "face blind"]
    assert page.model_controls_text(mc.iloc[:0]).startswith("No model-level control")
    training = pd.DataFrame({"face_identity_share": [0.0, 1.0], "twin_ceiling": [100.0, 50.0], "accuracy": [90.0, 70.0]})
    blind = page.model_controls_text(mc.assign(accuracy=[80.0, 61.5]), training, 20.0)
    assert "it reaches 61.5%, +11.5 points from the twin ceiling of 50% with no face" in blind and "asks for +20" in blind
    assert "twin ceiling" not in text  # without the sweep's training accuracies nothing is said of it
