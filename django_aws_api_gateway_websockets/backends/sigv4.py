"""AWS Signature Version 4 for ``@connections`` calls, with what does not change between the
calls of a send worked out once (the aiohttp backend signs with it; boto3 signs its own)."""

import hashlib
import hmac
import re
import threading
import time
from typing import Any, Protocol
from urllib.parse import quote

from botocore.utils import normalize_url_path

from .. import aws

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


def frozen_credentials() -> tuple[Any, str | None]:
    """``(frozen credentials, None)`` as botocore resolves them, or ``(None, error code)``."""
    try:
        credentials = aws.get_credentials()
        if credentials is None:
            return None, "NoCredentialsError"
        return credentials.get_frozen_credentials(), None
    except Exception as exc:  # a role that cannot be refreshed, a broken profile...
        return None, type(exc).__name__
