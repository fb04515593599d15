"""`python -m django_aws_api_gateway_websockets`, the docs' first command after `pip install`
(issue #23): the version and which extras work; what a 4.x install answers instead."""

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

from django_aws_api_gateway_websockets import __main__ as main_module
from django_aws_api_gateway_websockets import __version__

ROOT = Path(__file__).resolve().parents[2]


def run_module(cwd, pythonpath, *flags):
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(
        [sys.executable, *flags, "-m", "django_aws_api_gateway_websockets"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_prints_the_version_and_the_extras(tmp_path):
    done = run_module(tmp_path, ROOT)
    assert done.returncode == 0, done.stderr
    first, *rest = done.stdout.splitlines()
    assert first.startswith(f"django-aws-api-gateway-websockets {__version__} (")
    assert any(line.strip().startswith("Django ") for line in rest)
    assert any(line.strip().startswith("[local] the local gateway (runwsgateway): ") for line in rest)


def test_a_missing_extra_says_what_to_install(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None if name == "websockets" else real(name))
    lines, ok = main_module.report()
    assert '  [local] the local gateway (runwsgateway): missing websockets: pip install "…[local]"' in lines
    assert ok  # the runtime works without the extra


def test_an_unsupported_django_fails(monkeypatch):
    import django

    monkeypatch.setattr(django, "VERSION", (4, 2, 0, "final", 0))
    lines, ok = main_module.report()
    assert not ok and any("(not supported: 5.2 to 6.x)" in line for line in lines)


def test_the_tutorial_explains_what_a_4x_install_answers(tmp_path):
    """The 4.x wheels have no __main__: Python's answer is the one the tutorial quotes."""
    old = tmp_path / "site" / "django_aws_api_gateway_websockets"
    old.mkdir(parents=True)
    (old / "__init__.py").write_text("")
    # -S: no site-packages, so an editable install of this checkout cannot lend its __main__
    done = run_module(tmp_path, tmp_path / "site", "-S")
    assert done.returncode != 0
    answer = "No module named django_aws_api_gateway_websockets.__main__"
    assert answer in done.stderr
    tutorial = " ".join((ROOT / "docs" / "tutorial.md").read_text().split())
    assert f"`{answer}`, pip installed the 4.x release" in tutorial
