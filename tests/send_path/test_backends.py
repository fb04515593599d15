"""The send backends package (``backends/``): the dotted paths settings name, the ``Outcome`` of a
call, the one ``RetryPolicy`` every backend runs its calls under. Sends through real servers and
faults are in test_sending*.py."""

import asyncio
import json

import pytest
from django.core.exceptions import ImproperlyConfigured

from django_aws_api_gateway_websockets import backends
from django_aws_api_gateway_websockets.backends import CONNECT_ATTEMPTS, Endpoint, Outcome, RetryPolicy
from django_aws_api_gateway_websockets.backends.base import (
    DELIVERED,
    Answer,
    Reachability,
    Sent,
    throttled_retries,
)
from django_aws_api_gateway_websockets.exceptions import WebSocketsError

PACKAGE = "django_aws_api_gateway_websockets"


@pytest.fixture(autouse=True)
def fresh_backends():
    backends.reset_backends()
    yield
    backends.reset_backends()


@pytest.mark.parametrize(
    ("setting", "expected"),
    [
        ({}, "AiohttpBackend"),
        # The paths documented in 5.0 (docs/api.md, docs/sending.md, docs/testing.md).
        ({"send_backend": f"{PACKAGE}.backends.AiohttpBackend"}, "AiohttpBackend"),
        ({"send_backend": f"{PACKAGE}.backends.Boto3Backend"}, "Boto3Backend"),
        ({"send_backend": f"{PACKAGE}.testing.InMemoryBackend"}, "InMemoryBackend"),
        # The modules they live in now.
        ({"send_backend": f"{PACKAGE}.backends.aiohttp.AiohttpBackend"}, "AiohttpBackend"),
        ({"send_backend": f"{PACKAGE}.backends.boto3.Boto3Backend"}, "Boto3Backend"),
        ({"send_backend": f"{PACKAGE}.backends.memory.InMemoryBackend"}, "InMemoryBackend"),
        ({"send_backend": f"{PACKAGE}.backends.InMemoryBackend"}, "InMemoryBackend"),
        # The deprecated send_transport names (check W070).
        ({"send_transport": "native"}, "AiohttpBackend"),
        ({"send_transport": "aiohttp"}, "AiohttpBackend"),
        ({"send_transport": "threads"}, "Boto3Backend"),
    ],
)
def test_every_accepted_backend_setting_gives_its_backend(settings, setting, expected):
    settings.WEBSOCKETS = setting
    backend = backends.get_backend()
    assert type(backend) is getattr(backends, expected)
    assert backends.get_backend() is backend  # one instance per process


def test_the_in_memory_backend_is_one_class_under_each_of_its_paths():
    from django_aws_api_gateway_websockets.testing import InMemoryBackend
    from django_aws_api_gateway_websockets.testing.capture import InMemoryBackend as from_capture

    assert InMemoryBackend is from_capture is backends.InMemoryBackend is backends.memory.InMemoryBackend


def test_an_unknown_send_transport_is_improperly_configured(settings):
    settings.WEBSOCKETS = {"send_transport": "carrier-pigeon"}
    with pytest.raises(backends.InvalidSendBackend, match="carrier-pigeon") as raised:
        backends.get_backend()
    # Caught as the package's error, as Django's configuration error, and as before (ValueError).
    assert isinstance(raised.value, WebSocketsError | ImproperlyConfigured | ValueError)
    assert all(isinstance(raised.value, kind) for kind in (WebSocketsError, ImproperlyConfigured, ValueError))


def test_outcome_codes_are_the_strings_results_have_always_carried():
    assert Outcome.GONE == "GoneException" == backends.GONE
    assert Outcome.THROTTLED == "LimitExceededException"
    assert Outcome.uncertain("ServerDisconnectedError") == "Uncertain:ServerDisconnectedError"
    assert json.dumps({"c": Outcome.THROTTLED}) == '{"c": "LimitExceededException"}'
    assert f"{Outcome.GONE}" == "GoneException"


@pytest.mark.parametrize(
    ("code", "outcome"),
    [
        (None, Outcome.DELIVERED),
        ("GoneException", Outcome.GONE),
        ("LimitExceededException", Outcome.THROTTLED),
        ("Uncertain:SendDeadline", Outcome.UNCERTAIN),
        ("ForbiddenException", Outcome.FAILED),
        ("UncertainButNotThePrefix", Outcome.FAILED),
    ],
)
def test_outcome_of_a_code(code, outcome):
    assert Outcome.of(code) is outcome


