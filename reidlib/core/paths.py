"""Where the project is: user-given paths are taken from the project root (the folder holding
`pyproject.toml` and `reidlib/`), whatever the working directory. The bottom of the library.
"""
from __future__ import annotations

from pathlib import Path


def project_path(path: str | Path) -> Path:
    """A user-given path from the config: `~` expanded, a relative one taken from the project root."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else project_root() / p


def project_root() -> Path:
    """The folder holding this project's `pyproject.toml`, found upward from the working directory."""
    here = Path.cwd().resolve()
    for d in (here, *here.parents):
        if (d / "pyproject.toml").is_file() and (d / "reidlib").is_dir():
            return d
    return here


def checkout_root() -> Path:
    """The checkout this library runs from: the folder holding `reidlib/` (and `data/paper/`, git)."""
    return Path(__file__).resolve().parents[2]
