"""The demo project as a user runs it (runserver + runwsgateway subprocesses) and headless Chromium.

``BROWSER_INTEGRATION=lambda`` starts the gateway with ``--lambda`` (the package's Lambda handler,
called in-process with API Gateway's events): the same pages through the Lambda proxy integration."""

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MANAGE = [sys.executable, str(ROOT / "example" / "manage.py")]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
LAMBDA_HANDLER = "django_aws_api_gateway_websockets.aws_lambda.handler"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port, process, log, timeout=60):
    """Wait for a spawned server (the machine may be busy); fail with its log if it dies or hangs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and process.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}; {log}:\n{log.read_text()}")


class Demo:
    #: the demo's database as `migrate` leaves it: migrated once per run (browser_session sets the
    #: path), copied for each demo, so every test still starts from a freshly migrated file
    migrated = None

    def __init__(self, tmp_path):
        self.django_port, self.gateway_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.django_port}"
        self.env = {
            **os.environ,
            "DEMO_DB": str(tmp_path / "demo.sqlite3"),
            "DEMO_DJANGO_PORT": str(self.django_port),
            # The package of this checkout, whatever another `pip install -e` points at.
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        }
        self.env.pop("DJANGO_SETTINGS_MODULE", None)
        if os.environ.get("BROWSER_INTEGRATION") == "lambda":  # $connect runs in the gateway's process
            self.env["DEMO_CACHE_DIR"] = str(tmp_path / "cache")
        self.logs = tmp_path
        self.django = self.gateway = None

    def used_tokens(self):
        """How many tokens were consumed by a connect (read from the demo's SQLite file)."""
        with closing(sqlite3.connect(self.env["DEMO_DB"])) as db:
            return db.execute(
                "select count(*) from django_aws_api_gateway_websockets_websockettoken where used"
            ).fetchone()[0]

    def connected_sessions(self):
        with closing(sqlite3.connect(self.env["DEMO_DB"])) as db:
            return db.execute(
                "select count(*) from django_aws_api_gateway_websockets_websocketsession where connected"
            ).fetchone()[0]

    def subscriptions(self):
        """{username: sorted channels} of the connected sockets, one entry per socket (a user
        with two sockets is listed twice)."""
        with closing(sqlite3.connect(self.env["DEMO_DB"])) as db:
            rows = db.execute(
                "select s.id, u.username, sub.channel"
                " from django_aws_api_gateway_websockets_websocketsession s"
                " join auth_user u on u.id = s.user_id"
                " left join django_aws_api_gateway_websockets_subscription sub on sub.connection_id = s.id"
                " where s.connected order by s.id, sub.channel"
            ).fetchall()
        sockets = {}
        for pk, username, channel in rows:
            sockets.setdefault((pk, username), []).extend([channel] if channel else [])
        return sorted((username, channels) for (_pk, username), channels in sockets.items())

    def manage(self, *args):
        return subprocess.run([*MANAGE, *args], env=self.env, check=True, capture_output=True, text=True).stdout

    def _spawn(self, name, *args):
        with open(self.logs / f"{name}.log", "a") as log:  # the child keeps its own descriptor
            return subprocess.Popen([*MANAGE, *args], env=self.env, stdout=log, stderr=subprocess.STDOUT)

    def migrate(self):
        if Demo.migrated is None:
            self.manage("migrate", "-v0")
            return
        if not Demo.migrated.exists():
            self.manage("migrate", "-v0")  # the first demo of the run migrates ...
            shutil.copyfile(self.env["DEMO_DB"], Demo.migrated)
        else:
            shutil.copyfile(Demo.migrated, self.env["DEMO_DB"])  # ... the others start from its copy

    def start(self):
        self.migrate()
        self.manage("setupDemo", "--django-url", self.url)
        self.django = self._spawn("django", "runserver", f"127.0.0.1:{self.django_port}", "--noreload")
        self.start_gateway()
        wait_for_port(self.django_port, self.django, self.logs / "django.log")

    def start_gateway(self):
        lambda_mode = ["--lambda", LAMBDA_HANDLER] if os.environ.get("BROWSER_INTEGRATION") == "lambda" else []
        self.gateway = self._spawn(
            "gateway", "runwsgateway", f"127.0.0.1:{self.gateway_port}", "--api", "demo", *lambda_mode
        )
        wait_for_port(self.gateway_port, self.gateway, self.logs / "gateway.log")

    def stop_gateway(self):
        self.gateway.send_signal(2)  # Ctrl-C: sockets closed, disconnects sent
        self.gateway.wait(timeout=20)

    def stop(self):
        for process in (self.gateway, self.django):
            if process and process.poll() is None:
                process.send_signal(2)
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()


@pytest.fixture(scope="session", autouse=True)
def migrated_demo_database(tmp_path_factory):
    """One `migrate` per run instead of one per test (the slowest part of starting a demo)."""
    Demo.migrated = tmp_path_factory.mktemp("demo-migrated") / "demo.sqlite3"
    yield
    Demo.migrated = None


@pytest.fixture
def demo(tmp_path):
    demo = Demo(tmp_path)
    try:  # a server that started is stopped even when the other one failed to
        demo.start()
        yield demo
    finally:
        demo.stop()


@pytest.fixture(scope="module")
def browser():
    # Module scope: Playwright's sync API keeps an event loop running in this thread until it
    # stops, which would break the asyncio tests that run after this module.
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def pages(browser, request):
    """Open logged-in pages: pages("demo") -> a Page in its own browser context."""
    opened, consoles = [], {}
    request.node.browser_consoles = consoles

    def open_page(username, demo, path="/"):
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(15000)
        opened.append((username, page))  # before any wait: a page that never opens is shown too
        console = []
        page.on("console", lambda message: console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: console.append(f"pageerror: {error}"))
        consoles[username] = console
        page.goto(f"{demo.url}/login/?next={path}")
        page.fill("#id_username", username)
        page.fill("#id_password", username)
        page.click("#login")
        # Longer than other waits: a first attempt that fails (a busy CI machine) is retried after backoff.
        page.wait_for_selector("#status[data-state=open]", timeout=30000)
        return page

    yield open_page
    if getattr(request.node, "failed", False):
        ARTIFACTS.mkdir(exist_ok=True)
        for username, page in opened:
            page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-{username}.png"), full_page=True)
    for _username, page in opened:
        page.context.close()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        item.failed = True
        # What the servers and the pages said, in the failure report itself (CI keeps no files).
        demo = item.funcargs.get("demo")
        if demo is not None:
            for log in sorted(demo.logs.glob("*.log")):
                report.sections.append((f"demo {log.name} (last 6,000 characters)", log.read_text()[-6000:]))
        for username, lines in getattr(item, "browser_consoles", {}).items():
            report.sections.append((f"browser console of {username}", "\n".join(lines[-100:])))
