"""docs/tutorial.md, "Your first page, locally": its files, written literally into a fresh
`django-admin startproject`, give a project that passes `check` with no issue and migrates."""

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def write_quickstart(tutorial, where):
    section = tutorial.split("## Your first page, locally")[1].split("\n## ")[0]
    written = []
    for intro, lang, body in re.findall(r"([^\n]*)\n\n```(\w+)\n(.*?)```", section, re.S):
        match = re.match(r"(Append to )?`([^`]+)`", intro)
        if lang == "bash" or not match:
            continue
        path = where / match.group(2)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a" if match.group(1) else "w") as f:
            f.write(("\n" if match.group(1) else "") + body)
        written.append(match.group(2))
    return written


def test_readme_quickstart_project_checks_clean_and_migrates(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    run = lambda *args: subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)  # noqa: E731
    assert run(sys.executable, "-m", "django", "startproject", "mysite", ".").returncode == 0
    assert run(sys.executable, "manage.py", "startapp", "chat").returncode == 0
    written = write_quickstart((ROOT / "docs" / "tutorial.md").read_text(), tmp_path)
    assert written == [
        "mysite/settings.py",
        "chat/views.py",
        "chat/templates/chat/page.html",
        "chat/templates/registration/login.html",
        "mysite/urls.py",
    ]
    check = run(sys.executable, "manage.py", "check")
    assert check.returncode == 0 and "no issues" in check.stdout, check.stderr
    assert run(sys.executable, "manage.py", "migrate", "-v0").returncode == 0
