"""What every send backend shares: outcomes, the retry policy, endpoints, options, the registry.

Retry rules (a POST to ``@connections`` is not idempotent: a repeated one is a duplicate
frame in the browser). A call is retried only when it provably was not applied:

* the connection could not be opened (refused, DNS, TLS handshake, connect timeout): nothing
  was sent;
* API Gateway answered 429 (``LimitExceededException``: throttled, not applied) or 503
  (``ServiceUnavailable``: refused before processing);

with full-jitter exponential backoff. Anything else after the request may have left (a reset,
a truncated or stalled response, a 500/502/504) is reported as ``Uncertain:<reason>`` and
never re-sent: the frame may or may not have been delivered.

``RetryPolicy`` is that loop, written once for every backend: a generator that decides, driven
by a thread (``run``) or an event loop (``arun``) that makes the calls.
"""

import asyncio
import math
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from enum import Enum, StrEnum
from functools import cached_property
from typing import TYPE_CHECKING, Generic, NamedTuple, Self, TypeVar
from urllib.parse import SplitResult, quote, urlsplit

from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string

from .. import aws
from ..conf import SEND_TRANSPORT_BACKENDS, get_setting
from ..exceptions import WebSocketsError
from . import pacing

if TYPE_CHECKING:
    from ..models import ApiGateway

DEFAULT_BACKEND = "django_aws_api_gateway_websockets.backends.AiohttpBackend"
CONNECT_ATTEMPTS = 3  # a connection that cannot be opened: tried this often, then the endpoint is down

#: What a backend answers for one call: ``None`` (delivered, or closed) or an error code
#: (``"GoneException"``, an AWS error code, a client error name, ``"Uncertain:<reason>"``).
Code = str | None


class Outcome(StrEnum):
    """What became of one call, read from its ``Code`` by ``Outcome.of``.

    ``GONE`` and ``THROTTLED`` are codes themselves (equal to the AWS strings a backend returns
    and ``SendResult.failed`` holds); ``UNCERTAIN`` is the prefix of ``"Uncertain:<reason>"``.
    """

    DELIVERED = "Delivered"
    GONE = "GoneException"
    THROTTLED = "LimitExceededException"
    UNCERTAIN = "Uncertain"  # the call may have been delivered: never re-sent
    FAILED = "Failed"  # any other code: not delivered

    @staticmethod
    def uncertain(reason: str) -> str:
        """The code of a call that may have been delivered: ``"Uncertain:<reason>"``."""
        return f"Uncertain:{reason}"

    @classmethod
    def of(cls, code: Code) -> "Outcome":
        # By prefix only here: a project's backend, or ManagementAPICapture.fail(id, "Uncertain:..."),
        # returns plain strings.
        if code is None:
            return cls.DELIVERED
        if code == cls.GONE:
            return cls.GONE
        if code == cls.THROTTLED:
            return cls.THROTTLED
        return cls.UNCERTAIN if code.startswith("Uncertain:") else cls.FAILED


GONE = Outcome.GONE
THROTTLED = {"LimitExceededException", "TooManyRequestsException", "ThrottlingException"}
RETRYABLE_STATUS = {429, 503}


class InvalidSendBackend(WebSocketsError, ImproperlyConfigured, ValueError):
    """``WEBSOCKETS["send_transport"]`` (deprecated) names no backend."""


def status_outcome(status: int, error_type: str | None) -> tuple[Code, bool]:
    """``(code, retryable)`` for an HTTP answer: ``(None, False)`` is delivered."""
    if 200 <= status < 300:
        return None, False
    code = (error_type or "").split(":")[0] or f"HTTP{status}"
    if status == 410:
        return GONE, False
    if status in RETRYABLE_STATUS or code in THROTTLED:
        return (Outcome.THROTTLED if status == 429 or code in THROTTLED else code), True
    if status >= 500:
        return Outcome.uncertain(code), False  # may have been applied: never re-sent
    return code, False


_retries = [0]  # 429/503 answers retried by this process (a list: incremented from any thread)
_retries_lock = threading.Lock()


def count_throttled_retry() -> None:
    with _retries_lock:
        _retries[0] += 1


def throttled_retries() -> int:
    """How many throttled (429/503) calls this process has retried since it started."""
    return _retries[0]


class Sent(Enum):
    """How far one attempt of a call got."""

    ANSWERED = 1  # API Gateway answered: ``status`` and its error type
    NOT_SENT = 2  # the connection could not be opened: nothing left, may be retried
    MAYBE = 3  # the request may have left (a reset, a cut or stalled answer): never retried
    STOPPED = 4  # no request at all: no credentials, bad parameters, the endpoint found down


class Answer(NamedTuple):
    """What a backend tells the retry policy of one attempt (``code``: the error type or reason)."""

    sent: Sent
    code: str | None = None
    status: int = 0


DELIVERED = Answer(Sent.ANSWERED, None, 200)


