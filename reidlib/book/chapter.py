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
    return config.load(config_file or None, settings or {})


def shown_path(path: str | Path) -> str:
    """A path as a page may show it: relative to the project (no machine's absolute path in the book)."""
    p = Path(path)
    try:
        return p.resolve().relative_to(project_root()).as_posix()
    except ValueError:
        return p.name
