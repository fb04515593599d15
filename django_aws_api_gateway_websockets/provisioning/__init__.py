"""The AWS control plane: create, reconcile, deploy and delete an API Gateway WebSocket API.

Every operation reads AWS's current state first and changes only what differs, so a run
that failed half-way is simply run again. Ids are saved as soon as AWS returns them; a state
flag (``api_created``, ``custom_domain_created``, a route's ``deployed``) is set only after
its step succeeded, and ``provisioning_status`` / ``last_error`` say how far the last run got
and why it stopped. ``dry_run=True`` reads but never writes: the returned ``Plan`` lists
what a real run would do. Nothing here runs from ``Model.save()``.
"""

from .adopt import adopt_api
from .api import (
    AWS_ONLY_ROUTE_MODES,
    DEFAULT_ACCESS_LOG_FORMAT,
    LEGACY_SECRET_HEADER,
    desired_routes,
    integration_params,
    rotate_secret,
    sync_api,
)
from .base import STATUS_ORDER, Plan, ProvisioningError
from .claim import CLAIM_STALE_AFTER, RECORD_TAG
from .domain import create_custom_domain
from .iam import iam_policy
from .teardown import delete_api
from .template import export_template, store_secret

__all__ = [
    "AWS_ONLY_ROUTE_MODES",
    "CLAIM_STALE_AFTER",
    "DEFAULT_ACCESS_LOG_FORMAT",
    "LEGACY_SECRET_HEADER",
    "RECORD_TAG",
    "STATUS_ORDER",
    "Plan",
    "adopt_api",
    "ProvisioningError",
    "create_custom_domain",
    "delete_api",
    "desired_routes",
    "export_template",
    "iam_policy",
    "integration_params",
    "rotate_secret",
    "store_secret",
    "sync_api",
]
