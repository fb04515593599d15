"""Runs tests/operations/ with the opt-in operations app installed (its own settings module, so
the rest of the suite, and its query budgets, run without the app's receivers)."""

from ..helpers import run_pytest_with_settings


def test_operations_app():
    run_pytest_with_settings("tests.settings_operations", "tests/operations", "ops")
