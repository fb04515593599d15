"""One socket, many channels (issue #25), in Chromium against the demo servers: each demo page
holds its room, the notifications channel and the typing indicators on ONE socket; a room change
is a subscribe and an unsubscribe on that socket (no reconnect, no new token); after a forced
drop (the gateway restarted) every channel is subscribed again from the last number the page
delivered, so a room message and a notification sent meanwhile arrive, once each. The client's
bookkeeping frame by frame: tests/development/client_channels.test.mjs."""

import time

import pytest

from .test_demo_in_chromium import chat

pytestmark = pytest.mark.browser

SEND_TO_PYTHON = """
from django.utils import timezone
from django_aws_api_gateway_websockets.history import send_to_channel
send_to_channel("python", {"type": "chat", "user": "server", "text": "sent while you were away", "room": "python",
                           "at": timezone.now().isoformat()})
"""


def held(demo, expected, timeout=20):
    """Wait until the connected sockets hold ``expected`` (an unsubscribe is sent after the
    new room's answer: the server holds both for a moment); the last state when it never does."""
    deadline = time.monotonic() + timeout
    while (found := demo.subscriptions()) != expected and time.monotonic() < deadline:
        time.sleep(0.1)
    return found


def presence(page):
    return page.eval_on_selector_all("#presence li", "items => items.map((item) => item.textContent)")


def test_demo_pages_hold_rooms_notifications_and_typing_on_one_socket_across_a_drop(demo, pages):
    alice, bob = pages("demo", demo), pages("staff", demo)
    # Each page: one socket, holding its room and the notifications channel.
    in_lobby = [("demo", ["lobby", "notifications"]), ("staff", ["lobby", "notifications"])]
    assert held(demo, in_lobby) == in_lobby
    tokens = demo.used_tokens()

    # A room change is a subscribe then an unsubscribe on the same socket.
    bob.click("button.room[data-room=python]")
    bob.wait_for_selector("button.room.active[data-room=python]")
    alice.click("button.room[data-room=python]")
    alice.wait_for_selector("button.room.active[data-room=python]")
    bob.wait_for_function("document.querySelectorAll('#presence li').length === 2")
    in_python = [("demo", ["notifications", "python"]), ("staff", ["notifications", "python"])]
    assert held(demo, in_python) == in_python
    assert demo.used_tokens() == tokens  # no reconnect

    # Presence per channel with the project's member info (presence_info: a staff badge).
    alice.wait_for_selector("#presence li[data-user=staff][data-staff]")
    assert presence(alice) == ["demo", "staff"]
    assert alice.locator("#presence li[data-user=demo][data-staff]").count() == 0

    # Typing is a client event on the room (whisper): the others see it, the sender does not.
    alice.type("#text", "hel")
    bob.wait_for_selector("#typing:has-text('demo is typing')")
    assert alice.inner_text("#typing") == ""
    alice.type("#text", "lo")
    alice.press("#text", "Enter")
    bob.wait_for_selector("#log p.chat:has-text('[python] demo: hello')")

    # A notification: the notifications channel of the same socket.
    out = demo.manage("sendNotification", "Deploy at five")
    assert "Delivered to 2 connection(s)" in out
    for page in (alice, bob):
        page.wait_for_selector("#toast.show:has-text('Deploy at five')")

    # A forced drop: while the gateway is down, the room and the notifications channel each get
    # a message; back, each page subscribes again from the last number it delivered there.
    demo.stop_gateway()
    for page in (alice, bob):
        page.wait_for_selector("#status:not([data-state=open])")
    demo.manage("shell", "-c", SEND_TO_PYTHON)
    assert "Delivered to 0 connection(s)" in demo.manage("sendNotification", "Missed while away")
    demo.start_gateway()
    for page in (alice, bob):
        page.wait_for_selector("#status[data-state=open]", timeout=40000)
        page.wait_for_selector("#log p.chat:has-text('[python] server: sent while you were away')")
        page.wait_for_selector("#log p.notification:has-text('Missed while away')")
    assert held(demo, in_python) == in_python
    alice.wait_for_timeout(500)  # a duplicate would show by now
    for page in (alice, bob):
        assert page.locator("#log p:has-text('sent while you were away')").count() == 1
        assert page.locator("#log p:has-text('Missed while away')").count() == 1
        assert page.locator("#log p:has-text('Deploy at five')").count() == 1  # delivered before the drop: not again
        assert page.locator("#log p.chat:has-text('[python] demo: hello')").count() == 1
    assert demo.used_tokens() == tokens + 2  # one reconnect each, one socket each

    # After the reconnect the room still works both ways, typing included.
    chat(bob, "back again")
    alice.wait_for_selector("#log p.chat:has-text('[python] staff: back again')")
    bob.type("#text", "x")
    alice.wait_for_selector("#typing:has-text('staff is typing')")


