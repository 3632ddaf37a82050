"""Notebooks only show: verdicts, sentences and branches live in reidlib, where tests reach them.

A chapter's code cells may select rows (comparisons inside `df[...]`), call the library, draw figures and
glue what the library returns. They may not decide (`if`, conditional expressions, comparisons outside a
row selection, loops with a condition), define functions, or build prose (f-strings with words, string joins or
concatenation) except as a figure's own text (titles, axis labels, legends).
"""
from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
FIGURE_TEXT = {"set_title", "set_xlabel", "set_ylabel", "suptitle", "supxlabel", "supylabel", "text",
               "annotate", "legend", "set_xticks", "set_yticks", "set_xticklabels", "set_yticklabels", "set",
               "set_label", "errorbar", "plot", "scatter", "bar", "barh", "hist", "boxplot", "axhline", "axvline"}
DECIDING = (ast.If, ast.IfExp, ast.While, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)


def _cell_code(source: str) -> str:
    """A cell's Python, IPython magics and shell lines blanked."""
    return "\n".join("" if line.lstrip().startswith(("%", "!")) else line for line in source.splitlines())


def _has_words(node: ast.JoinedStr) -> bool:
    """Whether an f-string's literal text holds a letter."""
    return any(isinstance(v, ast.Constant) and any(ch.isalpha() for ch in str(v.value)) for v in node.values)


def violations(source: str) -> list[str]:
    """Where a cell decides or writes prose instead of showing (empty when it only shows)."""
    tree = ast.parse(_cell_code(source))
    found: list[str] = []

    def visit(node: ast.AST, in_subscript: bool, in_figure_text: bool) -> None:
        line = getattr(node, "lineno", 0)
        if isinstance(node, DECIDING):
            found.append(f"line {line}: {type(node).__name__}")
        elif isinstance(node, ast.Compare) and not in_subscript:
            found.append(f"line {line}: comparison outside a row selection")
        elif isinstance(node, ast.JoinedStr) and not in_figure_text:
            if _has_words(node):  # a number formatted alone ('{x:.1f}', '{a} ± {b}') is not prose
                found.append(f"line {line}: f-string with words (prose belongs in reidlib)")
            return
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "join"
              and isinstance(node.func.value, ast.Constant) and not in_figure_text):
            found.append(f"line {line}: string join (prose belongs in reidlib)")
        elif (isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add) and not in_figure_text
              and any(isinstance(s, (ast.JoinedStr, ast.Constant)) and isinstance(getattr(s, "value", None), str)
                      for s in (node.left, node.right))):
            found.append(f"line {line}: string concatenation (prose belongs in reidlib)")
        sub = in_subscript or isinstance(node, ast.Subscript)
        fig = in_figure_text or (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                                 and node.func.attr in FIGURE_TEXT)
        for child in ast.iter_child_nodes(node):
            visit(child, sub, fig)

    visit(tree, False, False)
    return found


def test_the_checker_finds_decisions_and_prose_and_passes_showing():
    assert violations('x = "yes" if a > b else "no"')
    assert violations("if found:\n    glue('v', 1)")
    assert violations('glue("s", f"{n} queries")')
    assert not violations('glue("chance", f"{chance:.1f}", display=False)')
    assert violations('glue("s", ", ".join(names))')
    assert violations("def f(d):\n    return d")
    assert violations("sep = a.max() < b.min()")
    assert not violations('d = t[t.model == m]\nax.set_title(f"{m} ({n})")\nglue("fig", fig, display=False)')
    assert not violations("%matplotlib inline\nresult = findings.load(cfg)")


def code_cells(path: Path) -> list[tuple[int, str]]:
    """A notebook's code cells as (index, source), less the Colab install cell."""
    cells = json.loads(path.read_text())["cells"]
    return [(k, src) for k, cell in enumerate(cells)
            if cell["cell_type"] == "code" and "google.colab" not in (src := "".join(cell["source"]))]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_cells_only_show(path):
    bad = [f"cell {k}, {v}" for k, src in code_cells(path) for v in violations(src)]
    assert not bad, f"{path.name} decides or writes prose in its cells:\n" + "\n".join(bad)


SILENT = {"glue", "close", "show", "display", "print", "tight_layout", "savefig", "set_grad_enabled"}  # return nothing to show


def lost_displays(source: str) -> list[str]:
    """Calls a cell makes as bare statements before its last one: a table or figure they return is never shown
    (only a cell's last expression is displayed), unless the call is one that shows or returns nothing."""
    body = ast.parse(_cell_code(source)).body
    lost = []
    for st in body[:-1]:
        if isinstance(st, ast.Expr) and isinstance(st.value, ast.Call):
            f = st.value.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            if name not in SILENT:
                lost.append(f"line {st.lineno}: {ast.unparse(st)[:60]} is computed and never shown")
    return lost


def test_the_lost_display_checker_finds_a_table_before_the_last_line():
    assert lost_displays('page.controls_table(t)\nglue("n", "3", display=False)')
    assert not lost_displays('glue("n", "3", display=False)\npage.controls_table(t)')
    assert not lost_displays("fig = page.figure(d)\nglue('fig', fig, display=False)\nplt.close(fig)")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_table_a_cell_makes_is_shown(path):
    lost = [f"cell {k}, {v}" for k, src in code_cells(path) for v in lost_displays(src)]
    assert not lost, f"{path.name} makes what it never shows:\n" + "\n".join(lost)
