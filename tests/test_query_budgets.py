"""SPEC §7 query budgets per event, pinned.

Counted with the gateway
record cache warm as it is after a process's first request.
"""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from django_aws_api_gateway_websockets import tokens
from django_aws_api_gateway_websockets.gateways import get_gateway
from django_aws_api_gateway_websockets.testing.client import new_connection_id


def own_queries(context):
    """Our queries: Django's own session and user loads are outside the budget."""
    return [q["sql"] for q in context.captured_queries if "django_session" not in q["sql"] and "auth_user" not in q["sql"]]


@pytest.fixture
def warm(gateway):
    get_gateway(gateway.api_id)


@pytest.mark.django_db
def test_message_costs_at_most_two_queries(post_as_gateway, session_row, warm):
    with CaptureQueriesContext(connection) as context:
        response = post_as_gateway("/ws/", session_row.connection_id, body={"handler": "whoami"})
    assert response.status_code == 200
    assert len(context.captured_queries) <= 2, [q["sql"] for q in context.captured_queries]


@pytest.mark.django_db
def test_disconnect_costs_at_most_two_queries(post_as_gateway, session_row, warm):
    with CaptureQueriesContext(connection) as context:
        response = post_as_gateway("/ws/", session_row.connection_id, route="disconnect")
    assert response.status_code == 200
    assert len(context.captured_queries) <= 2, [q["sql"] for q in context.captured_queries]


@pytest.mark.django_db
def test_connect_with_token_and_rate_limit_costs_at_most_five(client, user, post_as_gateway, warm):
    client.force_login(user)
    raw = tokens.issue_token(user, client.session.session_key)
    with CaptureQueriesContext(connection) as context:
        response = post_as_gateway("/ws/", new_connection_id(), route="connect", query=f"ws_token={raw}&channel=c")
    assert response.status_code == 200
    assert len(own_queries(context)) <= 5, own_queries(context)


@pytest.mark.django_db
def test_cold_gateway_cache_costs_one_more_query(post_as_gateway, session_row, gateway):
    with CaptureQueriesContext(connection) as context:
        post_as_gateway("/open/", new_connection_id(), route="connect")
    cold = len(context.captured_queries)
    with CaptureQueriesContext(connection) as context:
        post_as_gateway("/open/", new_connection_id(), route="connect")
    assert len(context.captured_queries) == cold - 1
