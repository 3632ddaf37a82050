"""Figures for the book's chapters (matplotlib/seaborn), taking plain tables and image paths."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Sequence

import cv2
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns

from ..core.images import read_image

COLUMN_PX = 688  # the book's content column, CSS pixels (sphinx-book-theme, measured in the built book)
MIN_TEXT_PX = 9.0  # no figure text smaller than this as the page shows it, at 100% zoom


def rendered_px_per_pt(fig, column_px: float = COLUMN_PX) -> float:
    """CSS pixels per point of text as the book shows `fig`: at its own size, or shrunk to the column."""
    width_px = fig.get_size_inches()[0] * fig.dpi
    return fig.dpi / 72 * min(1.0, column_px / width_px)


def _texts(fig) -> list:
    from matplotlib.text import Text

    return [t for t in fig.findobj(Text) if t.get_visible() and t.get_text().strip()]


def smallest_text_px(fig, column_px: float = COLUMN_PX) -> float:
    """The smallest text of `fig` in CSS pixels as the book shows it (inf when it has none), as drawn."""
    fig.canvas.draw()
    texts = _texts(fig)
    return min((t.get_fontsize() for t in texts), default=float("inf")) * rendered_px_per_pt(fig, column_px)


def legible(fig, column_px: float = COLUMN_PX, min_px: float = MIN_TEXT_PX):
    """`fig` made readable in the book's column: a figure of more than four panels at least half the column
    wide, and every text at least `min_px` as shown (the layout redone when anything grew)."""
    panels = [ax for ax in fig.axes if ax.get_visible()]
    width_px = fig.get_size_inches()[0] * fig.dpi
    changed = False
    if len(panels) > 4 and width_px < column_px / 2:
        w, h = fig.get_size_inches()
        fig.set_size_inches(w * column_px / 2 / width_px, h * column_px / 2 / width_px)
        changed = True
    scale = rendered_px_per_pt(fig, column_px)
    for ax in panels:  # tick labels are made again at each draw from the axis's own size: set that
        for axis in (ax.xaxis, ax.yaxis):
            for which, ticks in (("major", axis.get_major_ticks()), ("minor", axis.get_minor_ticks())):
                if ticks and ticks[0].label1.get_fontsize() * scale < min_px:
                    axis.set_tick_params(which=which, labelsize=min_px / scale)
                    changed = True
    for t in _texts(fig):
        if t.get_fontsize() * scale < min_px:
            t.set_fontsize(min_px / scale)
            changed = True
    engine = fig.get_layout_engine()
    if changed and (engine is None or type(engine).__name__ == "TightLayoutEngine"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig.tight_layout()
    return fig


def _rgb(path: Path) -> np.ndarray:
    return cv2.cvtColor(read_image(path), cv2.COLOR_BGR2RGB)


def crop_gallery(root: str | Path, images: Sequence[str], dets: pd.DataFrame | None = None,
                 truth: pd.DataFrame | None = None, titles: Sequence[str] | None = None,
                 ncols: int = 12, scale: float = 1.0):
    """Crops in a grid, detections in red (with score), default boxes dashed orange, ground truth in green."""
    images = list(images)
    nrows = max(1, int(np.ceil(len(images) / ncols)))
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 0.9 * scale, nrows * 1.9 * scale), squeeze=False)
    for ax in axes.ravel():
        ax.axis("off")
    for i, image in enumerate(images):
        ax = axes.ravel()[i]
        ax.imshow(_rgb(Path(root) / image), interpolation="nearest")
        for table, color in ((truth, "lime"), (dets, "red")):
            if table is None:
                continue
            for r in table[table.image == image].itertuples():
                fallback = getattr(r, "source", "") == "default_box"
                ax.add_patch(plt.Rectangle((r.x0 - 0.5, r.y0 - 0.5), r.x1 - r.x0, r.y1 - r.y0, fill=False,
                                           edgecolor="orange" if fallback else color, linewidth=1,
                                           linestyle="--" if fallback else "-"))
                if color == "red" and hasattr(r, "score") and not fallback:
                    ax.text(r.x0, r.y0 - 1, f"{r.score:.2f}", color="red", fontsize=6)
        if titles is not None:
            ax.set_title(titles[i], fontsize=7)
    fig.tight_layout()
    return fig


def image_rows(rows: dict[str, Sequence[np.ndarray]], col_titles: Sequence[str] | None = None, size: float = 1.1):
    """Rows of RGB images, each row labelled on its left (the layout of the paper's Figs. 1 and 2)."""
    names = list(rows)
    ncols = max(len(v) for v in rows.values())
    fig, axes = plt.subplots(len(names), ncols, figsize=(ncols * size, len(names) * 2 * size), squeeze=False)
    for i, name in enumerate(names):
        for j in range(ncols):
            ax = axes[i, j]
            ax.set_xticks([])
            ax.set_yticks([])
            for s in ax.spines.values():
                s.set_visible(False)
            if j < len(rows[name]):
                ax.imshow(rows[name][j], interpolation="nearest")
            if j == 0:
                ax.set_ylabel(name, fontsize=9)
            if i == 0 and col_titles is not None and j < len(col_titles):
                ax.set_title(col_titles[j], fontsize=9)
    fig.tight_layout()
    return fig


class Sentence(str):
    """What a page shows in a figure's place when there is nothing to plot: one sentence saying why (shown as
    Markdown; `plt.close` on it does nothing)."""

    def _repr_markdown_(self) -> str:
        return f"*{self}*"


def note_figure(text: str) -> Sentence:
    """One sentence instead of a figure, where a chapter's data has nothing to plot: never a placeholder image."""
    text = text.strip()
    return Sentence(text[:1].upper() + text[1:] + ("" if text.endswith(".") else "."))


def recall_by_size(by_size: pd.DataFrame, by_condition: pd.DataFrame | None = None):
    """Recall against face width with Wilson 95% intervals; beside it, where given, recall by how
    the face is seen (frontal or profile, uncovered or partly covered, sharp or blurred)."""
    panels = 2 if by_condition is not None and not by_condition.empty else 1
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 3.2), squeeze=False)
    ax = axes[0, 0]
    x = np.arange(len(by_size))
    err = np.vstack([by_size.recall - by_size.wilson_low, by_size.wilson_high - by_size.recall])
    ax.errorbar(x, by_size.recall, yerr=err, fmt="o-", capsize=4)
    ax.set_xticks(x, [f"{w}\n(n={n})" for w, n in zip(by_size.face_width, by_size.faces)])
    ax.set_xlabel("face width (pixels)")
    ax.set_ylabel("recall")
    ax.set_ylim(0, 1.05)
    ax.grid(alpha=0.3)
    if panels == 2:
        ax = axes[0, 1]
        y = np.arange(len(by_condition))[::-1]
        err = np.vstack([by_condition.recall - by_condition.wilson_low, by_condition.wilson_high - by_condition.recall])
        ax.errorbar(by_condition.recall, y, xerr=err, fmt="o", capsize=4)
        ax.set_yticks(y, [f"{c} (n={n})" for c, n in zip(by_condition.condition, by_condition.faces)], fontsize=8)
        ax.set_xlabel("recall")
        ax.set_xlim(0, 1.05)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


