"""The 4.x name of ``websocket_smoke_test``, kept as an alias: ``manage.py websocketSmokeTest`` runs the same command."""

from .websocket_smoke_test import Command

__all__ = ["Command"]
