"""Files under a dataset root: listed without leaving it. A link that leads outside the root is refused,
naming it, or left out and listed; nothing outside the root is read, fingerprinted or copied.

Plain `os` only (no OpenCV, no torch): the configuration and Snakemake's process use it too.
"""
from __future__ import annotations

import os
from pathlib import Path


class OutsideRootError(ValueError):
    """A link inside a dataset root that leads to a file or folder outside it."""


def inside(root: str | Path, rel: str) -> bool:
    """Whether `rel`, resolved with every link followed, lies under `root` (itself resolved)."""
    base = os.path.realpath(root)
    real = os.path.realpath(os.path.join(base, rel))
    return real == base or real.startswith(base + os.sep)


def outside_error(root: str | Path, rel: str) -> OutsideRootError:
    """The one-line refusal of a link leading outside the dataset root."""
    target = os.path.realpath(os.path.join(root, rel))
    return OutsideRootError(f"{os.path.join(root, rel)} is a link to {target}, outside the dataset root {root}: "
                            f"remove it, or set dataset.outside_links: skip to leave such links out")


def list_files(root: str | Path, skipped: list[str] | None = None) -> list[str]:
    """Relative POSIX paths of the files under `root`, hidden files left out, sorted.

    Links are followed only where they lead inside `root` (resolved): one leading outside is refused
    (`OutsideRootError`, naming it), or, when a list is passed as `skipped`, left out and appended there;
    a folder reached twice through links is walked once. os.scandir rather than Path.rglob: no stat and no
    path object per plain file (listing took a tenth of the anonymized copy's time at 2,000 files).
    """
    found: list[str] = []
    base = os.path.realpath(root)
    seen: set[str] = set()

    def walk(folder: str, prefix: str) -> None:
        real = os.path.realpath(folder)
        if real in seen:
            return
        seen.add(real)
        with os.scandir(folder) as it:
            entries = sorted(it, key=lambda e: e.name)  # in name order: a folder reached twice keeps its first path
        for e in entries:
            if e.name.startswith("."):
                continue
            if e.is_symlink():
                target = os.path.realpath(e.path)
                if not (target == base or target.startswith(base + os.sep)):
                    if skipped is None:
                        raise outside_error(root, prefix + e.name)
                    skipped.append(prefix + e.name)
                    continue
            if e.is_dir():
                walk(e.path, prefix + e.name + "/")
            elif e.is_file():
                found.append(prefix + e.name)

    walk(os.fspath(root), "")
    return sorted(found)
