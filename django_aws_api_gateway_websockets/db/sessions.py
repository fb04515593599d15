"""The connection row on the request path, through the ORM (each is one statement already,
as the hand-written SQL it replaces was):

- ``load_connection``: a message's or ``$disconnect``'s row with its gateway and user
  (``select_related``) and, with a database session engine on the same database, the
  ``expire_date`` of the Django session the row keeps the key of (a subquery: no query of
  its own; login.session_ended);
- ``insert_session``: the connect's row (one ``INSERT … RETURNING`` where the database has it);
- ``count_message`` (with the message rate limiter's state) and ``mark_disconnected``: one
  ``UPDATE`` each.
"""

from typing import Any

from django.db import router
from django.db.models import F, OuterRef, Subquery
from django.utils import timezone

from .. import login
from ..models import WebSocketSession


def load_connection(connection_id: str) -> WebSocketSession | None:
    """The connection's row with its gateway record and user, or ``None``: one ``SELECT``.
    With a database session engine it also brings whether the Django session behind the
    connection still exists (``session.django_session_joined``, ``session.django_session_expiry``:
    ``None`` when there is no such session)."""
    db = router.db_for_read(WebSocketSession)
    rows = WebSocketSession.objects.using(db).select_related("api_gateway", "user")
    session_model = login.joinable_session_model(db)
    if session_model is not None:
        expiry = session_model._default_manager.filter(pk=OuterRef("django_session_key")).values("expire_date")[:1]
        rows = rows.annotate(django_session_expiry=Subquery(expiry))
    session = rows.filter(connection_id=connection_id).first()
    if session is not None and session_model is not None:
        session.django_session_joined = True  # type: ignore[attr-defined]  # read by login.session_ended
    return session


def insert_session(**values: Any) -> WebSocketSession:
    """The connect's ``WebSocketSession`` row (``objects.create``: one statement)."""
    return WebSocketSession.objects.using(router.db_for_write(WebSocketSession)).create(**values)


def count_message(session: WebSocketSession, tat_us: int | None = None) -> None:
    """One more handled message on the connection's row (``request_count``, ``updated_on``),
    with the message rate limiter's new state (``tat_us``) when it is on: the same statement."""
    now = timezone.now()
    values: dict[str, Any] = {"request_count": F("request_count") + 1, "updated_on": now}
    if tat_us is not None:
        values["message_tat_us"] = tat_us
    WebSocketSession.objects.filter(pk=session.pk).update(**values)
    session.updated_on = now
    if tat_us is not None:
        session.message_tat_us = tat_us


def mark_disconnected(session: WebSocketSession) -> None:
    """The connection's row marked disconnected (``connected``, ``updated_on``; the Django
    session's key is no longer needed: login.py keeps it only while connected)."""
    now = timezone.now()
    WebSocketSession.objects.filter(pk=session.pk).update(connected=False, django_session_key="", updated_on=now)
    session.connected, session.django_session_key, session.updated_on = False, "", now