def test_a_refused_subscribe_is_reported_and_changes_nothing(demo, pages):
    alice = pages("demo", demo)
    # The ChannelPermission rule keeps the demo user out of "staff": subscribe_error, onError.
    alice.evaluate(
        """() => {
      window.refused = [];
      window.demoClient.subscribe("staff", { onError: (detail) => window.refused.push(detail),
                                             onClose: (detail) => window.refused.push(detail) });
    }"""
    )
    alice.wait_for_function("window.refused.length === 2")
    error, closed = alice.evaluate("window.refused")
    assert error == {
        "kind": "subscribe",
        "channel": "staff",
        "status": 403,
        "reason": "not_allowed",
        "error": "Channel not allowed.",
    }
    assert closed == {"channel": "staff", "reason": "refused", "status": 403}
    assert held(demo, [("demo", ["lobby", "notifications"])]) == [("demo", ["lobby", "notifications"])]
    assert alice.evaluate("window.demoClient.isOpen") is True
    # The page's own room goes on.
    chat(alice, "still here")
    alice.wait_for_selector("#log p.chat:has-text('[lobby] demo: still here')")


REVOKE_STAFF = """
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
staff = get_user_model().objects.get(username="staff")
staff.is_superuser = False
staff.save()
staff.user_permissions.remove(Permission.objects.get(codename="use_staff_channel"))
"""


def test_access_revoked_ends_that_channel_only_and_the_socket_stays(demo, pages):
    lobby = pages("staff", demo)
    staff_page = pages("staff", demo, path="/staff/")
    lobby.evaluate(
        """() => new Promise((resolve) => {
      window.staffEvents = [];
      window.demoClient.subscribe("staff", {
        onSubscribed: (detail) => { window.staffEvents.push(["subscribed", detail.channel]); resolve(); },
        onClose: (detail) => window.staffEvents.push(["closed", detail]),
      });
    })"""
    )
    expected = [("staff", ["lobby", "notifications", "staff"]), ("staff", ["notifications", "staff"])]
    assert held(demo, expected) == expected
    tokens = demo.used_tokens()

    demo.manage("shell", "-c", REVOKE_STAFF)  # the rule no longer admits the staff user

    lobby.wait_for_function("window.staffEvents.length === 2")
    closed = lobby.evaluate("window.staffEvents[1]")
    assert closed[0] == "closed" and closed[1]["channel"] == "staff" and closed[1]["reason"] == "revoked"
    # The staff page's room (its connect channel) was taken: the page says so and keeps its socket.
    staff_page.wait_for_selector("#log p.error:has-text('You were removed from #staff')")
    remaining = [("staff", ["lobby", "notifications"]), ("staff", ["notifications"])]
    assert held(demo, remaining) == remaining
    for page in (lobby, staff_page):
        assert page.get_attribute("#status", "data-state") == "open"
    assert demo.used_tokens() == tokens  # nobody reconnected
    # Both sockets still get what their remaining channels carry.
    demo.manage("sendNotification", "Still connected")
    for page in (lobby, staff_page):
        page.wait_for_selector("#log p.notification:has-text('Still connected')")


def test_a_page_that_comes_back_gets_the_notifications_it_missed_and_no_others(demo, pages):
    """The position of every subscribed channel is kept per tab (sessionStorage): the page
    subscribes again with "after" and gets what was sent while it was away, once."""
    alice = pages("demo", demo)
    assert "Delivered to 1 connection(s)" in demo.manage("sendNotification", "Seen before leaving")
    alice.wait_for_selector("#log p.notification:has-text('Seen before leaving')")
    alice.goto(f"{demo.url}/admin/login/")  # another page of the site, in the same tab
    assert held(demo, []) == []
    demo.manage("sendNotification", "Sent while away")
    alice.goto(f"{demo.url}/")
    alice.wait_for_selector("#status[data-state=open]", timeout=30000)
    alice.wait_for_selector("#log p.notification:has-text('Sent while away')")
    alice.wait_for_timeout(500)  # a replay of the earlier one would show by now
    assert alice.locator("#log p.notification").all_inner_texts() == ["Sent while away"]
