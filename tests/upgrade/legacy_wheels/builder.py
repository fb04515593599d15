"""Build a database exactly as a project running the old package (4.x) has it.

``build_old_database(version, db)``:

1. makes (once; reused) a virtualenv holding ``django-aws-api-gateway-websockets==<version>``,
   the Django it needs and psycopg, under ``$DAWSGW_LEGACY_CACHE`` (default
   ``~/.cache/dawsgw-legacy``)/``<version>/venv``;
2. writes a throwaway Django project (auth, contenttypes, sessions and the old app, under its
   real label ``django_aws_api_gateway_websockets``) pointed at ``db``;
3. runs the old package's ``migrate`` and then ``seed_old.py`` in that virtualenv, in a
   subprocess with a clean environment (nothing of this process's ``sys.path``/``PYTHONPATH``);
4. returns the manifest ``seed_old.py`` wrote: every table with its row count and rows (raw SQL),
   the semantic records created, the applied migrations and the schema.

``db`` is a Django ``DATABASES`` entry: ``{"ENGINE": "django.db.backends.sqlite3", "NAME": path}``
or a PostgreSQL one (``NAME`` must be an existing, empty database; see ``create_pg_database``).
Nothing here imports Django: the old code only ever runs in the other interpreter.
"""

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED_SCRIPT = HERE / "seed_old.py"
PACKAGE = "django-aws-api-gateway-websockets"
APP_LABEL = "django_aws_api_gateway_websockets"

# What each wheel declares (dist-info METADATA): 4.0.0 Django>=5.2.8, 4.1.0 Django>=5.2.18;
# both Requires-Python >=3.10. Django 6 needs Python 3.12, so stay on 5.2.x.
REQUIREMENTS = {
    "4.0.0": ["Django>=5.2.8,<6.0", "psycopg[binary]>=3.1"],
    "4.1.0": ["Django>=5.2.18,<6.0", "psycopg[binary]>=3.1"],
}
# Same SECRET_KEY as tests/settings.py, so the keyed hashes 4.1.0 stores (salted_hmac of the
# session key / auth hash) can be recomputed, and compared, in our test process.
DEFAULT_SECRET_KEY = "tests-only-not-secret"
# 4.1.0: WEBSOCKETS["gateway_secret"], a string or a list (first sent, all accepted), >= 32 chars.
GATEWAY_SECRETS_41 = [
    "new-secret-0123456789abcdefghijklmnopqrstuv",
    "old-secret-ZYXWVUTSRQPONMLKJIHGFEDCBA9876",
]
PIP_TIMEOUT = 600


class LegacyEnvironmentUnavailable(RuntimeError):
    """The old package's virtualenv could not be made (no package index, no venv module...)."""


class LegacyBuildFailed(RuntimeError):
    """The old package's migrate or the seeding script failed; the message holds its output."""


def cache_root() -> Path:
    return Path(os.environ.get("DAWSGW_LEGACY_CACHE") or Path.home() / ".cache" / "dawsgw-legacy")


def _interpreter_tag() -> str:
    return f"py{sys.version_info.major}{sys.version_info.minor}"


def venv_dir(version: str) -> Path:
    return cache_root() / version / f"venv-{_interpreter_tag()}"


def _venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


