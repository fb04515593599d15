"""Every code block of docs/tutorial.md and docs/testing.md runs as written (issue #23).

The tutorial's blocks are typed, in order, into a fresh `django-admin startproject`: its files are
written (or appended to), its shell commands run, its `manage.py shell` session is fed to the
shell, its test step (`pytest`) must pass a test. The testing page's examples then run in the same
project, under pytest and under `manage.py test`. A block that cannot run here (it installs from
the registry, starts a server, needs AWS) is listed in SKIPPED with the reason; a new block that
is neither run nor listed fails `test_every_block_is_run_or_explained`.
"""

import os
import re
import shlex
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
FENCE = re.compile(r"^( *)```(\w*)\n(.*?)^\1```", re.M | re.S)

# (page, first line of the block) -> why the test does not run it.
SKIPPED = {
    ("tutorial.md", "python manage.py shell"): "interactive: the next block is fed to `manage.py shell -c`",
    ("tutorial.md", 'ALLOWED_HOSTS = ["www.example.com"]'): "production settings: compiled only",
    ("tutorial.md", "python manage.py websocket_iam_policy --pk 1 --deploy"): "needs an AWS API record",
    ("tutorial.md", "python manage.py create_api_gateway --pk 1"): "needs AWS",
    ("tutorial.md", "python manage.py check --deploy"): "needs a deployed API",
    ("testing.md", 'pip install "django-aws-api-gateway-websockets[testing]"'): "installs from the registry",
    ("testing.md", "make demo"): "the repository's own targets (CI runs them)",
    ("testing.md", "make test-sqlite"): "the repository's own suite: this is part of it",
}
# Lines of a command block that the test replaces or leaves out, with the reason.
NOT_RUN = {
    "python -m venv": "the test's interpreter is the virtualenv",
    "pip install": "the package under test is on PYTHONPATH",
    "runserver": "a server: tests/e2e and tests/browser run it",
}


@dataclass
class Block:
    page: str
    section: str
    lang: str
    intro: str  # the line before the fence
    body: str

    @property
    def first_line(self):
        return self.body.strip().splitlines()[0].split("  #")[0].strip()

    @property
    def target(self):
        """The file the prose before the block names (`path`), and whether to append to it."""
        named = self.intro.endswith(":") and re.search(r"`([\w./-]+\.\w+)`", self.intro)
        found = named or re.match(r"#\s*([\w./-]+\.\w+)", self.body)
        if not found or self.lang in ("bash", "javascript"):
            return None, False
        return found.group(1), "append to" in self.intro.lower()


def blocks(page):
    text = (DOCS / page).read_text()
    found = []
    for match in FENCE.finditer(text):
        before = text[: match.start()]
        intro = next((line.strip() for line in reversed(before.splitlines()) if line.strip()), "")
        section = next((line for line in reversed(before.splitlines()) if line.startswith("## ")), "")
        body = "\n".join(line[len(match.group(1)) :] for line in match.group(3).splitlines()) + "\n"
        found.append(Block(page, section[3:], match.group(2), intro, body))
    return found


# Run in the tutorial's project, as a browser would go through it.
BROWSE = """
import re
from django.test import Client
browser = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1:8000")
first = browser.get("/")
assert first.status_code == 302 and first["Location"] == "/accounts/login/?next=/", first
form = browser.get(first["Location"])
csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.content.decode()).group(1)
answer = browser.post(
    "/accounts/login/?next=/",
    {"username": "bob", "password": "bob-password-1", "csrfmiddlewaretoken": csrf},
)
assert answer.status_code == 302 and answer["Location"] == "/", answer.content.decode()[:2000]
page = browser.get("/")
assert page.status_code == 200 and b"bob" in page.content, page.status_code
anonymous = Client(enforce_csrf_checks=True, HTTP_HOST="127.0.0.1:8000").post("/api/ws-token/")
assert (anonymous.status_code, anonymous.json()) == (401, {"error": "Not logged in."}), anonymous.content
print(page.content.decode())
"""


