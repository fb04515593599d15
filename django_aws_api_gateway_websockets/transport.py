"""How ``@connections`` POSTs travel: interchangeable transports for the fan-out engine.

``AsyncTransport`` (the default, ``"native"``) sends the HTTP requests from one event loop in
a background thread over keep-alive connections, with the package's small HTTP/1.1 client
(``http11``) or, as ``"aiohttp"``, aiohttp's; each request is signed with SigV4
(``SigV4Signer``) using the credentials the boto3 client resolved, and plain-http endpoints
(the local gateway) are not signed. ``ThreadTransport`` (``"threads"``) calls boto3's
``post_to_connection`` from a bounded thread pool: about 2 ms of CPU per call in botocore,
against about 65 µs for the native client (see ``bench/README.md``).

All return, per connection id, ``None`` (delivered) or the AWS error code, retrying
throttled calls (429) with jittered exponential backoff and keeping under a calls-per-second
ceiling.
"""

import asyncio
import hashlib
import hmac
import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote, urlsplit

from botocore.exceptions import BotoCoreError, ClientError
from botocore.utils import normalize_url_path

try:  # at import, not on the first send: the import costs a few hundred milliseconds
    import aiohttp
except ImportError:  # pragma: no cover - a dependency; the other transports work without it
    aiohttp = None

from . import aws
from .eventloop import new_event_loop
from .http11 import HTTP11Client

GONE = "GoneException"
THROTTLED = {"LimitExceededException", "TooManyRequestsException", "ThrottlingException"}


def _backoff(base_delay, attempt):
    # Full jitter: retries of many concurrent senders spread over the window.
    return random.uniform(0, base_delay * 2**attempt)


class RateLimiter:
    """Spaces calls so that all workers together stay under ``rate`` calls per second."""

    def __init__(self, rate):
        self.interval = 1.0 / rate if rate else 0.0
        self.next_slot = time.monotonic()
        self.lock = threading.Lock()

    def delay(self):
        """Seconds the caller must wait before its call (0 when under the ceiling)."""
        if not self.interval:
            return 0.0
        with self.lock:
            now = time.monotonic()
            slot = max(self.next_slot, now)
            self.next_slot = slot + self.interval
        return slot - now


class ThreadTransport:
    """boto3 ``post_to_connection`` from a bounded pool of threads."""

    def __init__(self, workers, retries, base_delay, limiter):
        self.workers, self.retries, self.base_delay, self.limiter = workers, retries, base_delay, limiter

    def post_many(self, jobs, payload):
        """``jobs``: ``[(connection_id, client)]`` -> ``{connection_id: None | error code}``."""

        def post(job):
            connection_id, client = job
            return connection_id, self._post(client, connection_id, payload)

        if self.workers == 1 or len(jobs) == 1:
            return dict(map(post, jobs))
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ws-send") as pool:
            return dict(pool.map(post, jobs))

    def _post(self, client, connection_id, payload):
        for attempt in range(self.retries + 1):
            time.sleep(self.limiter.delay())
            try:
                client.post_to_connection(ConnectionId=connection_id, Data=payload)
                return None
            except ClientError as exc:
                code = exc.response.get("Error", {}).get("Code", "ClientError")
                if code in THROTTLED and attempt < self.retries:
                    time.sleep(_backoff(self.base_delay, attempt))
                    continue
                return code
            except BotoCoreError as exc:
                return type(exc).__name__
        return "LimitExceededException"


class _Loop:
    """One event loop in a daemon thread, shared by every AsyncTransport of the process,
    so keep-alive connections outlive a single send."""

    _instance = None
    _lock = threading.Lock()

    def __init__(self):
        self.loop = new_event_loop()
        self.native = HTTP11Client(self.loop)
        self.sessions = {}  # connection limit -> aiohttp.ClientSession
        threading.Thread(target=self.loop.run_forever, name="ws-send-loop", daemon=True).start()

    @classmethod
    def get(cls):
        with cls._lock:
            if cls._instance is None:
                cls._instance = cls()
            return cls._instance

    def run(self, coroutine):
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def aiohttp_session(self, limit):
        session = self.sessions.get(limit)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(limit=limit, ttl_dns_cache=300, keepalive_timeout=30)
            session = aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30))
            self.sessions[limit] = session
        return session


class SigV4Signer:
    """AWS Signature Version 4 for many POSTs of one payload through one endpoint.

    The same signature botocore's ``SigV4Auth`` computes (tests compare them), with what
    does not change between the calls of a send worked out once: the payload's SHA-256, the
    host, the signing key (derived once a day instead of by four HMACs per call), the
    timestamp (once a second). About 10 µs per call instead of about 100 µs
    (``bench/percall.py``); at 10,000 calls that is a second of CPU saved.
    """

    SERVICE = "execute-api"

    def __init__(self, credentials, region, host, payload):
        self.credentials, self.region, self.host = credentials, region, host
        self.payload_hash = hashlib.sha256(payload).hexdigest()
        token = credentials.token
        self.signed_headers = "host;x-amz-date" + (";x-amz-security-token" if token else "")
        self.token_line = f"x-amz-security-token:{token}\n" if token else ""
        self.second, self.stamp = None, None
        self.day, self.key, self.scope = None, None, None

    def _timestamp(self, now):
        second = int(now)
        if second != self.second:
            self.second, self.stamp = second, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            day = self.stamp[:8]
            if day != self.day:
                key = f"AWS4{self.credentials.secret_key}".encode()
                for part in (day, self.region, self.SERVICE, "aws4_request"):
                    key = hmac.new(key, part.encode(), hashlib.sha256).digest()
                self.day, self.key = day, key
                self.scope = f"{day}/{self.region}/{self.SERVICE}/aws4_request"
        return self.stamp

    def headers(self, path, now=None):
        """The ``X-Amz-Date``, ``X-Amz-Security-Token`` and ``Authorization`` headers for ``POST path``."""
        stamp = self._timestamp(time.time() if now is None else now)
        canonical = (
            f"POST\n{quote(normalize_url_path(path), safe='/~')}\n\n"
            f"host:{self.host}\nx-amz-date:{stamp}\n{self.token_line}\n"
            f"{self.signed_headers}\n{self.payload_hash}"
        )
        string_to_sign = (
            f"AWS4-HMAC-SHA256\n{stamp}\n{self.scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        )
        signature = hmac.new(self.key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        headers = {"X-Amz-Date": stamp}
        if self.credentials.token:
            headers["X-Amz-Security-Token"] = self.credentials.token
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.credentials.access_key}/{self.scope}, "
            f"SignedHeaders={self.signed_headers}, Signature={signature}"
        )
        return headers


