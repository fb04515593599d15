"""Send backends: how ``@connections`` calls leave the process (``WEBSOCKETS["send_backend"]``).

In the spirit of Django's ``EMAIL_BACKEND``: the setting names a class, one instance of it per
process does every send. Three come with the package:

* ``AiohttpBackend`` (the default): aiohttp from one background event loop per process; one
  connection pool per endpoint, kept and reused across sends of any size; honours
  ``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` (``trust_env``) and the CA bundle botocore uses
  (``AWS_CA_BUNDLE``, the profile's ``ca_bundle``, else certifi's); connect and read timeouts;
  SigV4 with the credentials botocore resolves (refreshable role credentials included).
* ``Boto3Backend``: boto3's ``post_to_connection`` from a pool of threads, one client per endpoint.
* ``django_aws_api_gateway_websockets.testing.InMemoryBackend``: nothing leaves the process
  (tests; ``ManagementAPICapture`` installs it).

A backend implements ``post_many(jobs, payload, options)`` -> ``{connection_id: None | code}``
and ``delete(endpoint, connection_id, options)`` -> ``None | code`` (see ``BaseSendBackend``);
``transport`` has the retry rules they share.
"""

import asyncio
import math
import os
import re
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar
from urllib.parse import SplitResult, quote, urlsplit

from django.utils.module_loading import import_string

from . import aws, transport
from .conf import get_setting
from .eventloop import BackgroundLoop

if TYPE_CHECKING:
    from .models import ApiGateway

try:  # at import, not on the first send: the import costs a few hundred milliseconds
    import aiohttp
    from yarl import URL
except ImportError:  # pragma: no cover - a dependency
    aiohttp = URL = None  # type: ignore[assignment, misc]

DEFAULT_BACKEND = "django_aws_api_gateway_websockets.backends.AiohttpBackend"
GONE = transport.GONE
CONNECT_ATTEMPTS = 3  # a connection that cannot be opened: tried this often, then the endpoint is down

#: A call's outcome: ``None`` (delivered, or closed) or an error code (``"GoneException"``...).
Outcome = str | None


@dataclass(frozen=True)
class Endpoint:
    """A Management API endpoint: ``https://{api_id}.execute-api.{region}.amazonaws.com/{stage}``."""

    url: str
    region: str

    @classmethod
    def for_gateway(cls, gateway: "ApiGateway") -> Self:
        return cls(gateway.management_endpoint.rstrip("/"), aws.get_region_name(gateway.region_name))

    @cached_property
    def parts(self) -> SplitResult:
        return urlsplit(self.url)

    @cached_property
    def origin(self) -> tuple[str, str | None, int]:
        parts = self.parts
        return parts.scheme, parts.hostname, parts.port or (443 if parts.scheme == "https" else 80)

    @cached_property
    def host_header(self) -> str | None:
        parts = self.parts
        default = 443 if parts.scheme == "https" else 80
        return parts.hostname if parts.port in (None, default) else f"{parts.hostname}:{parts.port}"

    @cached_property
    def signed(self) -> bool:
        """AWS endpoints are signed; plain-http ones (the local gateway) are not."""
        return not aws.is_local_endpoint(self.url)

    @cached_property
    def base(self) -> str:
        """``scheme://host[:port]`` as in the URL."""
        return f"{self.parts.scheme}://{self.parts.netloc}"

    def path(self, connection_id: str) -> str:
        return f"{self.parts.path}/@connections/{quote(connection_id, safe='')}"


@dataclass(frozen=True)
class SendOptions:
    """The ``send_*`` settings of one send."""

    workers: int
    retries: int
    base_delay: float
    timeout: float
    connect_timeout: float
    rate: int
    processes: int
    rate_cache: str

    @classmethod
    def from_settings(cls, max_workers: int | None = None) -> Self:
        return cls(
            workers=max(1, max_workers or get_setting("send_max_workers")),
            retries=get_setting("send_max_retries"),
            base_delay=get_setting("send_retry_base_delay"),
            timeout=get_setting("send_timeout_seconds"),
            connect_timeout=get_setting("send_connect_timeout_seconds"),
            rate=get_setting("send_max_calls_per_second"),
            processes=get_setting("send_rate_processes"),
            rate_cache=get_setting("send_rate_limit_cache"),
        )

    def limiter(self, region: str) -> transport.RateLimiter | transport.CacheRateLimiter:
        return transport.limiter_for(region, self.rate, self.processes, self.rate_cache)

    def deadline(self, calls: int) -> float:
        """A bound on a whole send of ``calls`` calls (a backstop: each call has its own timeouts)."""
        per_call: float = (self.connect_timeout + self.timeout) * (self.retries + 1) + self.base_delay * 2 ** (
            self.retries + 1
        )
        pacing = calls / (self.rate / self.processes) if self.rate else 0.0
        waves = math.ceil(calls / self.workers)
        return per_call + pacing + waves * (self.connect_timeout + self.timeout) + 30.0


