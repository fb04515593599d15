"""The 4.x name of ``create_api_gateway``, kept as an alias: ``manage.py createApiGateway`` runs the same command."""

from .create_api_gateway import Command

__all__ = ["Command"]
