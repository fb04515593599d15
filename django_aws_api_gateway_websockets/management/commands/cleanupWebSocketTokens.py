"""The 4.x name of ``cleanup_websocket_tokens``, kept as an alias: ``manage.py cleanupWebSocketTokens`` runs the same command."""

from .cleanup_websocket_tokens import Command

__all__ = ["Command"]