@contextlib.contextmanager
def _locked(path: Path):
    """An exclusive lock on ``path`` (several pytest processes may build at once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def clean_env(extra=None) -> dict:
    """A minimal environment: nothing of ours (PYTHONPATH, virtualenv, settings) leaks across."""
    env = {
        key: os.environ[key] for key in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT") if key in os.environ
    }
    # pip's own configuration (index URL, proxy, certificates) is the user's, not ours
    env.update({k: v for k, v in os.environ.items() if k.startswith("PIP_") or k.lower().endswith("_proxy")})
    env.update({k: v for k, v in os.environ.items() if k in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")})
    env["PYTHONNOUSERSITE"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra or {})
    return env


def ensure_venv(version: str) -> Path:
    """The old package's virtualenv python, made once and reused; ``LegacyEnvironmentUnavailable``."""
    if version not in REQUIREMENTS:
        raise ValueError(f"unknown old version {version!r}; known: {sorted(REQUIREMENTS)}")
    venv = venv_dir(version)
    requirements = [f"{PACKAGE}=={version}", *REQUIREMENTS[version]]
    marker = venv / ".dawsgw-complete"
    wanted = json.dumps(requirements)
    if marker.exists() and marker.read_text() == wanted and _venv_python(venv).exists():
        return _venv_python(venv)
    if os.environ.get("DAWSGW_LEGACY_OFFLINE"):
        raise LegacyEnvironmentUnavailable(f"no cached virtualenv for {version} and DAWSGW_LEGACY_OFFLINE is set")
    with _locked(venv.parent / ".lock"):
        if marker.exists() and marker.read_text() == wanted:  # another process made it meanwhile
            return _venv_python(venv)
        shutil.rmtree(venv, ignore_errors=True)
        base_python = os.environ.get("DAWSGW_LEGACY_PYTHON") or sys.executable
        steps = [
            [base_python, "-m", "venv", str(venv)],
            [
                str(_venv_python(venv)),
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--no-input",
                "--quiet",
                *requirements,
            ],
        ]
        for step in steps:
            try:
                done = subprocess.run(step, env=clean_env(), capture_output=True, text=True, timeout=PIP_TIMEOUT)
            except (OSError, subprocess.TimeoutExpired) as exc:
                shutil.rmtree(venv, ignore_errors=True)
                raise LegacyEnvironmentUnavailable(f"{' '.join(step[:4])}...: {exc}") from exc
            if done.returncode:
                shutil.rmtree(venv, ignore_errors=True)
                tail = (done.stderr or done.stdout).strip().splitlines()[-6:]
                raise LegacyEnvironmentUnavailable(
                    f"could not install {' '.join(requirements)} (is the package index reachable?): " + " | ".join(tail)
                )
        marker.write_text(wanted)
    return _venv_python(venv)


SETTINGS_TEMPLATE = """\
# Throwaway project of the old package {version}; written by tests/legacy_wheels/builder.py
SECRET_KEY = {secret_key!r}
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"  # what startproject writes since Django 3.2
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "{app}",
]
DATABASES = {{"default": {database!r}}}
AWS_GATEWAY_REGION_NAME = "eu-west-1"
AWS_ACCESS_KEY_ID = "testing"
AWS_SECRET_ACCESS_KEY = "testing"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
WEBSOCKETS = {websockets!r}
"""


def websockets_setting(version: str) -> dict:
    if version == "4.0.0":
        return {}  # 4.0.0 knows neither key; it reads only the four numeric ones
    # never reach AWS while seeding; the secret a 4.1.0 deployment configures
    return {"push_changes_to_aws": False, "gateway_secret": list(GATEWAY_SECRETS_41)}


def _database_entry(db: dict) -> dict:
    keys = ("ENGINE", "NAME", "USER", "PASSWORD", "HOST", "PORT", "OPTIONS")
    entry = {key: db[key] for key in keys if db.get(key) not in (None, "")}
    entry["NAME"] = str(entry["NAME"])
    return entry


