"""Connections end with the login that opened it (login.py, docs/security.md#sessions-end-with-the-login),
under every session engine Django ships: logging out closes exactly that login's sockets, also
after the session was written or its key cycled; a Django session that expired or was deleted
closes them at their next message.

Driven as a browser and API Gateway do: the test client logs in, fetches a token from
``WebSocketTokenView``, the gateway's ``$connect`` carries the session cookie (or not: the raw
``execute-api`` domain), pages write to the session; sockets are closed through the in-memory
send backend (``ws_capture``)."""

import json
from datetime import timedelta
from importlib import import_module
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth import logout
from django.contrib.sessions.models import Session
from django.core.management import call_command
from django.http import JsonResponse
from django.test import Client
from django.urls import path
from django.utils import timezone

from django_aws_api_gateway_websockets import login
from django_aws_api_gateway_websockets.models import WebSocketSession, WebSocketToken
from django_aws_api_gateway_websockets.testing import integration_headers
from django_aws_api_gateway_websockets.testing.client import new_connection_id

from ..urls import urlpatterns as project_urls


# Pages of the project that use the session (this module is the URLconf of its tests).
def write_to_session(request):
    request.session["cart"] = [*request.session.get("cart", []), "item"]  # a cart, a flash...
    return JsonResponse({})


def cycle_session_key(request):
    request.session.cycle_key()
    return JsonResponse({})


def log_out(request):
    logout(request)
    return JsonResponse({})


def forget_login_id(request):
    """The session as a login from before login ids left it."""
    request.session.pop(login.LOGIN_ID_SESSION_KEY)
    return JsonResponse({})


urlpatterns = [
    *project_urls,
    path("session/write/", write_to_session),
    path("session/cycle/", cycle_session_key),
    path("session/forget-login-id/", forget_login_id),
    path("logout/", log_out),
]

pytestmark = [pytest.mark.urls(__name__), pytest.mark.django_db(transaction=True)]

ENGINES = ["db", "cached_db", "cache", "file", "signed_cookies"]
SERVER_SIDE = ["db", "cached_db", "cache", "file"]  # a session that can be deleted without the browser


@pytest.fixture
def engine(request, settings, tmp_path):
    settings.SESSION_ENGINE = f"django.contrib.sessions.backends.{request.param}"
    settings.SESSION_FILE_PATH = str(tmp_path)  # the file engine's; the cache ones use the locmem default
    return request.param


def browser_logged_in(user):
    browser = Client()
    assert browser.login(username=user.get_username(), password="pw")
    return browser


def fetch_token(browser):
    response = browser.post("/api/ws-token/")
    assert response.status_code == 200, response.content
    return response.json()["token"]


def connect(browser, gateway, with_cookie=True):
    """A ``$connect`` with a token ``browser`` fetched; the request carries the browser's cookie
    (a shared cookie domain) or none (the raw execute-api domain). Returns the connection id."""
    raw = fetch_token(browser)
    cid = new_connection_id()
    sender = browser if with_cookie else Client()
    response = sender.post(f"/ws/connect?ws_token={raw}", headers=integration_headers(gateway, cid, route="connect"))
    assert response.status_code == 200, response.content
    return cid


def message(gateway, cid):
    return Client().post(
        "/ws/default",
        json.dumps({"handler": "whoami"}),
        content_type="application/json",
        headers=integration_headers(gateway, cid),
    )


def connected(cid):
    return WebSocketSession.objects.get(connection_id=cid).connected


