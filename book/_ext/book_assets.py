"""Sphinx extension for this book: every script tag once per page, and spanning table headers.

sphinx-thebe registers its inline configuration script twice in a Jupyter Book build, and the
second copy is a JavaScript error ("THEBE_JS_URL has already been declared") in every page.
A `csv-table` has no way to span a header cell over several columns (the paper's tables put each
protocol over its mAP and Rank-1 columns), so an empty header cell after a named one is merged into it.
Sphinx numbers figures through the whole book unless its chapters are numbered by the toctree (the
book's parts would each restart at 1), so figures are renumbered by the chapter number in the file name.
"""
from __future__ import annotations

import re

from docutils import nodes


def _span_headers(app, doctree) -> None:
    """In every table header row but the last, an empty cell joins the named cell on its left."""
    for thead in doctree.findall(nodes.thead):
        for row in list(thead.children)[:-1]:
            named = None
            for entry in list(row.children):
                if entry.astext().strip():
                    named = entry
                elif named is not None:
                    named["morecols"] = named.get("morecols", 0) + 1
                    row.remove(entry)


def chapter_numbers(numbers: dict, chapter: int | None) -> dict:
    """Figure (or table) numbers of one page, in their order: (chapter, 1), (chapter, 2), ... or 1, 2, ... without one."""
    order = sorted(numbers, key=lambda key: numbers[key])
    return {key: (chapter, i) if chapter else (i,) for i, key in enumerate(order, 1)}


def _number_by_chapter(app, env) -> list[str]:
    """After Sphinx has numbered the figures: `notebooks/03_x` gets Fig. 3.1, 3.2, ...; other pages start at 1."""
    changed = []
    for docname, by_type in env.toc_fignumbers.items():
        m = re.match(r"notebooks/(\d+)_", docname)
        chapter = int(m.group(1)) if m else None  # 0 (the findings) counts as none
        for numbers in by_type.values():
            new = chapter_numbers(numbers, chapter)
            if new != numbers:
                numbers.update(new)
                changed.append(docname)
    return sorted(set(changed))


def _unique_scripts(app, pagename, templatename, context, doctree) -> None:
    seen, kept = set(), []
    for js in context.get("script_files", []):
        name = getattr(js, "filename", js) or ""  # an inline script's filename is '' or None
        key = (str(name), tuple(sorted((k, str(v)) for k, v in getattr(js, "attributes", {}).items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    context["script_files"][:] = kept  # in place: handlers after this one add to the same list


def setup(app):
    # before the themes: html-page-context stops at the first handler that returns a template name
    app.connect("html-page-context", _unique_scripts, priority=100)
    app.connect("doctree-read", _span_headers)
    app.connect("env-get-updated", _number_by_chapter, priority=900)  # after Sphinx's own numbering (500)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
