"""Who may join a channel (docs/security.md): the one place ``$connect`` and ``change_channel`` ask.

Rules are ``ChannelPermission`` rows, edited in the admin (the 4.1.0 release's model, so an
upgrade keeps them): one per channel name, with an access level —

- ``allow_all``: everyone, anonymous users included;
- ``staff_only``: active staff users (and superusers);
- ``superuser_only``: active superusers;
- ``permissions``: active users holding *every* permission of *any one* of the channel's
  ``ChannelPermissionRule`` rows (and superusers). A rule with no permissions admits nobody.

A channel without a row is allowed unless the view sets ``ALLOW_UNLISTED_CHANNELS = False``.

All rules are read in one query and kept per process for ``WEBSOCKETS["gateway_cache_seconds"]``;
saving or deleting a rule clears this process's copy at once. Permission checks use the user's
own permission cache (``user.has_perms``): no query per rule.
"""

from typing import TYPE_CHECKING

from django.db.models.signals import m2m_changed, post_delete, post_save

from .conf import get_setting
from .models import ChannelPermission, ChannelPermissionRule
from .process_cache import ProcessCache

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

Access = ChannelPermission.Access

_cache = ProcessCache()


Rules = dict[str, tuple[str, list[frozenset[str]]]]


def channel_rules() -> Rules:
    """``{channel_name: (access, [frozenset of "app_label.codename", ...])}`` for every rule."""
    rules: Rules = _cache.get("rules", _read_rules, get_setting("gateway_cache_seconds"))
    return rules


def _read_rules() -> Rules:
    rules: Rules = {}
    permission_sets: dict[int, set[str]] = {}
    pairs = ChannelPermissionRule.permissions.through.objects.values_list(
        "channelpermissionrule_id", "permission__content_type__app_label", "permission__codename"
    )
    for rule_id, app_label, codename in pairs:
        permission_sets.setdefault(rule_id, set()).add(f"{app_label}.{codename}")
    for channel in ChannelPermission.objects.prefetch_related("rules"):
        rules[channel.channel_name] = (
            channel.access,
            [frozenset(permission_sets.get(rule.pk, ())) for rule in channel.rules.all()],
        )
    return rules


def clear_channel_rules_cache(**kwargs: object) -> None:
    _cache.clear()


def may_join(
    user: "AbstractBaseUser | AnonymousUser | None", channel_name: str, *, allow_unlisted: bool = True
) -> bool:
    """Whether ``user`` (anonymous users included) may join ``channel_name``."""
    rule = channel_rules().get(channel_name)
    if rule is None:
        return allow_unlisted
    access, permission_sets = rule
    if access == Access.ALLOW_ALL:
        return True
    if user is None or not user.is_authenticated or not user.is_active:
        return False
    # A custom user model without PermissionsMixin has no flags and no permissions.
    if getattr(user, "is_superuser", False):
        return True
    if access == Access.STAFF_ONLY:
        return bool(getattr(user, "is_staff", False))
    has_perms = getattr(user, "has_perms", None)
    if access == Access.PERMISSIONS and has_perms is not None:
        return any(permissions and has_perms(permissions) for permissions in permission_sets)
    return False  # superuser_only, or a level this version does not know


def admits_everyone(channel_name: str, *, allow_unlisted: bool = True) -> bool:
    """Whether anyone may join ``channel_name``, whoever they are (no rule, or ``allow_all``):
    the connect then needs no user to decide."""
    rule = channel_rules().get(channel_name)
    if rule is None:
        return allow_unlisted
    return rule[0] == Access.ALLOW_ALL


for _signal in (post_save, post_delete):
    _signal.connect(clear_channel_rules_cache, sender=ChannelPermission, dispatch_uid=f"channel_rules_{_signal}_cp")
    _signal.connect(clear_channel_rules_cache, sender=ChannelPermissionRule, dispatch_uid=f"channel_rules_{_signal}_r")
m2m_changed.connect(
    clear_channel_rules_cache, sender=ChannelPermissionRule.permissions.through, dispatch_uid="channel_rules_m2m"
)
