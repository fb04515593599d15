"""The 4.x name of ``websocket_iam_policy``, kept as an alias: ``manage.py websocketIamPolicy`` runs the same command."""

from .websocket_iam_policy import Command

__all__ = ["Command"]