ENDPOINT = Endpoint("https://abc.execute-api.eu-west-1.amazonaws.com/prod", "eu-west-1")
THROTTLED = Answer(Sent.ANSWERED, "LimitExceededException", 429)
REFUSED = Answer(Sent.NOT_SENT, "ClientConnectorError")


def run_both_ways(policy, answers, reach_factory=Reachability):
    """The call's code and attempts made, from a thread and from an event loop."""

    def attempts():
        queue, made = list(answers), []

        def attempt():
            made.append(1)
            return queue.pop(0)

        return attempt, made

    attempt, made_by_thread = attempts()
    by_thread = policy.run(attempt, ENDPOINT, reach_factory())
    attempt, made_on_loop = attempts()

    async def attempt_async():
        return attempt()

    on_loop = asyncio.run(policy.arun(attempt_async, ENDPOINT, reach_factory()))
    results = [(by_thread, len(made_by_thread)), (on_loop, len(made_on_loop))]
    assert results[0] == results[1], results  # one policy, whichever drives it
    return results[0]


def test_a_delivered_call_is_made_once():
    assert run_both_ways(RetryPolicy(5, 0), [DELIVERED]) == (None, 1)


def test_a_throttled_call_is_retried_until_it_goes_through():
    before = throttled_retries()
    assert run_both_ways(RetryPolicy(5, 0), [THROTTLED, THROTTLED, DELIVERED]) == (None, 3)
    assert throttled_retries() - before == 2 * 2  # two retries, from each driver


def test_a_throttled_call_gives_up_after_the_retries():
    before = throttled_retries()
    assert run_both_ways(RetryPolicy(2, 0), [THROTTLED] * 3) == ("LimitExceededException", 3)
    assert throttled_retries() - before == 2 * 2  # the last answer is not retried


@pytest.mark.parametrize("status", [500, 502, 504])
def test_an_answer_that_may_have_been_applied_is_never_retried(status):
    answer = Answer(Sent.ANSWERED, "InternalServerErrorException", status)
    assert run_both_ways(RetryPolicy(5, 0), [answer]) == ("Uncertain:InternalServerErrorException", 1)


def test_a_request_that_may_have_left_is_never_retried():
    answer = Answer(Sent.MAYBE, "ServerDisconnectedError")
    assert run_both_ways(RetryPolicy(5, 0), [answer]) == ("Uncertain:ServerDisconnectedError", 1)


def test_gone_and_other_errors_are_final():
    assert run_both_ways(RetryPolicy(5, 0), [Answer(Sent.ANSWERED, None, 410)]) == ("GoneException", 1)
    forbidden = Answer(Sent.ANSWERED, "ForbiddenException", 403)
    assert run_both_ways(RetryPolicy(5, 0), [forbidden]) == ("ForbiddenException", 1)
    assert run_both_ways(RetryPolicy(5, 0), [Answer(Sent.STOPPED, "NoCredentialsError")]) == ("NoCredentialsError", 1)


def test_a_connection_that_cannot_be_opened_is_tried_connect_attempts_times():
    assert run_both_ways(RetryPolicy(10, 0), [REFUSED] * 10) == ("ClientConnectorError", CONNECT_ATTEMPTS)


def test_an_endpoint_found_down_gives_up_the_send_s_next_call_at_its_first_failure():
    reach = Reachability()
    policy = RetryPolicy(10, 0)
    assert policy.run(lambda: REFUSED, ENDPOINT, reach) == "ClientConnectorError"
    assert reach.check(ENDPOINT) == "ClientConnectorError"  # the backends' attempts check it first
    made = []

    async def attempt():
        made.append(1)
        return REFUSED

    assert asyncio.run(policy.arun(attempt, ENDPOINT, reach)) == "ClientConnectorError"
    assert len(made) == 1


def test_the_wait_before_a_retry_is_the_backoff_of_the_attempt_before():
    steps = RetryPolicy(3, 0.05).steps(ENDPOINT, Reachability())
    assert next(steps) == 0.0  # the first attempt at once
    waits = [steps.send(THROTTLED) for _ in range(3)]
    assert all(0 <= wait <= 0.05 * 2**attempt for attempt, wait in enumerate(waits))
    with pytest.raises(StopIteration) as done:
        steps.send(THROTTLED)
    assert done.value.value == "LimitExceededException"
