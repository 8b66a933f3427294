"""The lower-level API (guard, permits, transitions), errors, and the
original's keyword-argument form of route_task."""

from __future__ import annotations

import asyncio
import traceback

import pytest

from fleet_breaker import (
    AllAgentsFailed,
    CircuitBreaker,
    CircuitOpenError,
    CircuitState,
    FailoverRouter,
    StoreUnavailableError,
)


async def fail_in_guard(breaker, agent, times):
    for _ in range(times):
        with pytest.raises(RuntimeError):
            async with breaker.guard(agent):
                raise RuntimeError("boom")


async def test_guard_counts_success_and_failure_and_opens_at_the_threshold(store):
    breaker = CircuitBreaker(failure_threshold=3, **store)
    async with breaker.guard("agent-1") as permit:
        assert permit.agent_id == "agent-1"
    breaker.flush()
    assert breaker.get_metrics("agent-1")["metrics"]["success_count"] == 1
    await fail_in_guard(breaker, "agent-1", 3)
    assert breaker.get_state("agent-1") is CircuitState.OPEN
    ran = False
    with pytest.raises(CircuitOpenError) as refused:
        async with breaker.guard("agent-1"):
            ran = True
    assert not ran
    assert refused.value.agent_id == "agent-1"
    assert refused.value.state == "open"
    assert refused.value.cause == "circuit"
    assert 0 < refused.value.retry_after <= 1.5
    assert "agent-1 rejected: circuit open" in str(refused.value)


async def test_cancelled_error_inside_guard_is_neutral(store):
    breaker = CircuitBreaker(failure_threshold=1, **store)
    for _ in range(3):
        with pytest.raises(asyncio.CancelledError):
            async with breaker.guard("agent-c"):
                raise asyncio.CancelledError()
    metrics = breaker.get_metrics("agent-c")
    assert metrics["state"] == "closed"
    assert metrics["metrics"]["failure_count"] == 0


async def test_a_cancelled_task_hands_its_half_open_probe_back(store):
    breaker = CircuitBreaker(failure_threshold=1, half_open_max_calls=1, base_backoff=0.01, max_backoff=0.02, **store)
    await fail_in_guard(breaker, "agent-p", 1)
    await asyncio.sleep(0.05)  # past the 15 ms backoff (a time rule, not a wait for a state)
    entered = asyncio.Event()

    async def hold_probe():
        async with breaker.guard("agent-p") as permit:
            assert permit.is_probe
            entered.set()
            await asyncio.sleep(30)

    task = asyncio.create_task(hold_probe())
    await asyncio.wait_for(entered.wait(), 5)
    with pytest.raises(CircuitOpenError):
        async with breaker.guard("agent-p"):
            pass
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The probe came back: the next caller gets it.
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        try:
            async with breaker.guard("agent-p") as permit:
                assert permit.is_probe
            break
        except CircuitOpenError:
            assert asyncio.get_running_loop().time() < deadline, "the probe permit was not handed back"
            await asyncio.sleep(0.01)
    assert breaker.get_state("agent-p") is CircuitState.CLOSED


async def test_transitions_iterate_for_alert_hooks(store):
    breaker = CircuitBreaker(failure_threshold=2, **store)
    stream = breaker.transitions()
    first = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0)  # the subscription exists before the failures
    await fail_in_guard(breaker, "agent-t", 2)
    transition = await asyncio.wait_for(first, 5)
    assert transition["agent_id"] == "agent-t"
    assert (transition["from"], transition["to"], transition["reason"]) == ("closed", "open", "failure_threshold")
    breaker.reset("agent-t")
    transition = await asyncio.wait_for(stream.__anext__(), 5)
    assert (transition["to"], transition["reason"]) == ("closed", "reset")
    await stream.aclose()


async def test_task_func_gets_keyword_arguments_and_its_exception_keeps_its_traceback(store):
    router = FailoverRouter(max_retries=2, **store)

    def explode(method):
        raise KeyError(f"no method {method}")

    async def agent_method(agent_id, **params):
        if agent_id == "agent-1":
            explode(params["method"])
        return (agent_id, params)

    result = await router.route_task(
        task_id="ains-1", agents=["agent-1", "agent-2"], task_func=agent_method, method="m", x=1
    )
    assert result == ("agent-2", {"method": "m", "x": 1})

    router = FailoverRouter(max_retries=1, **store)
    with pytest.raises(AllAgentsFailed) as failed:
        await router.route_task(task_id="ains-2", agents=["agent-1", "agent-3"], task_func=agent_method, method="q")
    error = failed.value
    assert error.task_id == "ains-2"
    assert [a.outcome for a in error.attempts] == ["failed", "not_tried"]
    raised = error.attempts[0].exception
    assert isinstance(raised, KeyError)
    frames = [frame.name for frame in traceback.extract_tb(raised.__traceback__)]
    assert frames[-2:] == ["agent_method", "explode"]
    assert error.__cause__ is raised
    assert error.errors == {"agent-1": raised}


async def test_rejected_agents_are_reported_and_not_called(store):
    router = FailoverRouter(max_retries=3, **store)
    router.circuit_breaker = CircuitBreaker(failure_threshold=1)
    calls = []

    async def down(agent_id):
        calls.append(agent_id)
        raise ConnectionError("refused")

    with pytest.raises(AllAgentsFailed):
        await router.route_task(task_id="t1", agents=["a-1"], task_func=down)
    with pytest.raises(AllAgentsFailed) as failed:
        await router.route_task(task_id="t2", agents=["a-1"], task_func=down)
    assert calls == ["a-1"]
    attempt = failed.value.attempts[0]
    assert (attempt.outcome, attempt.state, attempt.exception) == ("rejected", "open", None)
    assert failed.value.calls == 0


