"""``AiohttpBackend`` (the default): aiohttp from one background event loop per process.

One connection pool per endpoint, kept and reused across sends of any size; honours
``HTTPS_PROXY``/``HTTP_PROXY``/``NO_PROXY`` and the CA bundle botocore uses (``AWS_CA_BUNDLE``,
the profile's ``ca_bundle``, else certifi's); connect and read timeouts; SigV4 with the
credentials botocore resolves (refreshable role credentials included).

This module is named after the library it uses: its imports are absolute (``import aiohttp`` is
the library, never this module).
"""

import asyncio
import re
import ssl
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

from django_aws_api_gateway_websockets import aws
from django_aws_api_gateway_websockets.backends.base import (
    Answer,
    BaseSendBackend,
    Code,
    Endpoint,
    Outcome,
    Reachability,
    SendOptions,
    Sent,
)
from django_aws_api_gateway_websockets.backends.pacing import SLEEP_THRESHOLD
from django_aws_api_gateway_websockets.backends.sigv4 import SigV4Signer, frozen_credentials
from django_aws_api_gateway_websockets.eventloop import BackgroundLoop

try:  # at import, not on the first send: the import costs a few hundred milliseconds
    import aiohttp
    from yarl import URL
except ImportError:  # pragma: no cover - a dependency
    aiohttp = URL = None  # type: ignore[assignment, misc]


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
        self, endpoint: Endpoint, pool: _Pool, options: SendOptions, signer: "SigV4Signer | str | None"
    ) -> None:
        self.endpoint, self.pool = endpoint, pool
        self.limiter = options.limiter(endpoint.region)
        self.paced = bool(options.rate)
        self.signer: SigV4Signer | None = None
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
        signer = self._signer(method, endpoint, payload) if endpoint.signed else None
        return _Route(endpoint, self._pool(endpoint, options), options, signer)

    def post_many(self, jobs: Sequence[tuple[str, Endpoint]], payload: bytes, options: SendOptions) -> dict[str, Code]:
        results: dict[str, Code] = {}
        try:
            self._loop.run(self._post_all(jobs, payload, options, results), timeout=options.deadline(len(jobs)))
        except TimeoutError:
            pass
        return {cid: results.get(cid, Outcome.uncertain("SendDeadline")) for cid, _ in jobs}

    def delete(self, endpoint: Endpoint, connection_id: str, options: SendOptions) -> Code:
        async def delete() -> Code:
            route = self._route("DELETE", endpoint, b"", options)
            return await self._call("DELETE", route, connection_id, None, options, Reachability())

        try:
            return self._loop.run(delete(), timeout=options.deadline(1))
        except TimeoutError:
            return Outcome.uncertain("SendDeadline")

    async def _post_all(
        self,
        jobs: Sequence[tuple[str, Endpoint]],
        payload: bytes,
        options: SendOptions,
        results: dict[str, Code],
    ) -> None:
        routes: dict[Endpoint, _Route] = {}
        reach = Reachability()
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
    def _signer(method: str, endpoint: Endpoint, payload: bytes) -> SigV4Signer | str:
        """The signer of one send's calls through ``endpoint``, or the error that prevents signing."""
        credentials, error = frozen_credentials()
        return error or SigV4Signer(credentials, endpoint.region, endpoint.host_header, payload, method)

    @staticmethod
    async def _call(
        method: str,
        route: _Route,
        connection_id: str,
        body: "aiohttp.BytesPayload | None",
        options: SendOptions,
        reach: Reachability,
    ) -> Code:
        if route.error is not None:
            return route.error
        endpoint, pool, signer = route.endpoint, route.pool, route.signer
        path = route.path(connection_id)
        url = URL(route.base + path, encoded=True)  # already quoted: not parsed for quoting again

        async def attempt() -> Answer:
            async with pool.semaphore:
                down = reach.check(endpoint)
                if down:
                    return Answer(Sent.STOPPED, down)
                if route.paced:
                    delay = route.limiter.delay()
                    if delay > SLEEP_THRESHOLD:
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
                        return Answer(Sent.ANSWERED, response.headers.get("x-amzn-ErrorType"), response.status)
                except Exception as exc:  # every client error: classified, never raised
                    return Answer(Sent.NOT_SENT if _not_sent(exc) else Sent.MAYBE, type(exc).__name__)

        return await options.retry.arun(attempt, endpoint, reach)

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