class Project:
    def __init__(self, where):
        self.where = where
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}
        for name in ("DJANGO_SETTINGS_MODULE", "PYTEST_ADDOPTS", "PYTEST_CURRENT_TEST", "TEST_DB"):
            self.env.pop(name, None)
        self.ran = []
        self.gateway = None

    def run(self, *args, stdin=None, check=True):
        done = subprocess.run(
            args, cwd=self.where, env=self.env, input=stdin, capture_output=True, text=True, timeout=300
        )
        if check:
            assert done.returncode == 0, f"{shlex.join(args)} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def command(self, line):
        """One line of a bash block, as a newcomer types it (comments dropped)."""
        line = line.split("  #")[0].strip().rstrip("&").strip()
        if not line or line.startswith("#"):
            return None
        for prefix, _why in NOT_RUN.items():
            if prefix in line:
                return None
        words = shlex.split(line)
        if "runwsgateway" in words:
            return self.start_gateway(words)
        if words[:2] == ["python", "manage.py"] and words[2:3] == ["createsuperuser"]:
            # Interactive; the same user, without a terminal.
            self.env["DJANGO_SUPERUSER_PASSWORD"] = "admin-password"
            words += ["--noinput", "--username", "admin", "--email", "admin@example.com"]
        if words[0] == "python":
            words[0] = sys.executable
        elif words[0] == "django-admin":
            words[:1] = [sys.executable, "-m", "django"]
        elif words[0] == "pytest":
            words[:1] = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider"]
        self.ran.append(line)
        return self.run(*words)

    def start_gateway(self, words):
        """`runwsgateway &`: started on a free port (others may hold 8001) and left running, as in
        the tutorial, until stop_gateway; its banner says it listens and has set up the `local`
        record that `{% websocket_config %}` reads."""
        self.ran.append(shlex.join(words))
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        args = [sys.executable if w == "python" else w for w in words] + [f"127.0.0.1:{port}"]
        self.gateway = subprocess.Popen(
            args, cwd=self.where, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        banner = self.gateway.stdout.readline()
        assert f"ws://127.0.0.1:{port}" in banner, banner + self.stop_gateway()

    def stop_gateway(self):
        if self.gateway is None:
            return ""
        self.gateway.terminate()
        output = self.gateway.communicate(timeout=60)[0]
        self.gateway = None
        return output

    def write(self, block):
        path, append = block.target
        file = self.where / path
        file.parent.mkdir(parents=True, exist_ok=True)
        with open(file, "a" if append else "w") as f:
            f.write(("\n" if append else "") + block.body)


def handled(block):
    return (block.page, block.first_line) in SKIPPED


def tutorial_blocks():
    return [
        b
        for b in blocks("tutorial.md")
        if b.section in ("Your first page, locally (no AWS account)", "Push notifications from the server", "Test it")
    ]


def test_every_block_is_run_or_explained():
    """Install section and Deploy: compiled or explained; the rest is run by the test below."""
    for block in blocks("tutorial.md") + blocks("testing.md"):
        if block.lang == "python":
            compile(block.body, f"{block.page}: {block.first_line}", "exec")
        run_by_project = block.page == "tutorial.md" and block in tutorial_blocks()
        run_by_testing_page = block.page == "testing.md" and (block.lang in ("python", "ini"))
        excerpt = block.page == "tutorial.md" and block.section == "Install"
        assert run_by_project or run_by_testing_page or excerpt or handled(block), (
            f"{block.page}, {block.section!r}: the block starting {block.first_line!r} is not run by "
            "tests/docs/test_code_blocks.py; run it there or add it to SKIPPED with the reason"
        )


def test_install_section_commands_are_the_ones_the_tutorial_runs():
    """The Install section's commands are not run (they install): they must say what the
    project's own steps do, so they are checked against them."""
    [install, migrate] = [b for b in blocks("tutorial.md") if b.section == "Install" and b.lang == "bash"]
    assert migrate.body.strip() == "python manage.py migrate"
    assert "manage.py migrate" in "".join(b.body for b in tutorial_blocks() if b.lang == "bash")


@pytest.mark.timeout(600)
def test_tutorial_and_testing_page_run_as_written(tmp_path):
    project = Project(tmp_path)
    try:
        run_tutorial_and_testing_page(project, tmp_path)
    finally:
        project.stop_gateway()


def run_tutorial_and_testing_page(project, tmp_path):
    shell_session = None
    for block in tutorial_blocks():
        if handled(block):
            if block.first_line == "python manage.py shell":
                shell_session = True
            continue
        if block.lang == "bash":
            for line in block.body.splitlines():
                done = project.command(line)
                if line.strip().startswith("pytest"):
                    # The test step must run the test it just wrote, and pass.
                    assert re.search(r"\b1 passed\b", done.stdout), done.stdout
        elif block.lang == "javascript":
            page = tmp_path / "chat/templates/chat/page.html"
            html = page.read_text()
            anchor = next(line for line in html.splitlines() if 'addEventListener("chat"' in line)
            indent = anchor[: len(anchor) - len(anchor.lstrip())]
            page.write_text(html.replace(anchor, anchor + "\n" + indent + block.body.strip()))
        elif block.lang == "python" and shell_session:
            project.run(sys.executable, "manage.py", "shell", "-c", block.body)
            shell_session = None
        else:
            assert block.target[0], f"tutorial.md: no file named before the block {block.first_line!r}"
            project.write(block)
    assert any("pytest" in line for line in project.ran), "the tutorial's test step ran no pytest"
    assert any("createsuperuser" in line for line in project.ran)
    check = project.run(sys.executable, "manage.py", "check")
    assert "no issues" in check.stdout

    # The second user logs in on the tutorial's login page (not the admin's, staff only) and gets
    # the chat; an anonymous token request is the JSON 401 the page shows; the page's script parses.
    render = project.run(sys.executable, "manage.py", "shell", "-c", BROWSE)
    script = render.stdout.split('<script type="module">')[1].split("</script>")[0]
    assert '"notice"' in script and '"unauthorized"' in script
    if shutil.which("node"):
        (tmp_path / "page.mjs").write_text(script)
        project.run("node", "--check", str(tmp_path / "page.mjs"))
    assert "Local gateway stopped" in project.stop_gateway()

    # The testing page's examples, in the tutorial's project (its chat is what they test).
    tests = 0
    for n, block in enumerate(blocks("testing.md")):
        if handled(block) or block.lang not in ("python", "ini"):
            continue
        if block.target[0]:
            project.write(block)
        else:
            assert "def test_" in block.body, f"testing.md: {block.first_line!r} names no file and has no test"
            (tmp_path / f"chat/test_testing_page_{n}.py").write_text(block.body)
            tests += len(re.findall(r"^\s*def test_", block.body, re.M))
    done = project.run(sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", check=False)
    assert done.returncode == 0 and f"{tests + 1} passed" in done.stdout, done.stdout + done.stderr
    # The TestCase examples also run without pytest.
    done = project.run(sys.executable, "manage.py", "test", "chat", "-v", "2", check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Ran [1-9]\d* tests?", done.stderr), done.stderr
