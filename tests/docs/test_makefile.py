"""`make test` (issue #23): each stage prints what it runs before its dots, and why tests were
skipped (pytest -rs), instead of one undifferentiated stream of dots."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def make_dry_run(target, tmp_path):
    """The stages ``make <target>`` would run, each ``(name, its commands)``: -n prints the
    commands and runs none (the venv does not exist: its rule is only printed)."""
    done = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    commands = done.stdout
    stages = re.findall(r'^echo "== make (test-\w+): [^"]+ =="$', commands, re.M)
    return list(zip(stages, re.split(r'^echo "== make test-\w+: .*$', commands, flags=re.M)[1:], strict=True))


@pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")
@pytest.mark.parametrize(
    "target,expected",
    [("test", ["test-sqlite", "test-postgres"]), ("test-matrix", ["test-matrix"])],
    ids=["test", "test-matrix"],
)
def test_each_stage_of_make_test_prints_a_header_then_runs_with_skip_reasons(tmp_path, target, expected):
    """`make test` is the suite once per database; the wheel matrix is `make test-matrix`."""
    stages = make_dry_run(target, tmp_path)
    assert [stage for stage, _ in stages] == expected
    for stage, body in stages:
        runs = re.findall(r"-m (?:pytest|nox) [^;\\]*", body)
        assert runs, f"{stage}: no pytest or nox after its header"
        assert all("-rs" in run for run in runs), f"{stage}: a run without -rs (skip reasons): {runs}"


def test_ci_runs_lint_docs_the_suite_and_the_matrix():
    script = (ROOT / ".ci" / "run").read_text()
    assert re.findall(r"^make ([\w-]+)$", script, re.M) == ["lint", "docs", "test", "test-matrix"]
