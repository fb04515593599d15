"""The demo as a person sees it: presence, typing, the active room, the toast, the refusal page.
Screenshots are saved by every run in test-artifacts/ (demo-*.png)."""

import pytest

from .conftest import ARTIFACTS

pytestmark = pytest.mark.browser


def presence(page):
    return page.eval_on_selector_all("#presence li", "items => items.map((item) => item.textContent)")


def test_presence_typing_active_room_and_toast(demo, pages):
    alice = pages("demo", demo)
    alice.wait_for_function("document.querySelectorAll('#presence li').length === 1")
    assert presence(alice) == ["demo"]
    bob = pages("staff", demo)
    # Bob's arrival is announced to Alice (connect), Bob asks who is there once open.
    alice.wait_for_selector("#presence li[data-user=staff]")
    bob.wait_for_selector("#presence li[data-user=demo]")
    assert presence(bob) == ["demo", "staff"] and bob.inner_text("#presence-count") == "(2)"

    # Typing: Alice types, Bob sees it; the sender does not.
    alice.type("#text", "hel")
    bob.wait_for_selector("#typing:has-text('demo is typing')")
    assert alice.inner_text("#typing") == ""
    alice.type("#text", "lo")
    alice.press("#text", "Enter")
    bob.wait_for_selector("#log p.chat:has-text('[lobby] demo: hello')")
    bob.wait_for_selector("#typing:empty")  # a message ends the indicator

    # The active room is highlighted; presence follows a room change (leave and join).
    assert alice.get_attribute("button.room.active", "data-room") == "lobby"
    bob.click("button.room[data-room=python]")
    bob.wait_for_selector("button.room.active[data-room=python]")
    assert bob.get_attribute("button.room[data-room=lobby]", "aria-pressed") == "false"
    bob.wait_for_function("document.querySelectorAll('#presence li').length === 1")
    assert presence(bob) == ["staff"]
    alice.wait_for_function("document.querySelectorAll('#presence li').length === 1")
    assert presence(alice) == ["demo"]
    bob.click("button.room[data-room=lobby]")
    alice.wait_for_selector("#presence li[data-user=staff]")

    # A server-side notification: a toast and a log line.
    demo.manage("sendNotification", "Deploy at five")
    for page in (alice, bob):
        page.wait_for_selector("#toast.show:has-text('Deploy at five')")
        page.wait_for_selector("#log p.notification:has-text('Deploy at five')")
    ARTIFACTS.mkdir(exist_ok=True)
    alice.screenshot(path=str(ARTIFACTS / "demo-room-demo.png"), full_page=True)
    bob.screenshot(path=str(ARTIFACTS / "demo-room-staff.png"), full_page=True)

    # Leaving: Bob closes his page, Alice sees him go (disconnect).
    bob.context.close()
    alice.wait_for_function("document.querySelectorAll('#presence li').length === 1", timeout=20000)
    assert presence(alice) == ["demo"]


def test_staff_page_refusal_is_friendly(demo, pages):
    alice = pages("demo", demo)
    response = alice.goto(f"{demo.url}/staff/")
    assert response.status == 403
    alice.wait_for_selector("#refusal h1:has-text('This room is for staff')")
    assert "signed in as demo" in alice.inner_text("#refusal")
    ARTIFACTS.mkdir(exist_ok=True)
    alice.screenshot(path=str(ARTIFACTS / "demo-staff-refused.png"), full_page=True)
