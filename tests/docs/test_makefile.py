"""`make test` (issue #23): each stage prints what it runs before its dots, and why tests were
skipped (pytest -rs), instead of one undifferentiated stream of dots."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(not shutil.which("make"), reason="make is not installed")
def test_each_stage_of_make_test_prints_a_header_then_runs_with_skip_reasons(tmp_path):
    # -n: print the commands, run none (the venv does not exist: its rule is only printed).
    done = subprocess.run(
        ["make", "-n", "test", f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    commands = done.stdout
    stages = re.findall(r'^echo "== make (test-\w+): [^"]+ =="$', commands, re.M)
    assert stages == ["test-sqlite", "test-postgres", "test-matrix"]
    for stage, body in zip(stages, re.split(r'^echo "== make test-\w+: .*$', commands, flags=re.M)[1:], strict=True):
        runs = re.findall(r"-m (?:pytest|nox) [^;\\]*", body)
        assert runs, f"{stage}: no pytest or nox after its header"
        assert all("-rs" in run for run in runs), f"{stage}: a run without -rs (skip reasons): {runs}"