def session_key(browser):
    return browser.cookies[settings.SESSION_COOKIE_NAME].value


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_logout_closes_that_logins_sockets_after_session_writes_and_a_cycled_key(engine, user, gateway, ws_capture):
    tab = browser_logged_in(user)
    other_device = browser_logged_in(user)  # the same user's other login
    with_cookie, without_cookie = connect(tab, gateway), connect(tab, gateway, with_cookie=False)
    elsewhere = connect(other_device, gateway)
    first_key = session_key(tab)
    for page in ("/session/write/", "/session/write/", "/session/cycle/", "/session/write/"):
        assert tab.post(page).status_code == 200
    assert session_key(tab) != first_key  # with signed cookies at every write: the cookie is the data
    row = WebSocketSession.objects.get(connection_id=with_cookie)
    assert row.login_hash == WebSocketSession.objects.get(connection_id=without_cookie).login_hash != ""
    assert row.login_hash != WebSocketSession.objects.get(connection_id=elsewhere).login_hash
    login_id = tab.session[login.LOGIN_ID_SESSION_KEY]
    assert row.login_hash == login.hash_login_id(login_id) and login_id not in row.login_hash

    assert tab.post("/logout/").status_code == 200

    assert sorted(ws_capture.deleted) == sorted([with_cookie, without_cookie])
    assert (connected(with_cookie), connected(without_cookie), connected(elsewhere)) == (False, False, True)
    assert message(gateway, with_cookie).status_code == 410
    assert message(gateway, elsewhere).status_code == 200  # its login and Django session go on


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_logout_spends_the_logins_unused_tokens_only(engine, user, gateway, ws_capture):
    tab, other_device = browser_logged_in(user), browser_logged_in(user)
    fetch_token(tab)
    fetch_token(other_device)
    assert tab.post("/session/write/").status_code == 200
    assert tab.post("/logout/").status_code == 200
    assert sorted(WebSocketToken.objects.values_list("used", flat=True)) == [False, True]


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_login_again_as_the_same_user_keeps_the_connection_of_that_login(engine, user, gateway, ws_capture):
    tab = browser_logged_in(user)  # the anonymous session's key was cycled by login()
    cid = connect(tab, gateway)
    assert tab.login(username=user.get_username(), password="pw")
    assert message(gateway, cid).status_code == 200  # its Django session is still there
    assert tab.post("/logout/").status_code == 200
    assert ws_capture.deleted == [cid] and connected(cid) is False


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_a_session_from_before_login_ids_gets_one_with_its_token(engine, user, gateway, ws_capture):
    tab = browser_logged_in(user)
    assert tab.post("/session/forget-login-id/").status_code == 200
    assert login.LOGIN_ID_SESSION_KEY not in tab.session
    # The token view writes the id (with signed cookies, a new cookie): the connect that
    # follows, with that cookie, finds its token.
    cid = connect(tab, gateway)
    assert tab.session.get(login.LOGIN_ID_SESSION_KEY)
    assert WebSocketSession.objects.get(connection_id=cid).login_hash == login.login_hash_of(tab.session)
    assert tab.post("/session/write/").status_code == 200
    assert tab.post("/logout/").status_code == 200
    assert ws_capture.deleted == [cid]


def test_signed_cookie_token_binding_survives_the_middlewares_second_signing(settings, user, gateway, monkeypatch):
    # The token view signs the written session itself; the middleware signs it again, possibly
    # in the next second: the cookie must stay the one the token was bound to.
    from django.core import signing

    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    tab = browser_logged_in(user)
    assert tab.post("/session/forget-login-id/").status_code == 200
    real = signing.TimestampSigner.timestamp
    calls = []

    def next_second_each_time(self):
        calls.append(1)
        return signing.b62_encode(int(signing.b62_decode(real(self))) + len(calls))

    monkeypatch.setattr(signing.TimestampSigner, "timestamp", next_second_each_time)
    raw = fetch_token(tab)
    monkeypatch.undo()
    assert len(calls) >= 1
    cid = new_connection_id()
    response = tab.post(f"/ws/connect?ws_token={raw}", headers=integration_headers(gateway, cid, route="connect"))
    assert response.status_code == 200, response.content


def test_rows_from_before_login_ids_still_close_by_session_key(user, gateway, ws_capture):
    tab = browser_logged_in(user)
    legacy = WebSocketSession.objects.create(
        connection_id=new_connection_id(),
        user=user,
        api_gateway=gateway,
        session_key_hash=login.hash_session_key(session_key(tab)),
    )
    other = WebSocketSession.objects.create(
        connection_id=new_connection_id(), user=user, api_gateway=gateway, session_key_hash=login.hash_session_key("x")
    )
    assert tab.post("/logout/").status_code == 200
    assert ws_capture.deleted == [legacy.connection_id]
    assert (connected(legacy.connection_id), connected(other.connection_id)) == (False, True)


# --- sessions that end without a logout ----------------------------------------------


def delete_django_session(key):
    """What "log out other devices" does: the session removed from its store."""
    import_module(settings.SESSION_ENGINE).SessionStore(session_key=key).delete()


@pytest.mark.parametrize("engine", SERVER_SIDE, indirect=True)
def test_deleted_session_refuses_the_next_message_and_closes_the_socket(engine, user, gateway, ws_capture):
    tab, other_device = browser_logged_in(user), browser_logged_in(user)
    cid, elsewhere = connect(tab, gateway), connect(other_device, gateway)
    assert message(gateway, cid).status_code == 200
    delete_django_session(session_key(tab))
    response = message(gateway, cid)
    assert response.status_code == 410, response.content
    assert connected(cid) is False and ws_capture.deleted == [cid]
    assert message(gateway, elsewhere).status_code == 200


