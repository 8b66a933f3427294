"""The trip policies from Python: a failure rate, a slow-call rate, their
window and minimum, the reporting quorum and the backoff's jitter, as
keyword arguments of CircuitBreaker (all off by default)."""

from __future__ import annotations

import asyncio

import pytest

from fleet_breaker import CircuitBreaker, CircuitOpenError, CircuitState


async def alternate(breaker, agent, calls):
    """Up to `calls` guarded calls, every second one failing, until one is
    refused; the calls made."""
    for i in range(calls):
        try:
            async with breaker.guard(agent):
                if i % 2:
                    raise RuntimeError("boom")
        except RuntimeError:
            pass
        except CircuitOpenError:
            return i
    return calls


async def test_a_failure_rate_trips_an_agent_that_never_fails_five_times_in_a_row(store):
    rate = CircuitBreaker(failure_threshold=5, failure_rate_threshold=0.5, window=10, minimum_calls=4, **store)
    made = await alternate(rate, "agent-r", 20)
    assert made < 20, "refused before the 20th call"
    assert rate.get_state("agent-r") is CircuitState.OPEN
    last = rate.get_metrics("agent-r")
    assert last["metrics"]["failure_count"] < 5, "never five failures in a row"


async def test_without_a_rate_the_same_calls_leave_the_circuit_closed(store):
    consecutive = CircuitBreaker(failure_threshold=5, **store)
    assert await alternate(consecutive, "agent-c", 20) == 20
    assert consecutive.get_state("agent-c") is CircuitState.CLOSED


async def test_slow_calls_trip_by_their_rate_timed_from_grant_to_settling(store):
    breaker = CircuitBreaker(
        failure_threshold=5,
        slow_call_duration=0.02,
        slow_call_rate_threshold=0.5,
        window=10,
        minimum_calls=4,
        **store,
    )
    for _ in range(3):
        async with breaker.guard("agent-fast"):
            pass
    assert breaker.get_state("agent-fast") is CircuitState.CLOSED
    for _ in range(4):
        async with breaker.guard("agent-slow"):
            await asyncio.sleep(0.03)
    assert breaker.get_state("agent-slow") is CircuitState.OPEN
    permit = await breaker.acquire("agent-slow2")
    await asyncio.sleep(0.03)
    await permit.success()
    for _ in range(3):
        permit = await breaker.acquire("agent-slow2")
        await asyncio.sleep(0.03)
        await permit.failure("slow and failed")
    assert breaker.get_state("agent-slow2") is CircuitState.OPEN


def quorum_of_two(store):
    """A breaker that trips on a failure rate, but fleet-wide only once two
    pods report trouble."""
    return CircuitBreaker(
        failure_threshold=100,
        failure_rate_threshold=0.5,
        window=10,
        minimum_calls=4,
        min_reporting_pods=2,
        backoff_jitter=0.1,
        **store,
    )


async def test_a_quorum_of_two_keeps_one_pods_rate_trip_on_that_pod(store):
    breaker = quorum_of_two(store)
    assert await alternate(breaker, "agent-q", 20) < 20, "refused on this pod"
    assert breaker.get_state("agent-q") is CircuitState.CLOSED, "the fleet's state"
    with pytest.raises(CircuitOpenError) as refused:
        async with breaker.guard("agent-q"):
            pass
    assert refused.value.cause == "local_quorum"


@pytest.mark.parametrize(
    "kwargs, field",
    [
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"slow_call_rate_threshold": -0.1}, "slow_call_rate_threshold"),
        ({"slow_call_duration": -1}, "slow_call_duration"),
        ({"window": 0.5}, "window"),
        ({"minimum_calls": 0}, "minimum_calls"),
        ({"min_reporting_pods": 0}, "min_reporting_pods"),
        ({"min_reporting_pods": 2**40}, "min_reporting_pods"),
        ({"backoff_jitter": 0.9}, "backoff_jitter"),
    ],
)
def test_invalid_policies_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=f"`{field}` is"):
        CircuitBreaker(**kwargs)


async def test_an_agents_own_settings_change_its_judgement_on_every_pod(store):
    """configure() stores settings with the agent: from the next call, every
    breaker on the store judges that agent by them, and no other."""
    pod_a = CircuitBreaker(failure_threshold=5, **store)
    pod_b = pod_a if not store else CircuitBreaker(failure_threshold=5, **store)
    assert pod_a.settings("agent-tight") == {}
    stored = pod_a.configure("agent-tight", failure_threshold=2)
    assert stored == {"failure_threshold": 2}
    assert pod_b.settings("agent-tight") == {"failure_threshold": 2}
    for _ in range(2):
        with pytest.raises(RuntimeError):
            async with pod_b.guard("agent-tight"):
                raise RuntimeError("boom")
    assert pod_b.get_state("agent-tight") is CircuitState.OPEN, "two failures are enough"
    for _ in range(2):
        with pytest.raises(RuntimeError):
            async with pod_b.guard("agent-loose"):
                raise RuntimeError("boom")
    assert pod_b.get_state("agent-loose") is CircuitState.CLOSED, "the others keep five"
    assert pod_a.configure("agent-tight") == {}, "no keyword clears them"
    assert pod_b.settings("agent-tight") == {}


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({"failure_threshhold": 2}, "failure_threshhold"),
        ({"failure_threshold": 0}, "failure_threshold"),
        ({"failure_rate_threshold": 1.5}, "failure_rate_threshold"),
        ({"window_ms": "soon"}, "invalid type"),
    ],
)
def test_settings_that_cannot_apply_raise_value_error_and_write_nothing(kwargs, says):
    breaker = CircuitBreaker()
    with pytest.raises(ValueError, match=says):
        breaker.configure("agent-1", **kwargs)
    assert breaker.settings("agent-1") == {}


async def test_local_opens_lists_what_this_pod_opened_below_the_quorum(store):
    breaker = quorum_of_two(store)
    assert breaker.local_opens() == []
    assert await alternate(breaker, "agent-q", 20) < 20
    [opened] = breaker.local_opens()
    assert opened["agent_id"] == "agent-q"
    assert opened["reason"] == "failure_rate"
    assert 0 < opened["seconds_left"] <= 60
