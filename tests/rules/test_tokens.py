"""WebSocketTokenView and the token rules (docs/security.md)."""

import json
import shutil
import subprocess
import threading
from pathlib import Path

import pytest
from django.db import connection
from django.test import Client

from django_aws_api_gateway_websockets import login, tokens
from django_aws_api_gateway_websockets.models import WebSocketSession, WebSocketToken

from ..helpers import connect


@pytest.fixture
def csrf_client(user):
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    return client


def post_with_csrf(client):
    client.get("/admin/login/")  # sets the csrftoken cookie
    token = client.cookies["csrftoken"].value
    return client.post("/api/ws-token/", headers={"X-CSRFToken": token})


@pytest.mark.django_db
def test_token_view_returns_raw_token_and_stores_only_its_hash(csrf_client, user):
    response = post_with_csrf(csrf_client)
    assert response.status_code == 200
    data = response.json()
    assert data["expires_in"] == 60
    row = WebSocketToken.objects.get()
    assert row.user == user
    assert row.token == tokens.hash_token(data["token"])
    assert data["token"] not in row.token
    # The Django session key is kept as a keyed hash only (the 4.1.0 release's, so upgrades verify).
    assert row.session_key == login.hash_session_key(csrf_client.session.session_key)
    assert csrf_client.session.session_key not in row.session_key and len(row.session_key) == 64


@pytest.mark.django_db
def test_token_view_requires_csrf(csrf_client):
    assert csrf_client.post("/api/ws-token/").status_code == 403
    assert not WebSocketToken.objects.exists()


@pytest.mark.django_db
def test_token_view_answers_an_anonymous_caller_a_json_401_before_the_csrf_check(caplog):
    """Issue #23: a page without login (or a user who logged out) was answered the CSRF check's
    HTML 403 "CSRF cookie not set", which hid the cause; the client's `unauthorized` needs a 401."""
    client = Client(enforce_csrf_checks=True)  # no csrftoken cookie, no header: as such a page
    with caplog.at_level("WARNING"):
        response = client.post("/api/ws-token/")
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"
    assert response.json() == {"error": "Not logged in."}
    # Django's log says "Unauthorized: /api/ws-token/", not "Forbidden (CSRF cookie not set.)".
    assert [(r.name, r.getMessage()) for r in caplog.records] == [("django.request", "Unauthorized: /api/ws-token/")]
    assert not WebSocketToken.objects.exists()


@pytest.mark.django_db
def test_token_view_answers_401_after_logout(csrf_client):
    assert post_with_csrf(csrf_client).status_code == 200
    csrf_client.logout()
    response = post_with_csrf(csrf_client)
    assert (response.status_code, response.json()) == (401, {"error": "Not logged in."})
    assert WebSocketToken.objects.count() == 1


@pytest.mark.django_db
def test_token_view_keeps_csrf_for_a_logged_in_caller_with_a_wrong_token(csrf_client):
    csrf_client.get("/admin/login/")
    response = csrf_client.post("/api/ws-token/", headers={"X-CSRFToken": "x" * 32})
    assert response.status_code == 403 and b"CSRF" in response.content
    assert not WebSocketToken.objects.exists()


@pytest.mark.django_db
def test_token_view_refuses_get_to_an_anonymous_caller_as_to_anyone():
    assert Client().get("/api/ws-token/").status_code == 405


@pytest.mark.django_db
def test_token_view_get_not_allowed(csrf_client):
    assert csrf_client.get("/api/ws-token/").status_code == 405


@pytest.mark.django_db
def test_token_view_expires_in_follows_setting(csrf_client, settings):
    settings.WEBSOCKETS = {"token_expiry_seconds": 30}
    assert post_with_csrf(csrf_client).json()["expires_in"] == 30


@pytest.mark.django_db
def test_token_issuance_is_rate_limited_per_user(csrf_client, settings):
    settings.WEBSOCKETS = {"token_rate_limit_per_minute": 2}
    assert post_with_csrf(csrf_client).status_code == 200
    assert post_with_csrf(csrf_client).status_code == 200
    assert post_with_csrf(csrf_client).status_code == 429
    assert WebSocketToken.objects.count() == 2


