"""The newcomer's origin trap in Chromium: a page whose origin is not trusted is refused; the
client stops after a few refusals with the status and the reason, and the gateway logs why."""

import json
import re

import pytest

from .conftest import ARTIFACTS, Demo

pytestmark = pytest.mark.browser


@pytest.fixture
def untrusted_demo(tmp_path):
    demo = Demo(tmp_path)
    demo.env["DEMO_TRUSTED_ORIGINS"] = "https://www.example.com"  # not the page's http://127.0.0.1:<port>
    try:
        demo.start()
        yield demo
    finally:
        demo.stop()


def test_refused_origin_stops_the_client_with_status_and_reason(untrusted_demo, browser):
    demo = untrusted_demo
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(30000)
    events = []
    page.on("console", lambda message: events.append(message.text))
    try:
        page.goto(f"{demo.url}/login/")
        page.fill("#id_username", "demo")
        page.fill("#id_password", "demo")
        page.click("#login")
        page.wait_for_selector("#status[data-state=refused]")
        page.wait_for_selector("#log p.error:has-text('Origin not allowed')")
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "newcomer-origin-refused.png"), full_page=True)
        status = page.inner_text("#status")
        assert "403" in status and f'add "{demo.url}" to CSRF_TRUSTED_ORIGINS' in status
        # It stopped: no more connects after the final error.
        assert page.evaluate("window.demoClient.stopped") is True
        refusals = page.evaluate("window.demoClient.refusals")
        assert refusals == 3
        page.wait_for_timeout(2500)
        log = (demo.logs / "gateway.log").read_text()
        # (the gateway's lines; with --lambda, Django's own log lines are in this log too)
        assert len(re.findall(r"connect rejected \S+ from ", log)) == 3, log
        assert 'Django answered 403: "Origin not allowed."' in log
        # Every error event carried a kind and a reason (never an empty object).
        details = [json.loads(text.split(" ", 2)[2]) for text in events if text.startswith("websocket error")]
        assert details and all(d["reason"] and d["kind"] == "refused" for d in details)
        assert details[-1]["final"] is True and details[-1]["status"] == 403
    finally:
        context.close()


def test_a_gateway_that_is_down_is_not_a_refusal(demo, pages):
    """The same client keeps retrying when the handshake fails because nobody refused it."""
    page = pages("demo", demo)
    demo.stop_gateway()
    page.wait_for_selector("#status:not([data-state=open])")
    page.wait_for_function("window.demoClient.handshakeFailures >= 3", timeout=30000)
    assert page.evaluate("window.demoClient.stopped") is False
    assert page.evaluate("window.demoClient.refusals") == 0
    demo.start_gateway()
    page.wait_for_selector("#status[data-state=open]", timeout=40000)
