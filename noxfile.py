"""The test matrix: Python x Django x database, each on the built wheel (not the source tree).

    nox                      # the whole matrix (3 Pythons x 3 Djangos x 2 databases)
    nox -s ci                # the representative subset CI runs (make test-matrix)
    nox -s typing            # mypy --strict on a project's use of the public API, on the wheel
    nox -l                   # list the sessions

Each session builds the wheel once (``dist/``), installs it with the test dependencies into
its own virtualenv, copies ``tests/`` into a scratch folder and runs pytest there, so the
package is imported from the wheel: a file missing from the wheel (a template, a static file,
a migration) fails the run. The end-to-end tests run too; the browser tests run in ``make
test`` (they need the demo project of this tree).
"""

import glob
import os
import shutil
import sys
from pathlib import Path

import nox

ROOT = Path(__file__).parent
PYTHONS = ["3.11", "3.12", "3.13"]
DJANGOS = {"5.2": "Django>=5.2,<5.3", "6.0": "Django>=6.0,<6.1", "6.1": "Django>=6.1,<6.2"}
DATABASES = ["sqlite", "postgres"]
# Django 6 needs Python 3.12.
UNSUPPORTED = {("3.11", "6.0"), ("3.11", "6.1")}
# The project's own test dependencies (pyproject.toml's "test" group) and coverage.
TEST_DEPENDENCIES = [
    *nox.project.dependency_groups(nox.project.load_toml(ROOT / "pyproject.toml"), "test"),
    "pytest-cov>=5",
]
# What type-checks a downstream project's code (pyproject.toml's "lint" group, without ruff).
TYPING_DEPENDENCIES = [
    dep
    for dep in nox.project.dependency_groups(nox.project.load_toml(ROOT / "pyproject.toml"), "lint")
    if not dep.startswith("ruff")
]
# The coverage floor of the package's own code (today's level; raise it, never lower it).
COVERAGE_FLOOR = 91  # measured 93.0% (tests-3.12, Django 6.1, SQLite, subprocesses measured) on 2026-11-26

# pyenv's interpreters (3.12, 3.13 on the project's machines), when they are not on PATH.
_pyenv = sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[1-3].*/bin")), reverse=True)
os.environ["PATH"] = os.pathsep.join([*_pyenv, os.environ.get("PATH", "")])

nox.options.sessions = ["tests"]
nox.options.reuse_existing_virtualenvs = True


def built_wheel(session):
    """Build the wheel once per nox run (every session reuses it)."""
    wheels = sorted(glob.glob(str(ROOT / "dist" / "*.whl")), key=os.path.getmtime)
    if not wheels or os.environ.get("NOX_REBUILD_WHEEL", "1") == "1":
        shutil.rmtree(ROOT / "dist", ignore_errors=True)
        session.run(sys.executable, "-m", "build", "--wheel", "--outdir", str(ROOT / "dist"), str(ROOT), external=True)
        os.environ["NOX_REBUILD_WHEEL"] = "0"  # later sessions of this run reuse it
        wheels = glob.glob(str(ROOT / "dist" / "*.whl"))
    return wheels[-1]


def install_wheel(session, wheel, extras, *dependencies):
    """The wheel with its extras and ``dependencies``. The wheel is reinstalled every time: a
    reused virtualenv (``reuse_existing_virtualenvs``) holds the previous build of the same
    version, which pip would keep, and the session would test stale code."""
    session.install(f"{wheel}[{extras}]", *dependencies)
    session.install("--force-reinstall", "--no-deps", wheel)


def run_tests(session, django, db, markers):
    wheel = built_wheel(session)
    install_wheel(session, wheel, "local", DJANGOS[django], *TEST_DEPENDENCIES)
    scratch = Path(session.create_tmp()) / "run"
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    shutil.copytree(ROOT / "tests", scratch / "tests", ignore=shutil.ignore_patterns("__pycache__", "browser"))
    # The pytest settings, and what tests of the docs and the newcomer's path read (never the package).
    for name in ("pyproject.toml", "README.md", "Makefile"):
        shutil.copy(ROOT / name, scratch / name)
    shutil.copytree(ROOT / "example", scratch / "example", ignore=shutil.ignore_patterns("__pycache__", "*.sqlite3"))
    shutil.copytree(ROOT / "docs", scratch / "docs")  # tests/checks/test_checks.py: every check id documented
    shutil.copytree(ROOT / ".ci", scratch / ".ci")  # tests/docs/test_makefile.py: what CI runs
    env = {"TEST_DB": db, "PG_TEST_NAME": f"test_nox_{session.python.replace('.', '')}_{django.replace('.', '')}"}
    with session.chdir(scratch):
        # The package must come from the wheel, never from a source tree.
        session.run(
            "python",
            "-c",
            "import django_aws_api_gateway_websockets as p, sys; "
            "assert 'site-packages' in p.__file__, p.__file__; print('testing', p.__file__)",
        )
        session.run(
            "python",
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-m",
            markers,
            "-W",
            "error::DeprecationWarning:django_aws_api_gateway_websockets",
            "--cov=django_aws_api_gateway_websockets",
            "--cov-report=term:skip-covered",
            f"--cov-fail-under={COVERAGE_FLOOR}",
            *session.posargs,
            env=env,
        )


@nox.session(python=PYTHONS)
@nox.parametrize("db", DATABASES)
@nox.parametrize("django", list(DJANGOS))
def tests(session, django, db):
    """Unit and end-to-end tests on the built wheel."""
    if (session.python, django) in UNSUPPORTED:
        session.skip(f"Django {django} needs Python 3.12+")
    run_tests(session, django, db, markers="not browser")


def check_downstream_typing(session, django="6.1"):
    """``mypy --strict`` with django-stubs on tests/typing/downstream.py, a project's use of the
    public API, against the installed wheel: its ``py.typed`` and annotations are what a project
    that type-checks strictly sees (the package's own errors are not reported there, its API is)."""
    wheel = built_wheel(session)
    install_wheel(session, wheel, "local,testing", DJANGOS[django], *TYPING_DEPENDENCIES)
    scratch = Path(session.create_tmp()) / "typing"
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(ROOT / "tests" / "typing", scratch, ignore=shutil.ignore_patterns("__pycache__", ".mypy_cache"))
    with session.chdir(scratch):
        session.run(
            "python",
            "-c",
            "import django_aws_api_gateway_websockets as p, pathlib; "
            "assert 'site-packages' in p.__file__, p.__file__; "
            "assert (pathlib.Path(p.__file__).parent / 'py.typed').is_file(), 'py.typed is not in the wheel'; "
            "print('type-checking against', p.__file__)",
        )
        session.run(
            "python",
            "-m",
            "mypy",
            "--strict",
            "--config-file",
            "mypy.ini",
            "--no-incremental",
            "downstream.py",
            env={"PYTHONPATH": str(scratch)},  # downstream_settings, for django-stubs' plugin
        )


@nox.session(python="3.12", name="typing")
def typing_session(session):
    """A downstream project's strict type check of the public API, on the built wheel."""
    check_downstream_typing(session)


@nox.session(python="3.12")
def ci(session):
    """The subset CI runs: the newest Django on the built wheel, SQLite and PostgreSQL, and
    the downstream type check."""
    for db in DATABASES:
        run_tests(session, "6.1", db, markers="not browser")
    check_downstream_typing(session)