def _run(python: Path, args, project: Path, what: str, timeout=600):
    env = clean_env({"DJANGO_SETTINGS_MODULE": "old_settings", "PYTHONPATH": str(project)})
    done = subprocess.run([str(python), *args], cwd=project, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode:
        raise LegacyBuildFailed(f"{what} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-6000:]}")
    return done


def build_old_database(version: str, db: dict, *, secret_key: str = DEFAULT_SECRET_KEY, use_cache: bool = True) -> dict:
    """Migrate and seed ``db`` with the old package ``version``; return the manifest (also at ``manifest_path``).

    SQLite: when ``use_cache``, the first build is kept as a template in the cache (keyed by the
    version and the contents of this file and seed_old.py) and later builds copy it.
    """
    started = time.monotonic()
    python = ensure_venv(version)
    venv_seconds = time.monotonic() - started
    entry = _database_entry(db)
    sqlite = entry["ENGINE"].endswith("sqlite3")
    if sqlite and use_cache:
        template = _sqlite_template(version, secret_key)
        with _locked(template.parent / ".lock"):
            if not (template / "db.sqlite3").exists():
                for stale in ("db.sqlite3.part", "manifest.json.part"):  # an interrupted earlier build
                    (template / stale).unlink(missing_ok=True)
                _build(version, python, {**entry, "NAME": str(template / "db.sqlite3.part")}, secret_key)
                shutil.move(template / "manifest.json.part", template / "manifest.json")
                os.replace(template / "db.sqlite3.part", template / "db.sqlite3")
        shutil.copyfile(template / "db.sqlite3", entry["NAME"])
        manifest = json.loads((template / "manifest.json").read_text())
        manifest["database_name"] = entry["NAME"]
        manifest["from_template"] = str(template)
    else:
        manifest = _build(version, python, entry, secret_key)
    manifest["timings"] = {
        "venv_seconds": round(venv_seconds, 2),
        "total_seconds": round(time.monotonic() - started, 2),
    }
    return manifest


def _sqlite_template(version: str, secret_key: str) -> Path:
    digest = hashlib.sha256()
    for part in (version, secret_key, _interpreter_tag(), SEED_SCRIPT.read_text(), Path(__file__).read_text()):
        digest.update(part.encode())
    path = cache_root() / version / f"sqlite-{digest.hexdigest()[:16]}"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _build(version: str, python: Path, entry: dict, secret_key: str) -> dict:
    with tempfile.TemporaryDirectory(prefix=f"dawsgw-old-{version}-") as tmp:
        project = Path(tmp)
        settings = SETTINGS_TEMPLATE.format(
            version=version,
            secret_key=secret_key,
            app=APP_LABEL,
            database=entry,
            websockets=websockets_setting(version),
        )
        (project / "old_settings.py").write_text(settings)
        shutil.copyfile(SEED_SCRIPT, project / "seed_old.py")
        _run(python, ["-m", "django", "migrate", "--noinput", "-v", "0"], project, f"{version} migrate")
        manifest_path = project / "manifest.json"
        _run(python, ["seed_old.py", str(manifest_path)], project, f"{version} seed_old.py")
        manifest = json.loads(manifest_path.read_text())
        if entry["NAME"].endswith(".part"):  # the SQLite template: keep the manifest beside it
            shutil.copyfile(manifest_path, Path(entry["NAME"]).with_name("manifest.json.part"))
    return manifest


# PostgreSQL databases: made and dropped from this process with psycopg (our test dependency).


def _pg_connect(db: dict):
    import psycopg

    return psycopg.connect(
        dbname=db.get("MAINTENANCE_DB", "postgres"),
        user=db.get("USER") or None,
        password=db.get("PASSWORD") or None,
        host=db.get("HOST") or None,
        port=db.get("PORT") or None,
        autocommit=True,
    )


def create_pg_database(db: dict, name: str, template: str | None = None) -> dict:
    """``CREATE DATABASE name`` (optionally ``TEMPLATE template``); returns ``db`` pointed at it."""
    from psycopg import sql

    with _pg_connect(db) as conn:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("CREATE DATABASE {} TEMPLATE {}").format(sql.Identifier(name), sql.Identifier(template))
        conn.execute(query)
    return {**db, "NAME": name}


def drop_pg_database(db: dict, name: str) -> None:
    from psycopg import sql

    with _pg_connect(db) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def main(argv=None):
    """``python -m tests.legacy_wheels.builder 4.1.0 /tmp/old.sqlite3`` (or ``pg:<dbname>``): build, print the manifest."""
    import argparse

    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("version", choices=sorted(REQUIREMENTS))
    parser.add_argument("target", help="a SQLite file path, or pg:<new database name> (PG* env vars)")
    args = parser.parse_args(argv)
    if args.target.startswith("pg:"):
        server = {
            "ENGINE": "django.db.backends.postgresql",
            "USER": os.environ.get("PGUSER", "postgres"),
            "PASSWORD": os.environ.get("PGPASSWORD", ""),
            "HOST": os.environ.get("PGHOST", "127.0.0.1"),
            "PORT": os.environ.get("PGPORT", "5432"),
        }
        db = create_pg_database(server, args.target[3:])
    else:
        db = {"ENGINE": "django.db.backends.sqlite3", "NAME": args.target}
    manifest = build_old_database(args.version, db, use_cache=False)
    json.dump(manifest, sys.stdout, indent=1, sort_keys=True)


if __name__ == "__main__":
    main()
