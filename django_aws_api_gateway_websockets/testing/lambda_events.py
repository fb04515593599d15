"""``lambda_event``: the events API Gateway's Lambda proxy integration sends, for a record, to
drive a Lambda handler in a test (docs/testing.md, docs/lambda.md)."""

from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from ..aws_lambda.events import build_event

if TYPE_CHECKING:
    from ..models import ApiGateway


def lambda_event(
    gateway: "ApiGateway",
    route_key: str,
    connection_id: str,
    *,
    body: Any = None,
    headers: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    query: Mapping[str, str] | Iterable[tuple[str, str]] | None = None,
    source_ip: str = "127.0.0.1",
    **context: Any,
) -> dict[str, Any]:
    """The event of ``route_key`` (``$connect``, ``$default``, a custom key, ``$disconnect``)
    on connection ``connection_id`` of ``gateway``'s API. ``body``: a message's frame (text,
    bytes, or data sent as JSON). ``context``: more of ``aws_lambda.build_event``'s arguments
    (``domain_name``, ``user_agent``, ``disconnect_status_code``...)."""
    import json

    frame = body if body is None or isinstance(body, (str, bytes)) else json.dumps(body)
    return build_event(
        route_key,
        api_id=gateway.api_id,
        connection_id=connection_id,
        stage=gateway.stage_name,
        region=gateway.region or "us-east-1",
        source_ip=source_ip,
        headers=headers,
        query=query,
        body=frame,
        **context,
    )


@contextmanager
def keep_database_connections() -> Iterator[None]:
    """Run a Lambda handler inside a Django test: as Django's test ``Client`` does, the
    ``request_started``/``request_finished`` signals do not close the database connection (a
    test's transaction lives on it)."""
    from django.core.signals import request_finished, request_started
    from django.db import close_old_connections

    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)
