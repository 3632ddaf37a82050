"""Figures as the book shows them: text at least 9 CSS pixels in the content column, many-panel figures at
least half the column wide (reidlib.book.plots.legible), applied to every figure a chapter shows or glues."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import pytest

from reidlib.book import chapter, plots


def _wide_small_text():
    fig, axes = plt.subplots(1, 2, figsize=(12, 3))
    axes[0].set_title("a small title", fontsize=6)
    axes[1].set_xlabel("share of identities told apart only by the face", fontsize=7)
    axes[1].plot([0, 1], [0, 1])
    return fig


def test_small_text_in_a_wide_figure_is_found_and_made_readable():
    fig = _wide_small_text()
    assert plots.smallest_text_px(fig) < 6  # 6 pt in a 12-inch figure shrunk to the column
    plots.legible(fig)
    assert plots.smallest_text_px(fig) == pytest.approx(plots.MIN_TEXT_PX)
    plt.close(fig)


def test_a_figure_shown_at_its_own_size_keeps_readable_text():
    fig, ax = plt.subplots(figsize=(4, 3))
    ax.set_title("t", fontsize=11)
    before = [t.get_fontsize() for t in plots._texts(fig)]
    plots.legible(fig)
    assert [t.get_fontsize() for t in plots._texts(fig)] == before  # nothing below 9 px: nothing changed
    plt.close(fig)


def test_many_small_panels_are_drawn_at_least_half_the_column_wide():
    fig, _ = plt.subplots(1, 6, figsize=(2.5, 1))
    assert fig.get_size_inches()[0] * fig.dpi < plots.COLUMN_PX / 2
    plots.legible(fig)
    assert fig.get_size_inches()[0] * fig.dpi >= plots.COLUMN_PX / 2 - 1
    plt.close(fig)


def test_every_figure_a_chapter_shows_goes_through_legible():
    from IPython.core.interactiveshell import InteractiveShell

    shell = InteractiveShell.instance()
    assert chapter.show_legibly(shell)
    fig = _wide_small_text()
    data, _ = shell.display_formatter.format(fig)
    assert "image/png" in data and plots.smallest_text_px(fig) >= plots.MIN_TEXT_PX - 1e-9
    plt.close(fig)
