"""The training chapter's figures and sentences (reidlib.pages.training) from synthetic training logs."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from reidlib.pages import training as page


def _logs(bot: bool) -> pd.DataFrame:
    rows = []
    for model in ("hacnn", "bot") if bot else ("hacnn",):
        for seed in (0, 1):
            for epoch in (1, 2, 3):
                row = {"model": model, "variant": "orig", "seed": seed, "epoch": epoch, "loss": 3.0 / epoch,
                       "accuracy": 0.2 * epoch, "seconds": 2.0 if model == "bot" else 1.0, "images_per_s": 100.0,
                       "ce": np.nan, "triplet": np.nan, "center": np.nan}
                if model == "bot":
                    row.update(ce=2.0 / epoch, triplet=1.0, center=4.0 / epoch ** 2)
                rows.append(row)
    return pd.DataFrame(rows)


def test_loss_terms_only_where_a_run_fills_them():
    assert page.loss_terms(_logs(bot=False)) == []
    assert page.loss_terms(_logs(bot=True)) == ["ce", "triplet", "center"]


def test_term_fall_orders_terms_by_how_much_they_fell():
    text = page.term_fall_text(_logs(bot=True))
    assert text.split(";")[0].startswith("center +89%")
    assert "triplet +0%" in text
    assert page.term_fall_text(_logs(bot=False)) == page.NO_TERMS


def test_speed_texts_scale_an_epoch_to_market1501():
    got = page.speed_texts(_logs(bot=True), market_train=12000)
    assert "BoT 2.0 s (100.0 images/s)" in got["ex_epoch_seconds"]  # display names, not registry ids
    assert "HACNN 2 min" in got["ex_market_minutes"]


def test_figures_draw_a_panel_per_model_and_say_when_there_are_no_terms():
    fig = page.curves_figure(_logs(bot=True))
    assert len(fig.axes) == 4
    plt.close(fig)
    shown = page.loss_terms_figure(_logs(bot=False))
    assert isinstance(shown, str) and page.NO_TERMS[1:] in shown  # a sentence, not a placeholder image


def test_recipes_table_reads_as_words_and_keeps_small_rates():
    t = page.recipes_table({"hacnn": {"model": "hacnn", "lr": 0.00035, "amp": True, "seeds": [0, 1],
                                      "device": "cpu", "num_workers": 0}})
    assert list(t.columns) == ["HACNN"] and "device" not in t.index
    assert t.loc["model", "HACNN"] == "HACNN" and t.loc["lr", "HACNN"] == "0.00035"
    assert t.loc["amp", "HACNN"] == "yes" and t.loc["seeds", "HACNN"] == "[0, 1]"