PROTOCOLS = ["orig_orig", "orig_anon", "anon_anon"]
PROTOCOL_TICKS = ["original\n→ original", "original\n→ anonymized", "anonymized\n→ anonymized"]  # trained → tested


def _protocol_ticks(g) -> None:
    """The protocols in words on every panel's x axis (trained on → tested on)."""
    for ax in g.axes.ravel():
        ax.set_xticks(range(len(PROTOCOLS)), PROTOCOL_TICKS, fontsize=7, rotation=0)


def protocol_bars(results: pd.DataFrame, chance: float | None = None):
    """mAP and Rank-1 per protocol (and model), the shape of the paper's Tables III-VII; with replicated
    runs (a `seed` column) the bar is the mean over seeds and the whisker one standard deviation."""
    long = results.melt(id_vars=["model", "protocol"], value_vars=["mAP", "rank1"], var_name="metric",
                        value_name="score")
    g = sns.catplot(data=long, x="protocol", y="score", hue="model", col="metric", kind="bar", errorbar="sd",
                    capsize=0.1, height=3, aspect=1.1, order=PROTOCOLS)
    if chance is not None:
        for ax in g.axes.ravel():
            ax.axhline(chance, color="grey", linestyle="--", linewidth=1, label="random ranking (mAP)")
    g.set_axis_labels("trained on → tested on", "percent")
    _protocol_ticks(g)
    return g.figure


