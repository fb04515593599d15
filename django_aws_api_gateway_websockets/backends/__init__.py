"""Send backends: how ``@connections`` calls leave the process (``WEBSOCKETS["send_backend"]``).

In the spirit of Django's ``EMAIL_BACKEND``: the setting names a class, one instance of it per
process does every send. Three come with the package:

* ``AiohttpBackend`` (the default; ``backends.aiohttp``): aiohttp from one background event loop
  per process, one connection pool per endpoint;
* ``Boto3Backend`` (``backends.boto3``): boto3's ``post_to_connection`` from a pool of threads;
* ``InMemoryBackend`` (``backends.memory``, documented as ``testing.InMemoryBackend``): nothing
  leaves the process (tests; ``ManagementAPICapture`` installs it).

A backend implements ``post_many(jobs, payload, options)`` -> ``{connection_id: None | code}``
and ``delete(endpoint, connection_id, options)`` -> ``None | code`` (see ``BaseSendBackend``).
What they share is in ``base`` (outcomes, the retry policy, endpoints, options, the registry),
``pacing`` (the call-rate limiters) and ``sigv4``. The dotted paths of the settings
(``django_aws_api_gateway_websockets.backends.AiohttpBackend``...) name the classes re-exported here.
"""

from .aiohttp import AiohttpBackend
from .base import (
    CONNECT_ATTEMPTS,
    DEFAULT_BACKEND,
    GONE,
    BaseSendBackend,
    Code,
    Endpoint,
    InvalidSendBackend,
    Outcome,
    RetryPolicy,
    SendOptions,
    backend_path,
    get_backend,
    reset_backends,
    use_backend,
)
from .boto3 import Boto3Backend
from .memory import InMemoryBackend

__all__ = [
    "CONNECT_ATTEMPTS",
    "DEFAULT_BACKEND",
    "GONE",
    "AiohttpBackend",
    "BaseSendBackend",
    "Boto3Backend",
    "Code",
    "Endpoint",
    "InMemoryBackend",
    "InvalidSendBackend",
    "Outcome",
    "RetryPolicy",
    "SendOptions",
    "backend_path",
    "get_backend",
    "reset_backends",
    "use_backend",
]
