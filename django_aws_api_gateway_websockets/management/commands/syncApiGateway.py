"""The 4.x name of ``sync_api_gateway``, kept as an alias: ``manage.py syncApiGateway`` runs the same command."""

from .sync_api_gateway import Command

__all__ = ["Command"]
