"""The 4.x name of ``create_custom_domain``, kept as an alias: ``manage.py createCustomDomain`` runs the same command."""

from .create_custom_domain import Command

__all__ = ["Command"]