class _Endpoint:
    """A Management API endpoint during one send: where to POST and how to sign."""

    def __init__(self, client, payload):
        self.client = client
        self.url = client.meta.endpoint_url.rstrip("/")
        parts = urlsplit(self.url)
        self.scheme, self.host, self.path = parts.scheme, parts.hostname, parts.path
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.signer, self.error = None, None
        if not aws.is_local_endpoint(self.url):
            # The credentials the boto3 client resolved (settings, profile, role), frozen for this send.
            credentials = client._request_signer._credentials
            if credentials is None:
                self.error = "NoCredentialsError"
            else:
                default_port = 443 if self.scheme == "https" else 80
                host = self.host if parts.port in (None, default_port) else f"{self.host}:{self.port}"
                self.signer = SigV4Signer(
                    credentials.get_frozen_credentials(), client.meta.region_name, host, payload
                )

    def headers(self, path):
        """SigV4 headers for AWS; none for the local gateway."""
        return {} if self.signer is None else self.signer.headers(path)


class AsyncTransport:
    """Many POSTs in flight from one event loop over keep-alive connections.

    ``http="native"`` uses ``http11.HTTP11Client`` (least CPU per call), ``http="aiohttp"``
    aiohttp's client. Requests to AWS are signed with SigV4; the local gateway's are not.
    """

    def __init__(self, workers, retries, base_delay, limiter, http="native"):
        self.workers, self.retries, self.base_delay, self.limiter = workers, retries, base_delay, limiter
        self.http = http

    def post_many(self, jobs, payload):
        loop = _Loop.get()
        return loop.run(self._post_all(loop, jobs, payload))

    async def _post_all(self, loop, jobs, payload):
        send = self._native_sender(loop) if self.http == "native" else self._aiohttp_sender(loop)
        semaphore = asyncio.Semaphore(self.workers)
        endpoints = {}

        async def post(connection_id, client):
            endpoint = endpoints.get(id(client))
            if endpoint is None:
                endpoint = endpoints[id(client)] = _Endpoint(client, payload)
            async with semaphore:
                return connection_id, await self._post(send, endpoint, connection_id, payload)

        return dict(await asyncio.gather(*(post(cid, client) for cid, client in jobs)))

    @staticmethod
    def _native_sender(loop):
        async def send(endpoint, path, url, headers, payload):
            status, response_headers = await loop.native.post(
                endpoint.scheme, endpoint.host, endpoint.port, path, headers, payload
            )
            return status, response_headers.get("x-amzn-errortype", "")

        return send

    def _aiohttp_sender(self, loop):
        session = loop.aiohttp_session(self.workers)

        async def send(endpoint, path, url, headers, payload):
            async with session.post(url, data=payload, headers=headers) as response:
                await response.read()
                return response.status, response.headers.get("x-amzn-ErrorType", "")

        return send

    async def _post(self, send, endpoint, connection_id, payload):
        path = f"{endpoint.path}/@connections/{quote(connection_id, safe='')}"
        url = f"{endpoint.url}/@connections/{quote(connection_id, safe='')}"
        if endpoint.error:
            return endpoint.error
        for attempt in range(self.retries + 1):
            delay = self.limiter.delay()
            if delay:
                await asyncio.sleep(delay)
            try:
                status, error_type = await send(endpoint, path, url, endpoint.headers(path), payload)
            except (OSError, asyncio.TimeoutError) as exc:
                return type(exc).__name__
            except Exception as exc:  # aiohttp.ClientError and friends
                return type(exc).__name__
            if status == 200:
                return None
            code = error_type.split(":")[0] or f"HTTP{status}"
            if code in THROTTLED or status == 429:
                if attempt < self.retries:
                    await asyncio.sleep(_backoff(self.base_delay, attempt))
                    continue
                return "LimitExceededException"
            return GONE if status == 410 else code
        return "LimitExceededException"


def aiohttp_available():
    return aiohttp is not None


_boto3_only = 0  # > 0 while something intercepts botocore (the test capture)


class boto3_only:
    """Context manager: route sends through boto3 (so botocore event hooks see them)."""

    def __enter__(self):
        global _boto3_only
        _boto3_only += 1

    def __exit__(self, *exc_info):
        global _boto3_only
        _boto3_only -= 1


TRANSPORTS = ("native", "aiohttp", "threads")


def choose(name, **options):
    """The transport for ``WEBSOCKETS["send_transport"]``: "native" (default), "aiohttp" or "threads"."""
    if name not in TRANSPORTS:
        raise ValueError(f'WEBSOCKETS["send_transport"] must be one of {", ".join(TRANSPORTS)}, not {name!r}')
    if _boto3_only or name == "threads" or (name == "aiohttp" and not aiohttp_available()):
        return ThreadTransport(**options)
    return AsyncTransport(**options, http=name)
