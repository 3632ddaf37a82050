"""Rule plumbing shared by workflow/Snakefile (the default book) and workflow/grid.smk (the paper's grid).

Paths come from `reidlib.runfiles`, the config from `reidlib.config`; neither loads torch or OpenCV,
so Snakemake's own process stays light. Every job runs `python -m reidlib STAGE ...` in a process of
its own, its command line quoted word by word.
"""
import shlex
import sys
from pathlib import Path

BIN = Path(sys.executable).parent  # python, papermill and jupyter-book from Snakemake's own environment
# every rule's results depend on the library as a whole: editing any module reruns what it may change
LIB = sorted(str(p) for p in Path(workflow.basedir).parent.joinpath("reidlib").rglob("*.py"))


def q(*words):
    """Words as one shell command line: each quoted (a path with spaces or `$(...)` stays data), and
    braces doubled so that Snakemake's shell() leaves them alone."""
    return " ".join(shlex.quote(str(w)) for w in words).replace("{", "{{").replace("}", "}}")


def logged(command, log):
    """`command` with its output in `log`, whose last 40 lines are shown if it fails."""
    return f"{command} > {q(log)} 2>&1 || (tail -n 40 {q(log)}; exit 1)"


def reidlib_stage(stage, params, log, **options):
    """The shell command of one reidlib stage run with a papermill parameters file (`config_file`, `settings`)."""
    extra = [w for k, v in options.items() for w in (f"--{k}", v)]
    return logged(q(BIN / "python", "-m", "reidlib", stage, "--params", params, *extra), log)
