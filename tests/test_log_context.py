"""log_context: the attributes every record of the package's loggers carries (docs/monitoring.md)."""

from django_aws_api_gateway_websockets.log_context import log_context


def test_the_four_stable_keys_are_always_there():
    assert log_context() == {"connection_id": "", "route": "", "reason": "", "user_id": None}
    assert log_context("c1", "connect", "origin", 7, channel="room") == {
        "connection_id": "c1",
        "route": "connect",
        "reason": "origin",
        "user_id": 7,
        "channel": "room",
    }
