"""Sphinx extension for this book: every script tag once per page, and spanning table headers.

sphinx-thebe registers its inline configuration script twice in a Jupyter Book build, and the
second copy is a JavaScript error ("THEBE_JS_URL has already been declared") in every page.
A `csv-table` has no way to span a header cell over several columns (the paper's tables put each
protocol over its mAP and Rank-1 columns), so an empty header cell after a named one is merged into it.
"""
from __future__ import annotations

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
    return {"parallel_read_safe": True, "parallel_write_safe": True}