@pytest.mark.django_db
def test_inactive_user_token_is_invalid(user):
    raw = tokens.issue_token(user, "s")
    user.is_active = False
    user.save()
    assert tokens.consume_token(raw, "s") is None


@pytest.mark.django_db
def test_compat_classmethods(user):
    raw = WebSocketToken.generate_token(user, "sess")
    assert WebSocketToken.validate_and_consume(raw, "sess") == user
    assert WebSocketToken.validate_and_consume(raw, "sess") is None


@pytest.mark.django_db(transaction=True)
def test_two_concurrent_uses_exactly_one_wins(user):
    raw = tokens.issue_token(user, "sess")
    barrier = threading.Barrier(2)
    results = []

    def use():
        try:
            found = tokens.find_valid_token(raw, "sess")
            barrier.wait(timeout=5)  # both have validated before either consumes
            results.append(found is not None and tokens.mark_used(found))
        finally:
            connection.close()

    threads = [threading.Thread(target=use) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == [False, True]


@pytest.mark.django_db
def test_cleanup_removes_used_and_old_tokens(user):
    from datetime import timedelta

    fresh = tokens.issue_token(user, "s")
    used = tokens.issue_token(user, "s")
    tokens.consume_token(used, "s")
    old = tokens.issue_token(user, "s")
    row = WebSocketToken.objects.get(token=tokens.hash_token(old))
    WebSocketToken.objects.filter(pk=row.pk).update(created_at=row.created_at - timedelta(seconds=301))
    assert tokens.cleanup_tokens(300) == 2
    assert list(WebSocketToken.objects.values_list("token", flat=True)) == [tokens.hash_token(fresh)]


# The installed package's copy (nox runs the tests against the wheel, without a source tree).
CLIENT_JS = Path(login.__file__).parent / "static/django_aws_api_gateway_websockets/websocket-client.js"
UNAUTHORIZED_IN_NODE = """
const { WebSocketClient } = await import(process.argv[1]);
const [tokenUrl] = process.argv.slice(2);
const client = new WebSocketClient({ url: "ws://127.0.0.1:9/unused", tokenUrl, csrfToken: "none" });
const timer = setTimeout(() => { console.log(JSON.stringify({ timeout: true })); process.exit(1); }, 20000);
client.addEventListener("unauthorized", (event) => {
  clearTimeout(timer);
  console.log(JSON.stringify({ ...event.detail, stopped: client.stopped }));
});
client.connect();
"""


@pytest.mark.skipif(not shutil.which("node"), reason="node is not installed: the browser client is not run here")
@pytest.mark.django_db(transaction=True)
def test_browser_client_turns_the_anonymous_401_into_unauthorized_with_the_reason(live_server):
    """The real client module (run by node, whose fetch is a browser's) against the real view."""
    done = subprocess.run(
        [
            "node",
            "--input-type=module",
            "-e",
            UNAUTHORIZED_IN_NODE,
            CLIENT_JS.as_uri(),
            f"{live_server.url}/api/ws-token/",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert json.loads(done.stdout) == {"status": 401, "reason": "Not logged in.", "stopped": True}


@pytest.mark.django_db
def test_token_issued_before_logout_is_refused_after_logout(client, user, post_as_gateway):
    """Found in an adversarial review of the request path: it failed on the code it was written against."""
    # login.py closes the sockets of the Django session that logs out, but the unspent tokens of
    # that session stay valid: a cookieless connect (the execute-api domain) opens a socket as
    # the user after the logout.
    client.force_login(user)
    raw = tokens.issue_token(user, client.session.session_key)
    client.logout()
    cid, response = connect(post_as_gateway, f"ws_token={raw}")
    assert response.status_code == 401
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()


@pytest.mark.django_db
def test_token_issued_before_a_password_change_is_refused_after_it(user, post_as_gateway):
    """Found in an adversarial review of the request path: it failed on the code it was written against."""
    # The password change closes the user's sockets, but a token issued before it still opens a
    # new one, and that row stores the *new* auth hash: nothing ever closes it.
    browser = Client()
    browser.force_login(user)
    raw = tokens.issue_token(user, browser.session.session_key)
    user.set_password("stolen password replaced")
    user.save()
    cid, response = connect(post_as_gateway, f"ws_token={raw}")
    assert response.status_code == 401
    assert not WebSocketSession.objects.filter(connection_id=cid).exists()
