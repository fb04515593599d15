"""What every provisioning step shares: the plan it reports, AWS calls with clear errors,
and saving ids to the record as soon as AWS returns them."""

from dataclasses import dataclass, field

from botocore.exceptions import BotoCoreError, ClientError
from django.core.exceptions import ImproperlyConfigured

from .. import aws

NOT_FOUND = "NotFoundException"


class ProvisioningError(Exception):
    """A step failed (bad record or AWS error); the message names the step and the cause."""


@dataclass
class Plan:
    """What a run did, or with ``dry_run`` would do: ``steps`` are changes, in order;
    ``unchanged`` lists what was checked and already right."""

    dry_run: bool = False
    steps: list = field(default_factory=list)
    unchanged: list = field(default_factory=list)

    def add(self, text):
        """Record a change; returns ``True`` when the caller should make it (not a dry run)."""
        self.steps.append(text)
        return not self.dry_run

    def keep(self, text):
        self.unchanged.append(text)

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
