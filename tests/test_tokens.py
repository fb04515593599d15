"""WebSocketTokenView and the token rules (docs/security.md)."""

import threading

import pytest
from django.db import connection
from django.test import Client

from django_aws_api_gateway_websockets import login, tokens
from django_aws_api_gateway_websockets.models import WebSocketToken


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
def test_token_view_requires_login():
    client = Client()
    assert client.post("/api/ws-token/").status_code == 403


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