class Reachability:
    """Per send: an endpoint that failed to connect ``CONNECT_ATTEMPTS`` times before any call of
    the send reached it is down, and the rest of the send's calls there fail at once (a
    blackholed endpoint costs a few connect timeouts, not one per call). Once it answered, each
    call has its own ``CONNECT_ATTEMPTS``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.failures: dict[Endpoint, int] = {}  # endpoint -> connect failures
        self.reached: set[Endpoint] = set()
        self.down: dict[Endpoint, str] = {}  # endpoint -> error code

    def check(self, endpoint: "Endpoint") -> str | None:
        return self.down.get(endpoint)

    def failed(self, endpoint: "Endpoint", code: str, attempts: int) -> bool:
        """Record a connect failure (the call's ``attempts``-th); True: give up the call."""
        with self.lock:
            count = self.failures[endpoint] = self.failures.get(endpoint, 0) + 1
            if count >= CONNECT_ATTEMPTS and endpoint not in self.reached:
                self.down[endpoint] = code
            return endpoint in self.down or attempts >= CONNECT_ATTEMPTS

    def connected(self, endpoint: "Endpoint") -> None:
        if endpoint not in self.reached:
            with self.lock:
                self.reached.add(endpoint)


@dataclass(frozen=True)
class RetryPolicy:
    """The retry loop of every backend: which answers are tried again, and the wait before."""

    retries: int
    base_delay: float

    def backoff(self, attempt: int) -> float:
        """Seconds before retry ``attempt + 1``. Full jitter: concurrent senders' retries spread out."""
        return random.uniform(0, self.base_delay * 2**attempt)

    def steps(self, endpoint: "Endpoint", reach: Reachability) -> Generator[float, Answer, Code]:
        """One call: yields the seconds to wait before each attempt, is sent its ``Answer``,
        returns the call's code. No I/O of its own: ``run`` and ``arun`` drive it."""
        code: Code = Outcome.THROTTLED
        connect_failures = 0
        for attempt in range(self.retries + 1):
            answer = yield self.backoff(attempt - 1) if attempt else 0.0
            sent = answer.sent
            if sent is Sent.ANSWERED:
                reach.connected(endpoint)
                code, retry = status_outcome(answer.status, answer.code)
                if not retry:
                    return code
                if attempt < self.retries:
                    count_throttled_retry()
            elif sent is Sent.NOT_SENT:
                code, connect_failures = answer.code, connect_failures + 1
                if reach.failed(endpoint, answer.code or "", connect_failures):
                    return code
            elif sent is Sent.MAYBE:
                return Outcome.uncertain(answer.code or "")
            else:
                return answer.code
        return code

    def run(self, attempt: Callable[[], Answer], endpoint: "Endpoint", reach: Reachability) -> Code:
        """``steps`` from a thread: ``time.sleep`` between attempts."""
        steps = self.steps(endpoint, reach)
        wait = next(steps)
        try:
            while True:
                time.sleep(wait)
                wait = steps.send(attempt())
        except StopIteration as done:
            return done.value

    async def arun(self, attempt: Callable[[], Awaitable[Answer]], endpoint: "Endpoint", reach: Reachability) -> Code:
        """``steps`` on an event loop: the first attempt at once, ``asyncio.sleep`` before the others."""
        steps = self.steps(endpoint, reach)
        next(steps)
        try:
            while True:
                answer = await attempt()
                await asyncio.sleep(steps.send(answer))
        except StopIteration as done:
            return done.value


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

    @cached_property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(self.retries, self.base_delay)

    def limiter(self, region: str) -> pacing.Limiter:
        return pacing.limiter_for(region, self.rate, self.processes, self.rate_cache)

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

    def post_many(self, jobs: Sequence[tuple[str, Endpoint]], payload: bytes, options: SendOptions) -> dict[str, Code]:
        """POST ``payload`` to each ``(connection_id, Endpoint)`` of ``jobs``.

        Returns ``{connection_id: None}`` (delivered) or an error code: ``"GoneException"``, an
        AWS error code, a client error name (not delivered), or ``"Uncertain:<reason>"``.
        """
        raise NotImplementedError

    def delete(self, endpoint: Endpoint, connection_id: str, options: SendOptions) -> Code:
        """DELETE ``@connections/{id}``: ``None`` (closed), ``"GoneException"`` or an error code."""
        raise NotImplementedError

    def close(self) -> None:
        """Release pools and connections (tests, shutdown)."""


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
            if legacy not in SEND_TRANSPORT_BACKENDS:
                raise InvalidSendBackend(
                    f'WEBSOCKETS["send_transport"] (deprecated: use "send_backend") must be one of '
                    f"{', '.join(SEND_TRANSPORT_BACKENDS)}, not {legacy!r}"
                )
            path = SEND_TRANSPORT_BACKENDS[legacy]
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
    # A lock another thread held at the fork stays held in the child: new ones.
    global _instances_lock, _retries_lock
    _instances_lock = threading.Lock()
    _retries_lock = threading.Lock()
    # The instances stay: their loop and pools renew themselves in the child (BackgroundLoop).


os.register_at_fork(after_in_child=_forget_after_fork)
