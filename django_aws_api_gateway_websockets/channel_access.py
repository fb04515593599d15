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
saving or deleting a rule clears this process's copy at once, and again when its transaction
commits (a request of this process may have re-read the old rules in between). Permission
checks use the user's own permission cache (``user.has_perms``): no query per rule.

Access is re-checked when it may have been taken away (docs/security.md): after the commit of
a change to a rule, to a user's or a group's permissions, to a user's groups or to a user's
``is_staff``/``is_superuser``/``is_active``, the live connections it concerns are checked
against the rules again (``recheck_channel_access``, in bulk); each one the rules no longer
admit gets ``{"type": "channel_access_revoked", "channel": ..., "reason": ...}`` and is closed
(login.end_connections: marked disconnected, DELETE @connections).
"""

import logging
import threading
from collections.abc import Callable, Iterable
from functools import partial
from typing import TYPE_CHECKING, Any

from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import DEFAULT_DB_ALIAS, router, transaction
from django.db.models import Model, Q, QuerySet
from django.db.models.signals import m2m_changed, post_delete, post_save, pre_delete

from . import login
from .conf import get_setting
from .log_context import log_context
from .models import ChannelPermission, ChannelPermissionRule, WebSocketSession
from .process_cache import ProcessCache

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser

logger = logging.getLogger(__name__)

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


def _forget_rules(using: str | None = None, **kwargs: object) -> None:
    """A rule changed: drop this process's copy now, and again once the change commits: a
    request of this process that read the rules in between cached the old ones (they were
    still the committed ones) and would have kept them for ``gateway_cache_seconds``."""
    _cache.clear()
    transaction.on_commit(_cache.clear, using=using)


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
    _signal.connect(_forget_rules, sender=ChannelPermission, dispatch_uid=f"channel_rules_{_signal}_cp")
    _signal.connect(_forget_rules, sender=ChannelPermissionRule, dispatch_uid=f"channel_rules_{_signal}_r")
m2m_changed.connect(_forget_rules, sender=ChannelPermissionRule.permissions.through, dispatch_uid="channel_rules_m2m")


# --- access re-checked when it may have been taken away -------------------------------------

REVOKED = "channel_access_revoked"
_REASONS: dict[str, str] = {
    Access.STAFF_ONLY: "This channel is now for staff only.",
    Access.SUPERUSER_ONLY: "This channel is now for superusers only.",
    Access.PERMISSIONS: "This channel now needs permissions this user does not hold.",
}
_NOT_ADMITTED = "The channel's access rules no longer admit this connection."
_IN_BATCH = 500  # names per channel_name IN (...); more restricted channels than that: filtered here


def recheck_channel_access(
    users: "Iterable[Any] | QuerySet[Any] | Model | int | None" = None,
    channels: Iterable[str] | str | None = None,
    *,
    allow_unlisted: bool = True,
    check: "Callable[[Any, str], bool] | None" = None,
) -> int:
    """Close the live connections the channel rules no longer admit; returns how many.

    ``users`` (users, their pks, or a queryset of users) narrows the check to their
    connections, ``channels`` (names) to the connections in those channels; ``None``: every
    connection in a channel that not everyone may join. Each connection refused gets
    ``{"type": "channel_access_revoked", "channel": ..., "reason": ...}``, then is marked
    disconnected and closed (DELETE @connections); inside a transaction, the rows are marked
    now and the sockets closed when it commits.

    The rules (``may_join``), and ``check(user, channel_name)`` if given (``user`` is ``None``
    for an anonymous connection): a view's own ``can_join_channel`` needs a request and is not
    applied here, so pass its logic as ``check``. A channel without a rule counts as
    ``allow_unlisted`` (pass ``False`` for connections of a view with
    ``ALLOW_UNLISTED_CHANNELS = False``). Call it from your own signal receivers for changes
    the package cannot see (the data your ``can_join_channel`` reads, a ``QuerySet.update``).
    """
    clear_channel_rules_cache()  # the caller's change may be this very moment's: read the rules again
    names = None if channels is None else ({channels} if isinstance(channels, str) else set(channels))
    scope = Q() if users is None else _users_q(users)
    return _recheck(scope, names, allow_unlisted=allow_unlisted, check=check)


def _users_q(users: Any) -> Q:
    if isinstance(users, QuerySet):
        return Q(user_id__in=users.values("pk"))
    if isinstance(users, Model | int | str):
        users = [users]
    return Q(user_id__in={getattr(user, "pk", user) for user in users})


def _recheck(
    scope: Q,
    channel_names: set[str] | None,
    *,
    allow_unlisted: bool = True,
    check: "Callable[[Any, str], bool] | None" = None,
) -> int:
    """Check the connected rows matching ``scope`` (in ``channel_names``, if given) against the
    rules; close those refused. One query for the rows, at most two for the permissions of
    their users (``_load_permissions``), then ``login.end_connections``."""
    rules = channel_rules()
    sessions = WebSocketSession.objects.using(router.db_for_write(WebSocketSession)).filter(scope, connected=True)
    candidates: set[str] | None = None  # the channel names that may refuse someone; None: any listed or not
    if allow_unlisted and check is None:
        candidates = {name for name, (access, _) in rules.items() if access != Access.ALLOW_ALL}
        if channel_names is not None:
            candidates &= channel_names
        if not candidates:
            return 0  # no query: nothing can be refused
        sessions = sessions.filter(channel_name__in=candidates) if len(candidates) <= _IN_BATCH else sessions
    elif channel_names is not None:
        sessions = sessions.filter(channel_name__in=channel_names)
    rows = [
        row
        for row in sessions.exclude(channel_name="").select_related("user")
        if candidates is None or row.channel_name in candidates
    ]
    _load_permissions(
        [
            row.user
            for row in rows
            if row.user is not None and rules.get(row.channel_name, ("",))[0] == Access.PERMISSIONS
        ]
    )
    refused: dict[str, list[int]] = {}
    for row in rows:
        admitted = may_join(row.user, row.channel_name, allow_unlisted=allow_unlisted)
        if not admitted or (check is not None and not check(row.user, row.channel_name)):
            refused.setdefault(row.channel_name, []).append(row.pk)
    if not refused:
        return 0
    notices = {
        name: {
            "type": REVOKED,
            "channel": name,
            "reason": _REASONS.get(rules[name][0], _NOT_ADMITTED) if name in rules and check is None else _NOT_ADMITTED,
        }
        for name in refused
    }
    for name, pks in refused.items():
        logger.info(
            "Channel access revoked for %d connection(s)",
            len(pks),
            extra=log_context(reason=REVOKED, channel=name, count=len(pks)),
        )
    # Still in the channel it was refused: one that moved since was checked by change_channel.
    still_there = Q(pk__in=[])
    for name, pks in refused.items():
        still_there |= Q(channel_name=name, pk__in=pks)
    return login.end_connections(
        WebSocketSession.objects.filter(still_there), "channel access revoked", partial(_tell_why, notices)
    )


def _tell_why(notices: dict[str, dict[str, str]], rows: list[WebSocketSession]) -> None:
    """The ``channel_access_revoked`` event, one send per channel, before the sockets close."""
    from .sending import send_to_sessions

    by_channel: dict[str, list[WebSocketSession]] = {}
    for row in rows:
        by_channel.setdefault(row.channel_name, []).append(row)
    for name, channel_rows in by_channel.items():
        try:
            send_to_sessions(channel_rows, notices[name])
        except Exception:  # closed all the same
            logger.warning("Could not send %s", REVOKED, exc_info=True, extra=log_context(channel=name))


def _load_permissions(users: list[Any]) -> None:
    """Fill Django's per-user permission cache (``ModelBackend``'s ``_perm_cache``) of ``users``
    in two queries, instead of two per user when ``may_join`` asks ``has_perms``."""
    users = [
        user
        for user in users
        if user.is_active and not getattr(user, "is_superuser", False) and not hasattr(user, "_perm_cache")
    ]
    if not users:
        return
    user_model = type(users[0])
    try:
        direct = user_model._meta.get_field("user_permissions")
        groups = user_model._meta.get_field("groups")
    except FieldDoesNotExist:  # no PermissionsMixin: its own backend answers has_perms
        return
    found: dict[Any, tuple[set[str], set[str]]] = {user.pk: (set(), set()) for user in users}
    ids = list(found)
    for start in range(0, len(ids), _IN_BATCH):
        batch = ids[start : start + _IN_BATCH]
        for index, field, prefix in ((0, direct, ""), (1, groups, "permissions__")):
            source, target = field.m2m_field_name(), field.m2m_reverse_field_name()
            through = field.remote_field.through
            rows = (
                through.objects.filter(**{f"{source}__in": batch, f"{target}__{prefix}isnull": False})
                .values_list(source, f"{target}__{prefix}content_type__app_label", f"{target}__{prefix}codename")
                .distinct()
            )
            for user_id, app_label, codename in rows:
                found[user_id][index].add(f"{app_label}.{codename}")
    for user in users:
        own, from_groups = found[user.pk]
        user._user_perm_cache, user._group_perm_cache = own, from_groups
        user._perm_cache = own | from_groups


# What changed in the current transaction, re-checked once when it commits (however many
# signals one admin save sends). Per thread: a thread has its own database connections.
_pending = threading.local()


class _Changes:
    def __init__(self) -> None:
        self.done = False
        self.all_channels = False
        self.channels: set[str] = set()
        self.channel_permission_ids: set[int] = set()
        self.rule_ids: set[int] = set()
        self.user_ids: set[Any] = set()
        self.group_ids: set[Any] = set()


def _note(using: str | None, **changes: Any) -> None:
    """Add ``changes`` to the re-check of the current transaction on ``using``, run once it
    commits (at once outside a transaction). Each call registers a callback and the first to
    run does the work of all, so one admin save (many signals) is one re-check, and a callback
    dropped with a rolled-back savepoint loses nothing. A batch whose transaction rolled back
    (no callback of it runs) joins the next transaction's: a re-check reads the access as it
    is then, so a rolled-back change is at worst re-checked for nothing."""
    db = using or DEFAULT_DB_ALIAS
    batches = _pending.__dict__.setdefault("batches", {})
    batch = batches.get(db)
    if batch is None or batch.done:
        batch = batches[db] = _Changes()
    for name, value in changes.items():
        if name == "all_channels":
            batch.all_channels = batch.all_channels or value
        else:
            getattr(batch, name).update(value)
    transaction.on_commit(partial(_run, db, batch), using=db)


def _run(db: str, batch: _Changes) -> None:
    if batch.done:
        return
    batch.done = True
    batches = _pending.__dict__.get("batches", {})
    if batches.get(db) is batch:
        del batches[db]
    try:
        _recheck_changes(batch)
    except Exception:  # never the saving request's error: its change is committed
        logger.exception("Could not re-check channel access after a change", extra=log_context(reason=REVOKED))


def _recheck_changes(batch: _Changes) -> int:
    channel_names: set[str] | None = set(batch.channels)
    if batch.channel_permission_ids or batch.rule_ids:
        clear_channel_rules_cache()  # committed now: read them as they are
        assert channel_names is not None
        channel_names |= set(
            ChannelPermission.objects.filter(
                Q(pk__in=batch.channel_permission_ids) | Q(rules__in=batch.rule_ids)
            ).values_list("channel_name", flat=True)
        )
    elif batch.channels:
        clear_channel_rules_cache()
    scope = Q(channel_name__in=channel_names) if channel_names else Q(pk__in=[])
    if batch.all_channels:
        clear_channel_rules_cache()
        scope, channel_names = Q(), None
    if batch.user_ids:
        scope |= Q(user_id__in=batch.user_ids)
    if batch.group_ids:
        field: Any = get_user_model()._meta.get_field("groups")
        members = field.remote_field.through.objects.filter(
            **{f"{field.m2m_reverse_field_name()}__in": batch.group_ids}
        ).values(field.m2m_field_name())
        scope |= Q(user_id__in=members)
    if batch.user_ids or batch.group_ids:
        channel_names = None  # their connections in any channel
    return _recheck(scope, channel_names)


def _removed_sources(field: Any, instance: Model, action: str, reverse: bool, pk_set: set[Any] | None) -> set[Any]:
    """The pks of ``field``'s model (a user, a group) whose set of ``field`` lost members in
    this ``m2m_changed`` (nothing for additions: they take no access away)."""
    if not reverse:
        return {instance.pk} if action in ("post_remove", "post_clear") else set()
    if action == "post_remove":
        return set(pk_set or ())
    if action == "pre_clear":  # emptied from the other side: who held it, read before it goes
        through = field.remote_field.through
        rows = through.objects.filter(**{field.m2m_reverse_field_name(): instance.pk})
        return set(rows.values_list(field.m2m_field_name(), flat=True))
    return set()


def _on_channel_saved(sender: Any, instance: ChannelPermission, using: str | None = None, **kwargs: Any) -> None:
    _note(using, channels={instance.channel_name})


def _on_rule_changed(sender: Any, instance: ChannelPermissionRule, using: str | None = None, **kwargs: Any) -> None:
    _note(using, channel_permission_ids={instance.channel_permission_id})


def _on_rule_permissions_changed(
    sender: Any,
    instance: Any,
    action: str,
    reverse: bool,
    pk_set: set[Any] | None,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    # A rule needs every one of its permissions: an addition may refuse someone too.
    if action not in ("post_add", "post_remove", "post_clear"):
        return
    if not reverse:
        _note(using, channel_permission_ids={instance.channel_permission_id})
    elif pk_set is None:  # a permission taken out of every rule: which ones is no longer known
        _note(using, all_channels=True)
    else:
        _note(using, rule_ids=pk_set)


def _on_m2m_lost(
    noted: str,
    field: Any,
    sender: Any,
    instance: Model,
    action: str,
    reverse: bool,
    pk_set: Any,
    using: str | None = None,
    **kwargs: Any,
) -> None:
    """Members taken out of ``field`` (either side): ``user.user_permissions`` or
    ``user.groups`` (``noted="user_ids"``), ``group.permissions`` (``noted="group_ids"``)."""
    sources = _removed_sources(field, instance, action, reverse, pk_set)
    if sources:
        _note(using, **{noted: sources})


def _on_group_deleted(sender: Any, instance: Model, using: str | None = None, **kwargs: Any) -> None:
    """Its members lose its permissions: read them now, the memberships go with the group."""
    field: Any = get_user_model()._meta.get_field("groups")
    through = field.remote_field.through
    members = through.objects.filter(**{field.m2m_reverse_field_name(): instance.pk})
    users = set(members.values_list(field.m2m_field_name(), flat=True))
    if users:
        _note(using, user_ids=users)


_USER_FLAGS = {"is_active", "is_staff", "is_superuser"}


def _on_user_saved(
    sender: Any, instance: Model, created: bool, update_fields: Any = None, using: str | None = None, **kwargs: Any
) -> None:
    # A save that cannot touch the flags (the last_login update of every login) costs nothing.
    if created or kwargs.get("raw") or (update_fields is not None and not _USER_FLAGS & set(update_fields)):
        return
    _note(using, user_ids={instance.pk})


post_save.connect(_on_channel_saved, sender=ChannelPermission, dispatch_uid="channel_access_recheck_cp")
for _signal in (post_save, post_delete):
    _signal.connect(_on_rule_changed, sender=ChannelPermissionRule, dispatch_uid=f"channel_access_recheck_{_signal}_r")
m2m_changed.connect(
    _on_rule_permissions_changed,
    sender=ChannelPermissionRule.permissions.through,
    dispatch_uid="channel_access_recheck_m2m",
)


def connect_receivers() -> None:
    """The receivers on the user model and ``Group`` (``AppConfig.ready``: the user model is known then)."""
    user_model = get_user_model()
    post_save.connect(_on_user_saved, sender=user_model, dispatch_uid="channel_access_recheck_user")
    try:
        fields: list[Any] = [user_model._meta.get_field("user_permissions"), user_model._meta.get_field("groups")]
    except FieldDoesNotExist:  # no PermissionsMixin: no permissions of Django's to lose
        return
    for field in fields:
        m2m_changed.connect(
            partial(_on_m2m_lost, "user_ids", field),
            sender=field.remote_field.through,
            weak=False,
            dispatch_uid=f"channel_access_recheck_user_{field.name}",
        )
    group_model = fields[1].related_model
    group_permissions = group_model._meta.get_field("permissions")
    m2m_changed.connect(
        partial(_on_m2m_lost, "group_ids", group_permissions),
        sender=group_permissions.remote_field.through,
        weak=False,
        dispatch_uid="channel_access_recheck_group_permissions",
    )
    pre_delete.connect(_on_group_deleted, sender=group_model, dispatch_uid="channel_access_recheck_group_deleted")