def paired_differences(results: pd.DataFrame, metric: str = "mAP"):
    """Per (dataset, model): drop from orig_orig to orig_anon and to anon_anon."""
    wide = results.pivot_table(index=["dataset", "model"], columns="protocol", values=metric).reset_index()
    wide["tested on anonymized"] = wide.orig_orig - wide.orig_anon
    wide["retrained on anonymized"] = wide.orig_orig - wide.anon_anon
    long = wide.melt(id_vars=["dataset", "model"], value_vars=["tested on anonymized", "retrained on anonymized"],
                     var_name="comparison", value_name="drop")
    fig, ax = plt.subplots(figsize=(7, 3.2))
    sns.stripplot(data=long, x="drop", y="comparison", hue="dataset", ax=ax, size=6, jitter=0.15)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_xlabel(f"{metric} before minus after (points)")
    ax.set_ylabel("")
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    return fig


def drop_intervals(tests: pd.DataFrame, group: str = "dataset"):
    """Mean drop (before minus after) with its bootstrap 95% interval, per group and comparison."""
    t = tests.assign(comparison=tests["after"].map({"orig_anon": "tested on anonymized",
                                                   "anon_anon": "retrained on anonymized"}))
    g = sns.FacetGrid(t, col="metric", height=3.2, aspect=1.2, sharex=False)

    def draw(data, **kw):
        ax = plt.gca()
        labels = list(dict.fromkeys(data[group]))
        for k, (comp, d) in enumerate(data.groupby("comparison", sort=False)):
            d = d.set_index(group).reindex(labels)
            y = np.arange(len(labels)) + (k - 0.5) * 0.3
            ax.errorbar(d.mean_difference, y, xerr=[d.mean_difference - d.ci_low, d.ci_high - d.mean_difference],
                        fmt="o", capsize=3, label=comp)
        ax.set_yticks(np.arange(len(labels)), labels)
        ax.axvline(0, color="black", linewidth=0.8)

    g.map_dataframe(draw)
    g.set_axis_labels("", "")
    g.figure.supxlabel("drop in points, with its 95% bootstrap interval", fontsize=10)  # one label: two collide
    g.add_legend()
    return g.figure


def slopes(results: pd.DataFrame, metric: str = "mAP", col_wrap: int = 3):
    """Paired slope plot: each model's `metric` across orig_orig -> orig_anon -> anon_anon, one panel per dataset
    (replicated runs: the mean over seeds, whiskers one standard deviation)."""
    g = sns.catplot(data=results, x="protocol", y=metric, hue="model", col="dataset", kind="point", errorbar="sd",
                    order=PROTOCOLS, col_wrap=min(col_wrap, results.dataset.nunique()),
                    height=2.8, aspect=1.35, sharey=False, markersize=4, linewidth=1.2)
    g.set_titles("{col_name}")
    g.set_axis_labels("trained on → tested on", f"{metric} (%)")
    _protocol_ticks(g)
    return g.figure
