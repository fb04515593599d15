"""What every provisioning step shares: the plan it reports (with the drift it found), AWS
calls with clear errors, saving ids to the record as soon as AWS returns them, and the
record's ``provisioning_status`` / ``last_error``."""

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import ImproperlyConfigured

from .. import aws
from ..exceptions import WebSocketsError

NOT_FOUND = "NotFoundException"

logger = logging.getLogger("django_aws_api_gateway_websockets.provisioning")

# ``ApiGateway.provisioning_status``, in the order a creation goes through them (the 4.1.0
# release's values). A run only moves a record forward; teardown moves it back.
STATUS_ORDER = ("pending", "creating", "api_created", "routes_created", "deployed", "domain_created", "mapped")


#: A callable ``(kind, text)`` told of every step as it is planned or made (``kind``: ``"step"``
#: or ``"unchanged"``), so a command prints progress as it happens: a run that fails half-way
#: has already shown what it created. Set by the management commands (``reporting``).
progress = ContextVar("provisioning_progress", default=None)


@contextmanager
def reporting(callback):
    token = progress.set(callback)
    try:
        yield
    finally:
        progress.reset(token)


def _report(kind, text):
    callback = progress.get()
    if callback is not None:
        callback(kind, text)


class ProvisioningError(WebSocketsError):
    """A step failed (bad record or AWS error); the message names the step and the cause."""


@dataclass
class Plan:
    """What a run did, or with ``dry_run`` would do: ``steps`` are changes, in order;
    ``unchanged`` lists what was checked and already right."""

    dry_run: bool = False
    steps: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)
    #: ``(kind, text)``: what differs between AWS and the record, found while reading AWS.
    #: ``kind`` is ``"only in AWS"``, ``"only in record"``, ``"different"`` or ``"legacy"``.
    drift: list = field(default_factory=list)

    def add(self, text):
        """Record a change; returns ``True`` when the caller should make it (not a dry run)."""
        self.steps.append(text)
        _report("step", text)
        return not self.dry_run

    def keep(self, text):
        self.unchanged.append(text)
        _report("unchanged", text)

    def differs(self, kind, text):
        self.drift.append((kind, text))

    def drift_report(self):
        """The drift as printed by the commands: a heading, then one line per item."""
        if not self.drift:
            return ["No drift: AWS matches the record."]
        return ["Drift between AWS and the record:"] + [f"  {kind}: {text}" for kind, text in self.drift]

    @property
    def changed(self):
        return bool(self.steps)

    def __str__(self):
        return "\n".join(self.steps) if self.steps else "Nothing to change."


def client_for(record, service, given=None):
    """``given`` (tests pass stubbed clients), else the cached client in the record's region."""
    if given is not None:
        return given
    try:
        return aws.get_client(service, region=record.region or None)
    except ImproperlyConfigured as exc:
        raise ProvisioningError(str(exc)) from exc


def describe(exc):
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code')}: {error.get('Message')}"
    return f"{type(exc).__name__}: {exc}"


def call(step, function, **params):
    """Call AWS; any failure (AWS error, no credentials, no network) becomes a ProvisioningError."""
    try:
        return function(**params)
    except (ClientError, BotoCoreError) as exc:
        raise ProvisioningError(f"{step} failed: {describe(exc)}") from exc


def find(step, function, **params):
    """The resource, or ``None`` when AWS answers NotFound."""
    try:
        return function(**params)
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") == NOT_FOUND:
            return None
        raise ProvisioningError(f"{step} failed: {describe(exc)}") from exc
    except BotoCoreError as exc:
        raise ProvisioningError(f"{step} failed: {describe(exc)}") from exc


def save(record, **fields):
    """Persist only these fields (a concurrent admin edit of others is kept). ``save()``
    rather than ``update()`` so every listener, e.g. the gateway cache, hears of it."""
    for name, value in fields.items():
        setattr(record, name, value)
    record.save(update_fields=list(fields))


def aws_tags(record):
    return {str(k): str(v) for k, v in (record.tags or {}).items()}


def items(step, function, **params):
    """Every ``Items`` entry of a paginated ``get_*`` call."""
    found, token = [], None
    while True:
        page = call(step, function, **params, **({"NextToken": token} if token else {}))
        found += page.get("Items", [])
        token = page.get("NextToken")
        if not token:
            return found


# --- provisioning_status and last_error -------------------------------------------------


def _rank(status):
    return STATUS_ORDER.index(status) if status in STATUS_ORDER else -1


def advance(record, status, plan):
    """Record that a step succeeded: ``provisioning_status`` moves forward to ``status``
    (never back: a sync of a mapped record stays ``mapped``). Nothing in a dry run."""
    if not plan.dry_run and _rank(status) > _rank(record.provisioning_status):
        save(record, provisioning_status=status)


def redact(record, text):
    """``text`` without the record's secrets (AWS may echo a mapping expression back)."""
    for secret in (record.integration_secret, record.previous_integration_secret):
        if secret:
            text = text.replace(secret, "********")
    return text


@contextmanager
def recording(record, plan):
    """Run a provisioning operation: on failure ``last_error`` gets the error's full message
    (secrets removed) and the error propagates; on success ``last_error`` is cleared.
    A dry run writes nothing."""
    try:
        yield
    except Exception as exc:
        if not plan.dry_run:
            message = str(exc) if isinstance(exc, ProvisioningError) else f"{type(exc).__name__}: {exc}"
            try:
                save(record, last_error=redact(record, message))
            except Exception:  # e.g. the database itself failed: never hide the original error
                logger.exception("Could not record the provisioning error of %s", record)
        raise
    if not plan.dry_run:
        # Read from the row, not the instance: a run that lost the claim meanwhile may
        # have written its refusal there.
        type(record).objects.filter(pk=record.pk).exclude(last_error="").update(last_error="")
        record.last_error = ""
