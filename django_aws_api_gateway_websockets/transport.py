"""What every send backend shares: outcomes, retry rules, the call-rate limiters, SigV4.

The backends themselves (which HTTP client posts, from where) are in ``backends.py``.

Retry rules (a POST to ``@connections`` is not idempotent: a repeated one is a duplicate
frame in the browser). A call is retried only when it provably was not applied:

* the connection could not be opened (refused, DNS, TLS handshake, connect timeout): nothing
  was sent;
* API Gateway answered 429 (``LimitExceededException``: throttled, not applied) or 503
  (``ServiceUnavailable``: refused before processing);

with full-jitter exponential backoff. Anything else after the request may have left (a reset,
a truncated or stalled response, a 500/502/504) is reported as ``Uncertain:<reason>`` and
never re-sent: the frame may or may not have been delivered.
"""

import hashlib
import hmac
import os
import random
import re
import threading
import time
from typing import Protocol
from urllib.parse import quote

from botocore.utils import normalize_url_path

GONE = "GoneException"
THROTTLED = {"LimitExceededException", "TooManyRequestsException", "ThrottlingException"}
RETRYABLE_STATUS = {429, 503}
# A call due less than this many seconds from now goes at once: the calls of a process may run
# up to 2 ms ahead of their slots (20 calls at 10,000/s), far inside AWS's burst of 5,000;
# the long-run rate is unchanged (the slots still advance by one interval per call).
SLEEP_THRESHOLD = 0.002
UNCERTAIN = "Uncertain"  # prefix of the error code of a call that may have been delivered

# The deprecated WEBSOCKETS["send_transport"] names (5.0 pre-releases) and the backend each means now.
TRANSPORTS = ("native", "aiohttp", "threads")
TRANSPORT_BACKENDS = {
    "native": "django_aws_api_gateway_websockets.backends.AiohttpBackend",
    "aiohttp": "django_aws_api_gateway_websockets.backends.AiohttpBackend",
    "threads": "django_aws_api_gateway_websockets.backends.Boto3Backend",
}


_retries = [0]  # 429/503 answers retried by this process (a list: incremented from any thread)
_retries_lock = threading.Lock()


def count_throttled_retry() -> None:
    with _retries_lock:
        _retries[0] += 1


def throttled_retries() -> int:
    """How many throttled (429/503) calls this process has retried since it started."""
    return _retries[0]


def uncertain(reason: str) -> str:
    return f"{UNCERTAIN}:{reason}"


def is_uncertain(code: object) -> bool:
    return isinstance(code, str) and code.startswith(UNCERTAIN + ":")


def _backoff(base_delay: float, attempt: int) -> float:
    # Full jitter: retries of many concurrent senders spread over the window.
    return random.uniform(0, base_delay * 2**attempt)


def status_outcome(status: int, error_type: str | None) -> tuple[str | None, bool]:
    """``(code, retryable)`` for an HTTP answer: ``(None, False)`` is delivered."""
    if 200 <= status < 300:
        return None, False
    code = (error_type or "").split(":")[0] or f"HTTP{status}"
    if status == 410:
        return GONE, False
    if status in RETRYABLE_STATUS or code in THROTTLED:
        return ("LimitExceededException" if status == 429 or code in THROTTLED else code), True
    if status >= 500:
        return uncertain(code), False  # may have been applied: never re-sent
    return code, False


class RateLimiter:
    """Spaces calls so that every sender of this process together stays under ``rate`` per second.

    Thread-safe; one per (region, rate) per process (``limiter_for``), shared by concurrent sends.
    """

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self.interval = 1.0 / rate if rate else 0.0
        self.next_slot = time.monotonic()
        self.lock = threading.Lock()

    def delay(self) -> float:
        """Seconds the caller must wait before its call (0 when under the ceiling)."""
        if not self.interval:
            return 0.0
        with self.lock:
            now = time.monotonic()
            slot = max(self.next_slot, now)
            self.next_slot = slot + self.interval
        return max(0.0, slot - now)


