"""The 4.x name of ``upgrade_from_old_package``, kept as an alias: ``manage.py upgradeFromOldPackage`` runs the same command."""

from .upgrade_from_old_package import Command

__all__ = ["Command"]
