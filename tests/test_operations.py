"""Runs tests/operations/ with the opt-in operations app installed (its own settings module, so
the rest of the suite, and its query budgets, run without the app's receivers)."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_operations_app():
    env = {**os.environ}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    if env.get("TEST_DB") == "postgres":  # not the database of this run (Django's default name)
        env["PG_TEST_NAME"] = (env.get("PG_TEST_NAME") or "test_postgres") + "_ops"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "--ds",
            "tests.settings_operations",
            str(ROOT / "tests" / "operations"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "skipped" not in result.stdout