class CacheRateLimiter:
    """One call budget shared by every process through a Django cache (Redis, Memcached).

    Time is cut into windows of ``WINDOW`` seconds, each allowed ``rate * WINDOW`` calls; a
    process takes calls from the window's counter (an atomic ``incr`` of the cache) in blocks, so
    the cache is asked once per block, not once per call. A window used up: wait for the next.
    """

    WINDOW = 0.1

    def __init__(self, rate: float, alias: str, key: str) -> None:
        from django.core.cache import caches

        self.rate, self.cache, self.key = rate, caches[alias], f"ws-send-rate:{key}"
        self.allowance = max(1, int(rate * self.WINDOW))
        self.block = max(1, self.allowance // 20)
        self.lock = threading.Lock()
        self.window: int | None = None
        self.left = 0

    def delay(self) -> float:
        """Seconds to wait before the call; the call is counted (reserved) in that window."""
        if not self.rate:
            return 0.0
        with self.lock:
            now = time.time()
            current = int(now / self.WINDOW)
            if self.left > 0 and self.window is not None and self.window >= current:
                self.left -= 1
                return max(0.0, self.window * self.WINDOW - now)
            first = current if self.window is None else max(current, self.window)
            for window in range(first, first + 600):  # at most a minute ahead
                key = f"{self.key}:{window}"
                self.cache.add(key, 0, timeout=int(window * self.WINDOW - now) + 5)
                try:
                    taken = self.cache.incr(key, self.block)
                except ValueError:  # expired between add and incr: count from zero
                    self.cache.add(key, self.block, timeout=5)
                    taken = self.block
                granted = min(self.block, self.allowance - (taken - self.block))
                if granted > 0:
                    self.window, self.left = window, granted - 1
                    return max(0.0, window * self.WINDOW - now)
            self.window, self.left = window, 0
            return max(0.0, window * self.WINDOW - now)


_limiters: dict[tuple[str, float, int, str], "RateLimiter | CacheRateLimiter"] = {}
_limiters_lock = threading.Lock()


def limiter_for(
    region: str, rate: float, processes: int = 1, cache_alias: str = ""
) -> "RateLimiter | CacheRateLimiter":
    """The process's limiter for ``region`` (AWS's throttle is per account and region)."""
    share = rate / processes if rate else 0
    key = (region, rate, processes, cache_alias)
    with _limiters_lock:
        limiter = _limiters.get(key)
        if limiter is None:
            limiter = CacheRateLimiter(rate, cache_alias, region) if cache_alias and rate else RateLimiter(share)
            _limiters[key] = limiter
        return limiter


def _forget_after_fork() -> None:
    # A lock another thread held at the fork stays held in the child: new ones.
    global _limiters_lock, _retries_lock
    _limiters.clear()
    _limiters_lock = threading.Lock()
    _retries_lock = threading.Lock()


os.register_at_fork(after_in_child=_forget_after_fork)


EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# A path botocore's normalize_url_path leaves as it is (no empty, "." or ".." segment) and whose
# only characters quote(safe="/~") changes are "%" and "@": the canonical URI by two replaces.
_SIMPLE_PATH = re.compile(r"(?:/[A-Za-z0-9_.~@%-]+)+").fullmatch


def canonical_uri(path: str) -> str:
    """SigV4's canonical URI of an already percent-encoded ``path`` (encoded once more, as botocore does)."""
    if _SIMPLE_PATH(path) and "/." not in path:
        return path.replace("%", "%25").replace("@", "%40")
    return quote(normalize_url_path(path), safe="/~")


class Credentials(Protocol):
    """What the signer reads of botocore's frozen credentials (``ReadOnlyCredentials``)."""

    @property
    def access_key(self) -> str: ...
    @property
    def secret_key(self) -> str: ...
    @property
    def token(self) -> str | None: ...


class SigV4Signer:
    """AWS Signature Version 4 for many requests with one payload through one endpoint.

    The same signature botocore's ``SigV4Auth`` computes (tests compare them), with what
    does not change between the calls of a send worked out once: the payload's SHA-256, the
    host, the signing key (derived once a day instead of by four HMACs per call), the
    timestamp (once a second). ``credentials`` are frozen ones (``get_frozen_credentials()``
    of the credentials botocore resolved: refreshed role credentials are picked up per send).
    """

    SERVICE = "execute-api"

    def __init__(
        self, credentials: Credentials, region: str, host: str | None, payload: bytes, method: str = "POST"
    ) -> None:
        self.credentials, self.region, self.host, self.method = credentials, region, host, method
        self.payload_hash = hashlib.sha256(payload).hexdigest() if payload else EMPTY_SHA256
        token = credentials.token
        self.signed_headers = "host;x-amz-date" + (";x-amz-security-token" if token else "")
        self.token_line = f"x-amz-security-token:{token}\n" if token else ""
        self.second: int | None = None
        self.stamp = ""
        self.day: str | None = None
        self.key = b""
        self.scope = ""
        self.lock = threading.Lock()

    def _timestamp(self, now: float) -> tuple[str, bytes, str]:
        second = int(now)
        if second != self.second:
            stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(second))
            day = stamp[:8]
            if day != self.day:
                key = f"AWS4{self.credentials.secret_key}".encode()
                for part in (day, self.region, self.SERVICE, "aws4_request"):
                    key = hmac.new(key, part.encode(), hashlib.sha256).digest()
                self.day, self.key = day, key
                self.scope = f"{day}/{self.region}/{self.SERVICE}/aws4_request"
            self.second, self.stamp = second, stamp
        return self.stamp, self.key, self.scope

    def headers(self, path: str, now: float | None = None) -> dict[str, str]:
        """The ``X-Amz-Date``, ``X-Amz-Security-Token`` and ``Authorization`` headers for ``path``."""
        with self.lock:
            stamp, key, scope = self._timestamp(time.time() if now is None else now)
        canonical = (
            f"{self.method}\n{canonical_uri(path)}\n\n"
            f"host:{self.host}\nx-amz-date:{stamp}\n{self.token_line}\n"
            f"{self.signed_headers}\n{self.payload_hash}"
        )
        string_to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(key, string_to_sign.encode(), hashlib.sha256).hexdigest()
        headers = {"X-Amz-Date": stamp}
        if self.credentials.token:
            headers["X-Amz-Security-Token"] = self.credentials.token
        headers["Authorization"] = (
            f"AWS4-HMAC-SHA256 Credential={self.credentials.access_key}/{scope}, "
            f"SignedHeaders={self.signed_headers}, Signature={signature}"
        )
        return headers