class BaseSendBackend:
    """What a send backend implements. One instance per process (``get_backend``)."""

    def post_many(
        self, jobs: Sequence[tuple[str, Endpoint]], payload: bytes, options: SendOptions
    ) -> dict[str, Outcome]:
        """POST ``payload`` to each ``(connection_id, Endpoint)`` of ``jobs``.

        Returns ``{connection_id: None}`` (delivered) or an error code: ``"GoneException"``, an
        AWS error code, a client error name (not delivered), or ``"Uncertain:<reason>"``.
        """
        raise NotImplementedError

    def delete(self, endpoint: Endpoint, connection_id: str, options: SendOptions) -> Outcome:
        """DELETE ``@connections/{id}``: ``None`` (closed), ``"GoneException"`` or an error code."""
        raise NotImplementedError

    def close(self) -> None:
        """Release pools and connections (tests, shutdown)."""


class _Reachability:
    """Per send: an endpoint that failed to connect ``CONNECT_ATTEMPTS`` times before any call of
    the send reached it is down, and the rest of the send's calls there fail at once (a
    blackholed endpoint costs a few connect timeouts, not one per call). Once it answered, each
    call has its own ``CONNECT_ATTEMPTS``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures: dict[Endpoint, int] = {}  # endpoint -> connect failures
        self.reached: set[Endpoint] = set()
        self.down: dict[Endpoint, str] = {}  # endpoint -> error code

    def check(self, endpoint: Endpoint) -> str | None:
        return self.down.get(endpoint)

    def failed(self, endpoint: Endpoint, code: str, attempts: int) -> bool:
        """Record a connect failure (the call's ``attempts``-th); True: give up the call."""
        with self.lock:
            count = self.failures[endpoint] = self.failures.get(endpoint, 0) + 1
            if count >= CONNECT_ATTEMPTS and endpoint not in self.reached:
                self.down[endpoint] = code
            return endpoint in self.down or attempts >= CONNECT_ATTEMPTS

    def connected(self, endpoint: Endpoint) -> None:
        if endpoint not in self.reached:
            with self.lock:
                self.reached.add(endpoint)


def _credentials(endpoint: Endpoint) -> tuple[Any, str | None]:
    """``(frozen credentials, None)`` or ``(None, error code)`` for a signed endpoint."""
    try:
        credentials = aws.get_credentials()
        if credentials is None:
            return None, "NoCredentialsError"
        return credentials.get_frozen_credentials(), None
    except Exception as exc:  # a role that cannot be refreshed, a broken profile...
        return None, type(exc).__name__


class _Pool:
    """One endpoint's aiohttp session (its connection pool) and in-flight bound, in the loop thread.

    What every call through it shares is set on the session once (timeouts, proxy, the headers
    aiohttp should not add), so a call passes only its URL, body and signature headers.
    """

    def __init__(self, endpoint: Endpoint, options: SendOptions) -> None:
        connector = aiohttp.TCPConnector(
            limit=0,  # the semaphore below bounds the connections: never a wait inside aiohttp
            ttl_dns_cache=300,
            keepalive_timeout=30,
            ssl=self.ssl_context() if endpoint.parts.scheme == "https" else True,
        )
        # HTTPS_PROXY / HTTP_PROXY / NO_PROXY, read when the pool is made, as botocore reads them
        # when a client is made (aiohttp's trust_env would look them up again on every request);
        # the session's default proxy, so no call passes it.
        proxy, proxy_auth = self.env_proxy(endpoint)
        self.timeout = self.client_timeout(options)
        self.session = aiohttp.ClientSession(
            connector=connector,
            timeout=self.timeout,
            proxy=proxy,
            proxy_auth=proxy_auth,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            # Headers API Gateway does not need: less to build and send per call.
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        )
        self.workers = options.workers
        self.semaphore = asyncio.Semaphore(options.workers)

    @staticmethod
    def env_proxy(endpoint: Endpoint) -> tuple["URL | None", "aiohttp.BasicAuth | None"]:
        from aiohttp.helpers import get_env_proxy_for_url

        try:
            return get_env_proxy_for_url(URL(endpoint.url))
        except LookupError:
            return None, None

    @staticmethod
    def ssl_context() -> ssl.SSLContext:
        """Verify as boto3 does: AWS_CA_BUNDLE / the profile's ca_bundle, else botocore's default bundle."""
        return ssl.create_default_context(cafile=aws.ca_bundle())

    @staticmethod
    def client_timeout(options: SendOptions) -> "aiohttp.ClientTimeout":
        return aiohttp.ClientTimeout(
            total=options.connect_timeout + options.timeout,
            connect=options.connect_timeout,  # TCP, proxy CONNECT and TLS handshake
            sock_read=options.timeout,
        )

    def adjust(self, options: SendOptions) -> "aiohttp.ClientTimeout | None":
        """Once per send: the in-flight bound for ``options``; the timeout its calls must pass
        (``None``: the session's, the same as the options')."""
        if options.workers != self.workers:
            self.workers, self.semaphore = options.workers, asyncio.Semaphore(options.workers)
        timeout = self.client_timeout(options)
        return None if timeout == self.timeout else timeout


# Connection ids needing no percent-encoding but ``=`` (API Gateway's are base64: letters,
# digits, ``=``, sometimes ``+`` or ``/``, which take urllib's ``quote``).
_PLAIN_ID = re.compile(r"[A-Za-z0-9_.~=-]*").fullmatch


class _Route:
    """What every call of one send through one endpoint shares, worked out once per send:
    the pool, the rate limiter, the SigV4 signer (or the error that prevents signing), the
    URL's fixed part and the request's keyword arguments."""

    __slots__ = ("endpoint", "pool", "limiter", "signer", "error", "prefix", "base", "kwargs", "paced")

    def __init__(
        self, endpoint: Endpoint, pool: _Pool, options: SendOptions, signer: "transport.SigV4Signer | str | None"
    ) -> None:
        self.endpoint, self.pool = endpoint, pool
        self.limiter = options.limiter(endpoint.region)
        self.paced = bool(options.rate)
        self.signer: transport.SigV4Signer | None = None
        self.error: str | None = None
        if isinstance(signer, str):
            self.error = signer
        else:
            self.signer = signer
        self.prefix = f"{endpoint.parts.path}/@connections/"
        self.base = endpoint.base
        timeout = pool.adjust(options)
        # Never follow a redirect (a 307 would post the frame again); a 3xx is an error code.
        self.kwargs: dict[str, Any] = {"allow_redirects": False}
        if timeout is not None:
            self.kwargs["timeout"] = timeout

    def path(self, connection_id: str) -> str:
        if _PLAIN_ID(connection_id):
            return self.prefix + connection_id.replace("=", "%3D")
        return self.prefix + quote(connection_id, safe="")


def _not_sent(exc: BaseException) -> bool:
    """The request provably never left: the connection was not opened."""
    return isinstance(exc, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError))