@pytest.mark.parametrize("engine", ["db", "cached_db"], indirect=True)
def test_expired_database_session_refuses_the_next_message_before_and_after_clearsessions(
    engine, user, gateway, ws_capture
):
    tab, other_device = browser_logged_in(user), browser_logged_in(user)
    cid, cleared, same_login = connect(tab, gateway), connect(other_device, gateway), connect(other_device, gateway)
    Session.objects.filter(session_key=session_key(tab)).update(expire_date=timezone.now() - timedelta(seconds=1))
    assert message(gateway, cid).status_code == 410  # expired, not yet cleared
    Session.objects.filter(session_key=session_key(other_device)).update(
        expire_date=timezone.now() - timedelta(seconds=1)
    )
    call_command("clearsessions")
    assert not Session.objects.exists()
    assert message(gateway, cleared).status_code == 410  # cleared: the row is gone
    assert sorted(ws_capture.deleted) == sorted([cid, cleared])
    assert connected(same_login) is True  # no message yet: closed at its next one
    assert message(gateway, same_login).status_code == 410


def test_expired_file_session_refuses_the_next_message_once_clearsessions_removed_it(
    settings, tmp_path, user, gateway, ws_capture
):
    import os

    settings.SESSION_ENGINE = "django.contrib.sessions.backends.file"
    settings.SESSION_FILE_PATH = str(tmp_path)
    tab = browser_logged_in(user)
    cid = connect(tab, gateway)
    session_file = Path(import_module(settings.SESSION_ENGINE).SessionStore()._key_to_file(session_key(tab)))
    assert session_file.exists()
    long_ago = (timezone.now() - timedelta(seconds=settings.SESSION_COOKIE_AGE + 60)).timestamp()
    os.utime(session_file, (long_ago, long_ago))
    call_command("clearsessions")
    assert not session_file.exists()
    assert message(gateway, cid).status_code == 410
    assert ws_capture.deleted == [cid]


@pytest.mark.parametrize("use_tz", [True, False])
def test_expired_signed_cookie_refuses_the_next_message(use_tz, settings, user, gateway, ws_capture, monkeypatch):
    settings.USE_TZ = use_tz
    settings.SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"
    settings.SESSION_COOKIE_AGE = 600
    tab = browser_logged_in(user)
    cid = connect(tab, gateway)
    expires = WebSocketSession.objects.get(connection_id=cid).session_expires_at
    assert timezone.now() + timedelta(seconds=590) < expires <= timezone.now() + timedelta(seconds=600)
    assert message(gateway, cid).status_code == 200
    real_now = timezone.now
    monkeypatch.setattr(timezone, "now", lambda: real_now() + timedelta(seconds=601))  # the clock moves on
    assert message(gateway, cid).status_code == 410
    assert ws_capture.deleted == [cid]


@pytest.mark.parametrize("engine", ENGINES, indirect=True)
def test_anonymous_connections_have_no_session_to_check(engine, client, gateway, ws_capture):
    client.post("/session/write/")  # an anonymous Django session with a cookie
    cid = new_connection_id()
    response = client.post("/open/connect", headers=integration_headers(gateway, cid, route="connect"))
    assert response.status_code == 200, response.content
    row = WebSocketSession.objects.get(connection_id=cid)
    assert (row.login_hash, row.django_session_key, row.session_expires_at) == ("", "", None)
    delete_django_session(session_key(client))
    response = Client().post(
        "/open/default",
        json.dumps({"handler": "echo"}),
        content_type="application/json",
        headers=integration_headers(gateway, cid),
    )
    assert response.status_code == 200, response.content


@pytest.mark.parametrize("engine", ["db", "signed_cookies"], indirect=True)
def test_the_django_session_key_is_kept_only_while_connected(engine, user, gateway):
    tab = browser_logged_in(user)
    cid = connect(tab, gateway)
    row = WebSocketSession.objects.get(connection_id=cid)
    # Server-side sessions: the key, as Django keeps it; signed cookies: never (it is the data).
    assert row.django_session_key == (session_key(tab) if engine == "db" else "")
    assert (row.session_expires_at is None) == (engine == "db")
    response = Client().post("/ws/disconnect", headers=integration_headers(gateway, cid, route="disconnect"))
    assert response.status_code == 200
    row.refresh_from_db()
    assert (row.connected, row.django_session_key) == (False, "")
