"""What the training chapter shows (paper Section IV-A): each run's curves, BoT's loss terms, and how long
an epoch takes here and would take on Market-1501."""
from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.ticker import MaxNLocator

from ..book import plots, tables
from ..models.zoo import display_name

LOSS_TERMS = ("ce", "triplet", "center")  # BoT's loss, term by term (train_log.csv columns)
NO_TERMS = "no model of this run trains with triplet or center loss"


def loss_terms(logs: pd.DataFrame) -> list[str]:
    """The loss-term columns some run of the log fills (empty when no model trains with BoT's recipe)."""
    return [c for c in LOSS_TERMS if c in logs and logs[c].notna().any()]


def curves_figure(logs: pd.DataFrame):
    """Loss and training accuracy per epoch, a row per model, a line per variant (band: SD over seeds)."""
    long = logs.melt(id_vars=["model", "variant", "epoch"], value_vars=["loss", "accuracy"], var_name="measure")
    g = sns.relplot(data=long, x="epoch", y="value", hue="variant", row="model", col="measure", kind="line",
                    marker="o", errorbar="sd", height=2.4, aspect=1.6, facet_kws={"sharey": False})
    g.set_titles("{row_name}: {col_name}")
    for ax in g.axes.flat:  # whole epochs only
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return g.figure


def loss_terms_figure(logs: pd.DataFrame) -> plt.Figure:
    """BoT's loss terms per epoch (cross-entropy, triplet, center), or a figure saying no run has them."""
    terms = loss_terms(logs)
    if not terms:
        return plots.note_figure(NO_TERMS)
    long = logs.dropna(subset=terms).melt(id_vars=["model", "variant", "epoch"], value_vars=terms, var_name="term")
    g = sns.relplot(data=long, x="epoch", y="value", hue="term", col="variant", row="model", kind="line",
                    marker="o", errorbar="sd", height=2.4, aspect=1.6)
    g.set_titles("{row_name} loss terms, {col_name}")
    return g.figure


def speed_texts(logs: pd.DataFrame, market_train: int) -> dict[str, str]:
    """Seconds and images/s per epoch for each model, and the minutes one Market-1501 epoch would take."""
    per_model = logs.groupby("model")[["seconds", "images_per_s"]].mean()
    return {"ex_epoch_seconds": "; ".join(f"{display_name(m)} {r.seconds:.1f} s ({r.images_per_s:.1f} images/s)"
                                          for m, r in per_model.iterrows()),
            "ex_market_minutes": "; ".join(f"{display_name(m)} {market_train / r.images_per_s / 60:.0f} min"
                                           for m, r in per_model.iterrows())}


def term_fall_text(logs: pd.DataFrame) -> str:
    """How much each loss term fell from the first epoch to the last, relative to where it started."""
    terms = loss_terms(logs)
    if not terms:
        return NO_TERMS
    by_epoch = logs.dropna(subset=terms).groupby("epoch")[terms].mean()
    fall = 1 - by_epoch.iloc[-1] / by_epoch.iloc[0]
    return "; ".join(f"{t} {100 * v:+.0f}%" for t, v in fall.sort_values(ascending=False).items())


SPEED_KEYS = ("device", "num_workers")  # where and how fast a run trains, not what it learns


def recipes_table(recipes: dict[str, dict]) -> pd.DataFrame:
    """Each model's recipe (config key per row, model per column by display name), every value as a reader
    reads it: yes/no, the model's display name, lists as written."""
    table = pd.DataFrame({tables.name_of("model", m): {k: v for k, v in r.items() if k not in SPEED_KEYS}
                          for m, r in recipes.items()})
    def text(key: str, v) -> str:
        if isinstance(v, float) and not isinstance(v, bool):
            return f"{v:g}"  # a learning rate keeps its digits (3.5e-04, not 0.00)
        return tables.cell(key, str(v) if isinstance(v, (list, tuple, dict)) else v)

    return table.apply(lambda col: [text(key, v) for key, v in zip(table.index, col)])
