"""Sphinx extension for this book: every script tag once per page.

sphinx-thebe registers its inline configuration script twice in a Jupyter Book build, and the
second copy is a JavaScript error ("THEBE_JS_URL has already been declared") in every page.
"""
from __future__ import annotations


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
    return {"parallel_read_safe": True, "parallel_write_safe": True}
