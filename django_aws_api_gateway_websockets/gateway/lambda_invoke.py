"""The local gateway's ``--lambda`` mode: each route's integration is a Lambda handler called
in-process with the proxy events AWS builds (``aws_lambda.events``), as API Gateway invokes
a function for an ``AWS_PROXY`` integration (docs/lambda.md, docs/local-gateway.md).

The handler runs in a worker thread (it is synchronous Django), bounded by the integration
timeout; an exception or an answer that is not ``{statusCode, ...}`` is a failed integration
(502, as API Gateway answers a function error).
"""

import asyncio
import base64
import binascii
import logging
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from multidict import CIMultiDict

from ..aws_lambda.events import build_event
from .integration import NOT_FORWARDED, TIMED_OUT, UNREACHABLE, IntegrationResult

logger = logging.getLogger("django_aws_api_gateway_websockets.gateway")

LambdaHandler = Callable[[dict[str, Any], Any], Any]


@dataclass
class LambdaContext:
    """The ``context`` argument: what a handler reads of Lambda's (request id, time left)."""

    function_name: str
    deadline: float
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    memory_limit_in_mb: int = 1024

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def result_of(answer: Any) -> IntegrationResult:
    """API Gateway's reading of a function's answer: ``statusCode``, ``body`` (base64 with
    ``isBase64Encoded``), ``headers``; anything else is a function error (502)."""
    if not isinstance(answer, dict) or type(answer.get("statusCode")) is not int:
        logger.warning("the Lambda handler answered %s, not {statusCode, body}", type(answer).__name__)
        return IntegrationResult(UNREACHABLE)
    body = answer.get("body") or ""
    try:
        raw = base64.b64decode(body, validate=True) if answer.get("isBase64Encoded") else str(body).encode("utf-8")
    except (binascii.Error, ValueError):
        return IntegrationResult(UNREACHABLE)
    headers = answer.get("headers")
    return IntegrationResult(answer["statusCode"], raw, CIMultiDict(headers if isinstance(headers, Mapping) else {}))


async def invoke(
    handler: LambdaHandler,
    route_key: str,
    *,
    api_id: str,
    connection_id: str,
    stage: str,
    domain_name: str,
    source_ip: str,
    user_agent: str,
    connected_at_ms: int,
    timeout: float,
    browser_headers: Mapping[str, str] | None = None,
    query_string: str = "",
    body: bytes = b"",
    request_id: str = "",
) -> IntegrationResult:
    """One event to ``handler``; its answer as the integration's result."""
    headers = None
    if browser_headers is not None:
        headers = [(name, value) for name, value in browser_headers.items() if name.lower() not in NOT_FORWARDED]
    event = build_event(
        route_key,
        api_id=api_id,
        connection_id=connection_id,
        stage=stage,
        domain_name=domain_name,
        source_ip=source_ip,
        user_agent=user_agent,
        headers=headers,
        query=parse_qsl(query_string, keep_blank_values=True) if browser_headers is not None else None,
        body=body if route_key not in ("$connect", "$disconnect") else None,
        connected_at_ms=connected_at_ms,
        request_id=request_id or None,
    )
    context = LambdaContext(getattr(handler, "__name__", "handler"), time.monotonic() + timeout)
    try:
        answer = await asyncio.wait_for(asyncio.to_thread(handler, event, context), timeout)
    except TimeoutError:
        logger.warning("the Lambda handler timed out after %ss on %s", timeout, route_key)
        return IntegrationResult(TIMED_OUT, timed_out=True)
    except Exception:
        logger.exception("the Lambda handler raised on %s", route_key)
        return IntegrationResult(UNREACHABLE)
    return result_of(answer)
