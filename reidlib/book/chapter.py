"""What every chapter notebook does first: load the run's configuration and set one figure style.

The chapters are thin: a parameters cell (`config_file`, `settings`, replaced by papermill), then
`cfg = book.setup(config_file, settings)`, then stage functions and figures.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..core import config
from ..core.paths import project_root


def setup(config_file: str | Path | None = "config/default.yaml", settings: dict[str, Any] | None = None) -> config.Config:
    """The run's configuration (a file, then nested overrides), with the book's figure style set."""
    import seaborn as sns

    warnings.filterwarnings("ignore", category=UserWarning)
    sns.set_theme(style="whitegrid", font_scale=0.9)
    show_legibly()
    return config.load(config_file or None, settings or {})


def show_legibly(shell: Any = None) -> bool:
    """Every figure the kernel shows or glues passes through `plots.legible` first (text readable in the
    book's column); False outside IPython."""
    import matplotlib.pyplot as plt
    from matplotlib.figure import Figure

    from . import plots

    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return False
        shell = get_ipython()
    if shell is None:
        return False
    plt.close(plt.figure())  # the inline backend registers its formatters on first use: ours go after
    png = shell.display_formatter.formatters["image/png"]

    def show(fig: Figure) -> bytes:
        from IPython.core.pylabtools import print_figure

        return print_figure(plots.legible(fig), "png", bbox_inches="tight")

    png.for_type(Figure, show)
    return True


def shown_path(path: str | Path) -> str:
    """A path as a page may show it: relative to the project (no machine's absolute path in the book)."""
    p = Path(path)
    try:
        return p.resolve().relative_to(project_root()).as_posix()
    except ValueError:
        return p.name
