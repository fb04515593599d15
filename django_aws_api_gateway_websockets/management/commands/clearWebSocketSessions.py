"""The 4.x name of ``clear_websocket_sessions``, kept as an alias: ``manage.py clearWebSocketSessions`` runs the same command."""

from .clear_websocket_sessions import Command

__all__ = ["Command"]