@pytest.mark.parametrize(
    "kwargs, rule",
    [
        ({"failure_threshold": 0}, "`failure_threshold` is 0"),
        ({"failure_threshold": -1}, "`failure_threshold` is -1"),
        ({"backoff_multiplier": 0.5}, "`backoff_multiplier` is 0.5"),
        ({"recovery_timeout": -3}, "`recovery_timeout` is -3"),
        ({"half_open_max_calls": 0}, "`half_open_max_calls` is 0"),
        ({"store_policy": "maybe"}, "`store_policy` is \"maybe\""),
    ],
)
def test_invalid_settings_raise_value_error_naming_the_rule(kwargs, rule):
    with pytest.raises(ValueError, match=rule.replace("(", r"\(")):
        CircuitBreaker(**kwargs)._native


async def test_invalid_ids_and_lists_raise_value_error(store):
    router = FailoverRouter(**store)

    async def ok(agent_id):
        return agent_id

    with pytest.raises(ValueError, match="invalid"):
        await router.route_task(task_id="t", agents=["bad id{}"], task_func=ok)
    with pytest.raises(ValueError, match="appears twice"):
        await router.route_task(task_id="t", agents=["a", "a"], task_func=ok)
    with pytest.raises(ValueError, match="empty"):
        await router.route_task(task_id="t", agents=[], task_func=ok)
    with pytest.raises(ValueError):
        router.circuit_breaker.get_metrics("has space")
    with pytest.raises(ValueError, match="max_retries"):
        FailoverRouter(max_retries=0)


def test_unreachable_redis_raises_store_unavailable_at_start():
    with pytest.raises(StoreUnavailableError) as error:
        FailoverRouter(redis_url="redis://:secret@127.0.0.1:1", redis_timeout=0.2).get_health_status()
    assert "secret" not in str(error.value)
    with pytest.raises(ValueError):
        FailoverRouter(redis_url="http://nope").get_health_status()


async def test_redis_outage_follows_the_fail_closed_policy(redis_server, prefix):
    import subprocess

    from conftest import RedisServer, _free_port, wait_until

    # A second private server, stopped mid-test.
    port = _free_port()
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", ""],
        stdout=subprocess.DEVNULL,
    )
    try:
        server = RedisServer(port, process)
        wait_until(lambda: _pings(server), what="redis-server to answer")
        breaker = CircuitBreaker(redis_url=server.url, prefix=prefix, store_policy="fail_closed", redis_timeout=0.1)
        async with breaker.guard("agent-x"):
            pass
        process.kill()
        process.wait(5)
        refused = None
        for _ in range(50):
            try:
                async with breaker.guard("agent-y"):
                    pass
            except CircuitOpenError as e:
                refused = e
                break
            await asyncio.sleep(0.02)
        assert refused is not None and refused.cause == "store_unavailable"
        with pytest.raises(StoreUnavailableError):
            breaker.get_metrics("agent-x")
    finally:
        process.kill()


def _pings(server):
    try:
        return server.command("PING").startswith(b"+PONG")
    except OSError:
        return False


async def test_a_cancelled_route_hands_its_probe_back_and_counts_nothing(store):
    router = FailoverRouter(**store)
    router.circuit_breaker = CircuitBreaker(failure_threshold=1, half_open_max_calls=1, base_backoff=0.01, max_backoff=0.02)
    breaker = router.circuit_breaker

    async def down(agent_id):
        raise ConnectionError("refused")

    with pytest.raises(AllAgentsFailed):
        await router.route_task(task_id="t0", agents=["agent-r"], task_func=down)
    await asyncio.sleep(0.05)  # past the 15 ms backoff (a time rule, not a wait for a state)
    entered = asyncio.Event()

    async def hang(agent_id):
        entered.set()
        await asyncio.sleep(30)

    task = asyncio.create_task(router.route_task(task_id="t1", agents=["agent-r"], task_func=hang))
    await asyncio.wait_for(entered.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        try:
            async with breaker.guard("agent-r") as permit:
                assert permit.is_probe
            break
        except CircuitOpenError:
            assert asyncio.get_running_loop().time() < deadline, "the probe permit was not handed back"
            await asyncio.sleep(0.01)
    # The cancelled call counted no failure (one would have reopened it); the
    # returned probe's success closed the circuit.
    assert breaker.get_state("agent-r") is CircuitState.CLOSED


async def test_attempt_timeout_fails_over_from_a_hanging_agent(store):
    router = FailoverRouter(attempt_timeout=0.05, **store)

    async def agent(agent_id):
        if agent_id == "slow-1":
            await asyncio.sleep(30)
        return agent_id

    assert await router.route_task(task_id="t", agents=["slow-1", "fast-1"], task_func=agent) == "fast-1"
    with pytest.raises(AllAgentsFailed) as failed:
        await router.route_task(task_id="t2", agents=["slow-1"], task_func=agent)
    assert failed.value.attempts[0].outcome == "timed_out"
    assert "timed out after 50ms" in str(failed.value)