class AiohttpBackend(BaseSendBackend):
    """aiohttp from one background event loop per process; one pool per endpoint, reused."""

    def __init__(self) -> None:
        if aiohttp is None:  # pragma: no cover
            raise ImportError("AiohttpBackend needs aiohttp (a dependency of the package).")
        self._loop = BackgroundLoop("ws-send-loop")
        # (scheme, host, port) -> _Pool; touched only from the loop thread
        self._pools: dict[tuple[str, str | None, int], _Pool] = {}
        self._loop.on_new_loop(self._pools.clear)  # after fork: the parent's pools are not ours

    def pool_count(self, endpoint: Endpoint | None = None) -> int:
        """Pools kept (for ``endpoint``'s origin only, when given): one per endpoint."""
        if endpoint is None:
            return len(self._pools)
        return sum(1 for origin in list(self._pools) if origin == endpoint.origin)

    def _pool(self, endpoint: Endpoint, options: SendOptions) -> _Pool:
        pool = self._pools.get(endpoint.origin)
        if pool is None or pool.session.closed:
            pool = self._pools[endpoint.origin] = _Pool(endpoint, options)
        return pool

    def _route(self, method: str, endpoint: Endpoint, payload: bytes, options: SendOptions) -> _Route:
        signer = self._signer(method, endpoint, payload, {}) if endpoint.signed else None
        return _Route(endpoint, self._pool(endpoint, options), options, signer)

    def post_many(
        self, jobs: Sequence[tuple[str, Endpoint]], payload: bytes, options: SendOptions
    ) -> dict[str, Outcome]:
        results: dict[str, Outcome] = {}
        try:
            self._loop.run(self._post_all(jobs, payload, options, results), timeout=options.deadline(len(jobs)))
        except TimeoutError:
            pass
        return {cid: results.get(cid, transport.uncertain("SendDeadline")) for cid, _ in jobs}

    def delete(self, endpoint: Endpoint, connection_id: str, options: SendOptions) -> Outcome:
        async def delete() -> Outcome:
            route = self._route("DELETE", endpoint, b"", options)
            return await self._call("DELETE", route, connection_id, None, options, _Reachability())

        try:
            return self._loop.run(delete(), timeout=options.deadline(1))
        except TimeoutError:
            return transport.uncertain("SendDeadline")

    async def _post_all(
        self,
        jobs: Sequence[tuple[str, Endpoint]],
        payload: bytes,
        options: SendOptions,
        results: dict[str, Outcome],
    ) -> None:
        routes: dict[Endpoint, _Route] = {}
        reach = _Reachability()
        # One body for every call: aiohttp reuses a bytes payload (nothing is consumed), so no
        # per-call lookup in its payload registry.
        body = aiohttp.BytesPayload(payload)
        call = self._call
        pending = iter(jobs)  # shared by the workers: one loop thread, so each next() is atomic

        async def worker() -> None:
            for connection_id, endpoint in pending:
                route = routes.get(endpoint)
                if route is None:
                    route = routes[endpoint] = self._route("POST", endpoint, payload, options)
                results[connection_id] = await call("POST", route, connection_id, body, options, reach)

        # ``workers`` coroutines, not one task per connection: a 10,000-connection send makes 128.
        await asyncio.gather(*(worker() for _ in range(min(options.workers, len(jobs)))))

    @staticmethod
    def _signer(
        method: str,
        endpoint: Endpoint,
        payload: bytes,
        signers: dict[tuple[str, Endpoint], transport.SigV4Signer | str],
    ) -> transport.SigV4Signer | str:
        key = (method, endpoint)
        if key not in signers:
            credentials, error = _credentials(endpoint)
            signers[key] = error or transport.SigV4Signer(
                credentials, endpoint.region, endpoint.host_header, payload, method
            )
        return signers[key]

    @staticmethod
    async def _call(
        method: str,
        route: _Route,
        connection_id: str,
        body: "aiohttp.BytesPayload | None",
        options: SendOptions,
        reach: _Reachability,
    ) -> Outcome:
        if route.error is not None:
            return route.error
        endpoint, pool, signer = route.endpoint, route.pool, route.signer
        path = route.path(connection_id)
        url = URL(route.base + path, encoded=True)  # already quoted: not parsed for quoting again
        code: Outcome
        code, connect_failures = "LimitExceededException", 0
        for attempt in range(options.retries + 1):
            connect_failed = False
            async with pool.semaphore:
                down = reach.check(endpoint)
                if down:
                    return down
                if route.paced:
                    delay = route.limiter.delay()
                    if delay > transport.SLEEP_THRESHOLD:
                        await asyncio.sleep(delay)
                try:
                    async with pool.session.request(
                        method,
                        url,
                        data=body,
                        headers=signer.headers(path) if signer is not None else None,
                        **route.kwargs,
                    ) as response:
                        await response.read()  # to the end: a cut body is an error, not a success
                        status = response.status
                        if 200 <= status < 300:
                            code, retry = None, False
                        else:
                            code, retry = transport.status_outcome(status, response.headers.get("x-amzn-ErrorType", ""))
                    reach.connected(endpoint)
                except Exception as exc:  # every client error: classified, never raised
                    if not _not_sent(exc):
                        return transport.uncertain(type(exc).__name__)
                    code, connect_failures, connect_failed = type(exc).__name__, connect_failures + 1, True
                    if reach.failed(endpoint, code, connect_failures):
                        return code
                    retry = True
            if not retry or attempt >= options.retries:
                return code
            if not connect_failed:  # a 429/503 answer, not a connection that failed
                transport.count_throttled_retry()
            await asyncio.sleep(transport._backoff(options.base_delay, attempt))
        return code

    def close(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        if pools:

            async def close_all() -> None:
                for pool in pools:
                    await pool.session.close()

            try:
                self._loop.run(close_all(), timeout=10)
            except Exception:  # pragma: no cover - closing is best effort
                pass


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

    def post_many(
        self, jobs: Sequence[tuple[str, Endpoint]], payload: bytes, options: SendOptions
    ) -> dict[str, Outcome]:
        clients: dict[Endpoint, Any] = {}  # endpoint -> boto3 client, or the error that prevented one
        reach = _Reachability()

        def post(job: tuple[str, Endpoint]) -> tuple[str, Outcome]:
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

    def delete(self, endpoint: Endpoint, connection_id: str, options: SendOptions) -> Outcome:
        client = self._client(endpoint, options)
        return self._retrying(
            lambda: client.delete_connection(ConnectionId=connection_id), endpoint, options, _Reachability()
        )

    @staticmethod
    def _retrying(
        call: Callable[[], object], endpoint: Endpoint, options: SendOptions, reach: _Reachability
    ) -> Outcome:
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
        code: Outcome
        code, connect_failures = "LimitExceededException", 0
        for attempt in range(options.retries + 1):
            if reach.check(endpoint):
                return reach.check(endpoint)
            time.sleep(limiter.delay())
            try:
                call()
                reach.connected(endpoint)
                return None
            except ClientError as exc:
                reach.connected(endpoint)
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 400)
                error = exc.response.get("Error", {}).get("Code", "ClientError")
                code, retry = transport.status_outcome(status, error)
                if retry and attempt < options.retries:
                    transport.count_throttled_retry()
            except (EndpointConnectionError, ConnectTimeoutError, ProxyConnectionError) as exc:
                code, connect_failures = type(exc).__name__, connect_failures + 1  # the request never left
                retry = not reach.failed(endpoint, code, connect_failures)
            except (HTTPClientError, ResponseStreamingError) as exc:
                return transport.uncertain(type(exc).__name__)  # a read timeout, a closed connection: maybe applied
            except BotoCoreError as exc:  # before any request: no credentials, bad parameters
                return type(exc).__name__
            if not retry or attempt >= options.retries:
                return code
            time.sleep(transport._backoff(options.base_delay, attempt))
        return code


