"""``Boto3Backend``: boto3's ``post_to_connection`` from a bounded pool of threads; one client per endpoint.

This module is named after the library it uses: its imports are absolute (``boto3`` and
``botocore`` are the libraries, never this module).
"""

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django_aws_api_gateway_websockets import aws
from django_aws_api_gateway_websockets.backends.base import (
    DELIVERED,
    Answer,
    BaseSendBackend,
    Code,
    Endpoint,
    Reachability,
    SendOptions,
    Sent,
)


class Boto3Backend(BaseSendBackend):
    """boto3's ``post_to_connection`` from a bounded pool of threads; one client per endpoint."""

    def _client(self, endpoint: Endpoint, options: SendOptions) -> Any:
        return aws.get_client(
            "apigatewaymanagementapi",
            region=endpoint.region,
            endpoint_url=endpoint.url,
            max_pool_connections=options.workers,
            timeouts=(options.connect_timeout, options.timeout),
        )

    def post_many(self, jobs: Sequence[tuple[str, Endpoint]], payload: bytes, options: SendOptions) -> dict[str, Code]:
        clients: dict[Endpoint, Any] = {}  # endpoint -> boto3 client, or the error that prevented one
        reach = Reachability()

        def post(job: tuple[str, Endpoint]) -> tuple[str, Code]:
            connection_id, endpoint = job
            client = clients.get(endpoint)
            if client is None:
                try:
                    client = clients[endpoint] = self._client(endpoint, options)
                except Exception as exc:
                    client = clients[endpoint] = type(exc).__name__
            if isinstance(client, str):
                return connection_id, client
            call = lambda: client.post_to_connection(ConnectionId=connection_id, Data=payload)  # noqa: E731
            return connection_id, self._retrying(call, endpoint, options, reach)

        workers = min(options.workers, len(jobs))
        if workers <= 1:
            return dict(map(post, jobs))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ws-send") as pool:
            return dict(pool.map(post, jobs))

    def delete(self, endpoint: Endpoint, connection_id: str, options: SendOptions) -> Code:
        client = self._client(endpoint, options)
        return self._retrying(
            lambda: client.delete_connection(ConnectionId=connection_id), endpoint, options, Reachability()
        )

    @staticmethod
    def _retrying(call: Callable[[], object], endpoint: Endpoint, options: SendOptions, reach: Reachability) -> Code:
        """``call`` under the retry policy: each botocore exception read as an ``Answer``."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            ConnectTimeoutError,
            EndpointConnectionError,
            HTTPClientError,
            ProxyConnectionError,
            ResponseStreamingError,
        )

        limiter = options.limiter(endpoint.region)

        def attempt() -> Answer:
            down = reach.check(endpoint)
            if down:
                return Answer(Sent.STOPPED, down)
            limiter_delay = limiter.delay()
            if limiter_delay:
                time.sleep(limiter_delay)
            try:
                call()
                return DELIVERED
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
                return Answer(Sent.ANSWERED, exc.response.get("Error", {}).get("Code", "ClientError"), status)
            except (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError) as exc:
                return Answer(Sent.NOT_SENT, type(exc).__name__)  # the request never left
            except (HTTPClientError, ResponseStreamingError) as exc:
                return Answer(Sent.MAYBE, type(exc).__name__)  # a read timeout, a closed connection
            except BotoCoreError as exc:  # before any request: no credentials, bad parameters
                return Answer(Sent.STOPPED, type(exc).__name__)

        return options.retry.run(attempt, endpoint, reach)
