"""The package's exceptions: every one it raises for you to catch is a ``WebSocketsError``.

Each class also keeps the base it had before the root existed (``ValueError``, Django's
``ImproperlyConfigured``...) and stays importable where it is defined, so an ``except`` written
against either keeps catching it. The classes:

* ``aws.RegionNotConfigured`` (also ``ImproperlyConfigured``, ``RuntimeError``): no AWS region;
* ``backends.InvalidSendBackend`` (also ``ImproperlyConfigured``, ``ValueError``): an unknown
  ``WEBSOCKETS["send_transport"]`` name;
* ``sending.MessageTooLarge`` (also ``ValueError``): over ``WEBSOCKETS["max_message_bytes"]``, before any call;
* ``sending.CloseFailed``: API Gateway did not close a connection (``.code``);
* ``provisioning.ProvisioningError``: a provisioning step failed;
* ``upgrade.UpgradeError``, ``upgrade.UpgradeStopped``: ``upgrade_from_old_package`` could not
  start, or stopped after dropping the old tables.

``views.Rejection`` is not one: it is control flow (a 4xx answer), not an error to catch.
"""


class WebSocketsError(Exception):
    """The root of the exceptions this package raises (``except WebSocketsError`` catches them all)."""
