"""The 4.x name of ``websocket_stats``, kept as an alias: ``manage.py websocketStats`` runs the same command."""

from .websocket_stats import Command

__all__ = ["Command"]
