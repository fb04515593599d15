"""The admin's WebSocket operations page in Chromium: live charts fed by the signals.
A screenshot is saved by every run: test-artifacts/operations-dashboard.png."""

import pytest

from .conftest import ARTIFACTS

pytestmark = pytest.mark.browser

OPS = "/admin/aws_websockets_operations/minutecounter/"


def chat(page, text):
    page.fill("#text", text)
    page.press("#text", "Enter")


def test_operations_dashboard_charts_live_activity(demo, pages):
    alice = pages("demo", demo)
    bob = pages("staff", demo)
    bob.click("button.room[data-room=python]")
    bob.wait_for_selector("button.room.active[data-room=python]")
    for text in ("one", "two", "three"):
        chat(alice, text)
    alice.wait_for_selector("#log p.chat:has-text('demo: three')")
    # A refused connect (no token: 401), as a misconfigured client would make.
    alice.evaluate("""() => new Promise((resolve) => {
        const config = JSON.parse(document.getElementById("ws-config").textContent);
        const socket = new WebSocket(config.url);
        socket.onclose = socket.onerror = () => resolve();
    })""")

    ops = bob.context.new_page()
    ops.goto(f"{demo.url}{OPS}")
    ops.wait_for_selector("#chart-open canvas")
    assert ops.locator(".ops-chart canvas").count() == 4
    ops.wait_for_function("Number(document.getElementById('tile-message').textContent) >= 3")
    assert int(ops.inner_text("#tile-open")) == 2
    assert int(ops.inner_text("#tile-connect")) >= 2
    assert int(ops.inner_text("#tile-rejected")) >= 1
    legend = ops.inner_text("#chart-open")
    assert "demo / lobby" in legend and "demo / python" in legend
    assert "token" in ops.inner_text("#chart-rejected")

    # Live: a third browser connects; the page picks it up on its next refresh, without a reload.
    generated = ops.get_attribute("#ops", "data-generated-at")
    carol = pages("demo", demo)
    ops.wait_for_function(f"document.getElementById('ops').dataset.generatedAt !== '{generated}'", timeout=15000)
    ops.wait_for_function("document.getElementById('tile-open').textContent === '3'", timeout=15000)
    assert carol
    ARTIFACTS.mkdir(exist_ok=True)
    ops.screenshot(path=str(ARTIFACTS / "operations-dashboard.png"), full_page=True)

    # Staff only: the demo user (not staff) is sent to the admin's login page, the data URL too.
    response = alice.goto(f"{demo.url}{OPS}data/")
    assert "/admin/login/" in alice.url
    assert response.status == 200  # the login page
