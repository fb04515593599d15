"""How a view connects, decided once per view class from the steps of pipeline/connect.py
(issue #24, part 1), and reported by ``check --deploy`` (aws_websockets.I090)."""

import pytest
from django.core import checks

from django_aws_api_gateway_websockets.pipeline import connect as connect_pipeline
from django_aws_api_gateway_websockets.views import WebSocketView
from tests.views import ChatView, StaffView


def test_a_view_with_nothing_of_its_own_connects_in_one_statement():
    assert ChatView.connect_plan().one_statement


@pytest.mark.parametrize(
    "body, because",
    [
        ({"connect": lambda self, request, *a, **k: None}, "it overrides `connect`"),
        ({"can_join_channel": lambda self, request, name: True}, "it overrides `can_join_channel`"),
        ({"has_required_permissions": lambda self, request: True}, "it overrides `has_required_permissions`"),
        ({"_additional_connection_checks": lambda self, request: True}, "it overrides `_additional_connection_checks`"),
        ({"all_permissions_required": ("auth.view_user",)}, "it sets `all_permissions_required`"),
        ({"BROADCAST_PRESENCE": True}, "it sets `BROADCAST_PRESENCE`"),
        ({"USE_WS_TOKEN": False}, "it sets `USE_WS_TOKEN = False`"),
    ],
)
def test_the_plan_is_decided_when_the_class_is_created(body, because):
    view = type("Custom", (ChatView,), body)
    assert "_connect_plan" in view.__dict__  # its own, computed at class creation
    plan = view.connect_plan()
    assert (plan.one_statement, plan.because) == (False, because)


def test_a_hook_assigned_to_the_class_before_it_is_routed_is_planned_for():
    view = type("Patched", (ChatView,), {})
    assert view.connect_plan().one_statement
    view.can_join_channel = lambda self, request, name: name != "secret"  # e.g. in AppConfig.ready()
    view.as_view()
    assert view.connect_plan().because == "it overrides `can_join_channel`"


def test_as_view_arguments_the_plan_reads_replan_that_view():
    assert not ChatView(BROADCAST_PRESENCE=True)._connect_plan.one_statement
    assert ChatView(SEND_EXCEPTION_MAIL=False)._connect_plan is ChatView.connect_plan()


@pytest.mark.parametrize("hook", [h for step in connect_pipeline.STEPS for h in step.hooks])
def test_a_hook_given_to_as_view_replans_that_view(hook):
    """A hook given as an ``as_view()`` argument is the instance's: the class's plan (one
    statement) would never call it."""
    plan = ChatView(**{hook: lambda *args, **kwargs: False})._connect_plan
    assert (plan.one_statement, plan.because) == (False, f"it overrides `{hook}`")


def test_the_plan_comes_from_the_steps_declarations():
    # Every hook a step calls is a WebSocketView method; the statement's steps are the ones
    # the one-statement path performs (the count, the token, the row).
    for step in connect_pipeline.STEPS:
        for hook in step.hooks:
            assert callable(getattr(WebSocketView, hook)), hook
    assert [s.name for s in connect_pipeline.STEPS if s.in_statement] == ["rate limit", "token", "open"]
    assert len(connect_pipeline.STEPS) == 9


def _plans():
    found = checks.run_checks(include_deployment_checks=True)
    return {m.obj: m.msg for m in found if m.id == "aws_websockets.I090"}


@pytest.mark.django_db
def test_check_deploy_reports_each_routed_view_s_plan():
    plans = _plans()
    assert plans[ChatView] == (
        "tests.views.ChatView connects in one statement (on PostgreSQL, outside ATOMIC_REQUESTS, for a "
        "token that comes with its login's cookie and a channel that admits everyone)."
    )
    assert plans[StaffView] == "tests.views.StaffView takes the general path because it sets `permissions_required`."


def test_plain_check_stays_quiet():
    assert not [m for m in checks.run_checks() if m.id == "aws_websockets.I090"]
