"""The demo in headless Chromium: the shipped browser client against Django + the local gateway."""

import pytest

pytestmark = pytest.mark.browser


def chat(page, text):
    page.fill("#text", text)
    page.press("#text", "Enter")


def test_two_browsers_chat(demo, pages):
    alice, bob = pages("demo", demo), pages("staff", demo)
    chat(alice, "hello from demo")
    bob.wait_for_selector("#log p.chat:has-text('[lobby] demo: hello from demo')")
    alice.wait_for_selector("#log p.chat:has-text('[lobby] demo: hello from demo')")
    # An avatar (the initial) and the time of the message, drawn from data attributes.
    line = bob.locator("#log p.chat:has-text('hello from demo')")
    assert line.get_attribute("data-initial") == "D"
    assert ":" in line.get_attribute("data-time")


def test_channel_switch(demo, pages):
    alice, bob = pages("demo", demo), pages("staff", demo)
    bob.click("button[data-room=python]")
    bob.wait_for_selector("#room:has-text('python')")
    chat(alice, "lobby only")
    alice.wait_for_selector("#log p:has-text('lobby only')")
    alice.click("button[data-room=python]")
    # The pane shows the room it is in: the lobby's messages go with the switch.
    alice.wait_for_selector("#log p:has-text('lobby only')", state="detached")
    chat(alice, "now in python")
    bob.wait_for_selector("#log p.chat:has-text('[python] demo: now in python')")
    assert bob.locator("#log p:has-text('lobby only')").count() == 0


def test_gateway_restart_reconnects_with_a_new_token_and_delivers_the_queued_message(demo, pages, tmp_path):
    alice, bob = pages("demo", demo), pages("staff", demo)
    used_before = demo.used_tokens()
    # Alice's token requests fail (network error) until Bob is back, so her queued message is
    # flushed only when someone is there to receive it; the client keeps retrying with backoff.
    alice.route("**/api/ws-token/", lambda route: route.abort())
    demo.stop_gateway()
    for page in (alice, bob):
        page.wait_for_selector("#status:not([data-state=open])")
    chat(alice, "sent while the gateway was down")  # queued by the client
    demo.start_gateway()
    bob.wait_for_selector("#status[data-state=open]", timeout=40000)
    alice.unroute("**/api/ws-token/")
    alice.wait_for_selector("#status[data-state=open]", timeout=40000)
    for page in (alice, bob):
        page.wait_for_selector("#log p.chat:has-text('[lobby] demo: sent while the gateway was down')")
    # Each browser reconnected with exactly one fresh token (attempts while the gateway was down
    # fetched tokens too, which simply expire unused).
    assert demo.used_tokens() == used_before + 2


def test_server_pushed_notification(demo, pages):
    alice, bob = pages("demo", demo), pages("staff", demo)
    out = demo.manage("sendNotification", "Deploy at five")
    assert "Delivered to 2 connection(s)" in out
    for page in (alice, bob):
        page.wait_for_selector("#log p.notification:has-text('Deploy at five')")


def test_staff_channel_is_guarded(demo, pages):
    staff = pages("staff", demo, path="/staff/")
    alice = pages("demo", demo)
    # The demo user may not join the staff channel, nor post to the staff route (permissions_required).
    alice.evaluate("window.demoClient.switchChannel('staff')")
    alice.wait_for_selector("#log p.error:has-text('Channel not allowed.')")  # the ChannelPermission rule
    alice.evaluate("window.demoClient.send({action: 'staff', handler: 'send_chat', text: 'sneaky'})")
    alice.wait_for_timeout(1000)
    chat(staff, "staff only news")
    staff.wait_for_selector("#log p.chat:has-text('[staff] staff: staff only news')")
    assert staff.locator("#log p:has-text('sneaky')").count() == 0
    assert alice.locator("#log p:has-text('staff only news')").count() == 0
    assert alice.locator("#room").inner_text() == "lobby"
    # Nor open the staff page.
    assert alice.goto(f"{demo.url}/staff/").status == 403


def test_admin_action_pushes_a_notification(demo, pages):
    alice, admin = pages("demo", demo), pages("staff", demo)
    admin.goto(f"{demo.url}/admin/chat/notification/add/")
    admin.fill("#id_text", "Coffee in the kitchen")
    admin.click("input[name=_save]")
    admin.check("input.action-select")
    admin.select_option("select[name=action]", "push")
    admin.click("button[name=index]")
    # Only Alice is still connected: the admin page replaced the staff user's chat page.
    admin.wait_for_selector("text='Coffee in the kitchen': delivered to 1, gone 0, failed 0")
    alice.wait_for_selector("#log p.notification:has-text('Coffee in the kitchen')")


def test_logged_out_client_stops_instead_of_retrying(demo, pages):
    alice = pages("demo", demo)
    alice.context.clear_cookies()  # the session ended (logged out elsewhere, expired)
    demo.stop_gateway()
    demo.start_gateway()
    # The reconnect's token request is refused: the client stops and says so.
    alice.wait_for_selector("#status:has-text('logged out')", timeout=40000)
    alice.wait_for_timeout(1500)
    assert alice.locator("#status").inner_text() == "logged out: reload the page"


def test_logging_out_in_another_tab_closes_this_tabs_socket(demo, pages):
    alice = pages("demo", demo)
    elsewhere = pages("demo", demo)  # the same user in another browser: another Django session
    other_tab = alice.context.new_page()  # same browser, same session as alice
    other_tab.goto(f"{demo.url}/")
    with other_tab.expect_navigation():
        other_tab.evaluate("document.getElementById('logout').submit()")
    # The server closed alice's socket at logout (DELETE @connections); her reconnect's token
    # request is refused, so the client stops and says so.
    alice.wait_for_selector("#status:has-text('logged out')", timeout=20000)
    assert elsewhere.locator("#status").get_attribute("data-state") == "open"
    assert demo.connected_sessions() == 1  # only the other browser's connection is still open