# One instance per backend class per process.
_instances: dict[str, BaseSendBackend] = {}
_instances_lock = threading.Lock()
_override: list[BaseSendBackend] = []  # backends installed by ManagementAPICapture (innermost last)


def backend_path() -> str:
    """The configured backend's dotted path (``send_backend``, else the deprecated ``send_transport``)."""
    path: str = get_setting("send_backend")
    if path == DEFAULT_BACKEND:
        legacy = get_setting("send_transport")
        if legacy:
            if legacy not in transport.TRANSPORT_BACKENDS:
                raise ValueError(
                    f'WEBSOCKETS["send_transport"] (deprecated: use "send_backend") must be one of '
                    f"{', '.join(transport.TRANSPORTS)}, not {legacy!r}"
                )
            path = transport.TRANSPORT_BACKENDS[legacy]
    return path


def get_backend() -> BaseSendBackend:
    """The process's instance of the configured backend (or the one a test capture installed)."""
    if _override:
        return _override[-1]
    path = backend_path()
    backend = _instances.get(path)
    if backend is None:
        with _instances_lock:
            backend = _instances.get(path)
            if backend is None:
                backend = _instances[path] = import_string(path)()
    return backend


B = TypeVar("B", bound=BaseSendBackend)


class use_backend(Generic[B]):
    """Context manager: every send in this process goes through ``backend`` meanwhile."""

    def __init__(self, backend: B) -> None:
        self.backend = backend

    def __enter__(self) -> B:
        _override.append(self.backend)
        return self.backend

    def __exit__(self, *exc_info: object) -> None:
        _override.remove(self.backend)


def reset_backends() -> None:
    """Close and forget every backend instance (settings changed, tests)."""
    with _instances_lock:
        instances = list(_instances.values())
        _instances.clear()
    for backend in instances:
        backend.close()


def _forget_after_fork() -> None:
    global _instances_lock
    _instances_lock = threading.Lock()
    # The instances stay: their loop and pools renew themselves in the child (BackgroundLoop).


os.register_at_fork(after_in_child=_forget_after_fork)
