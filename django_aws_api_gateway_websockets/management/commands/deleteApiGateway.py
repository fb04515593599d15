"""The 4.x name of ``delete_api_gateway``, kept as an alias: ``manage.py deleteApiGateway`` runs the same command."""

from .delete_api_gateway import Command

__all__ = ["Command"]
