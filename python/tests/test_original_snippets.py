"""The original specification's snippets, run as written (only the import
line differs, and on Redis the router is given the URL), on the embedded
store and on a private Redis."""

from __future__ import annotations

import functools
import textwrap

import fleet_breaker
from fleet_breaker import AllAgentsFailed, CircuitBreaker, FailoverRouter

BASIC_USAGE = '''
# Initialize the router
router = FailoverRouter(max_retries=3)

# Define your agent task function
async def call_agent(agent_id: str, data: dict):
    """Your actual agent implementation"""
    # Make real request to agent
    result = await your_agent_client.execute(agent_id, data)
    return result

# Route task with automatic failover
async def process_task(task_id: str, data: dict):
    try:
        result = await router.route_task(
            task_id=task_id,
            agents=["agent-1", "agent-2", "agent-3"],  # Priority order
            task_func=call_agent,
            data=data
        )
        return {"success": True, "result": result}
    except AllAgentsFailed as e:
        return {"success": False, "error": str(e)}
'''

MONITORING_HEALTH = '''
# Get overall health status
health = router.get_health_status()
print(f"Total agents: {health['total_agents']}")
print(f"Healthy agents: {health['healthy_agents']}")
print(f"Open circuits: {health['open_circuits']}")
print(f"Half-open circuits: {health['half_open_circuits']}")

# Get recent failures
failures = router.get_recent_failures(limit=10)
for failure in failures:
    print(f"Task {failure['task_id']} on {failure['agent_id']}: {failure['reason']}")

# Manually reset a circuit (admin only)
router.reset_agent("agent-1")
'''

PER_AGENT_METRICS = '''
metrics = router.circuit_breaker.get_metrics("agent-1")
'''

CONFIGURATION = '''
# Customize circuit breaker behavior
router = FailoverRouter(max_retries=3)

# Adjust underlying circuit breaker settings
router.circuit_breaker = CircuitBreaker(
    failure_threshold=5,        # Failures before opening (default: 5)
    recovery_timeout=30,        # Timeout between recovery attempts (default: 30s)
    half_open_max_calls=3,      # Test calls in half-open state (default: 3)
    backoff_multiplier=1.5,     # Exponential backoff multiplier (default: 1.5)
)
'''


class FakeClient:
    """`your_agent_client`: agents in `down` raise, the others answer."""

    def __init__(self, down=()):
        self.down = set(down)
        self.calls = []

    async def execute(self, agent_id, data):
        self.calls.append(agent_id)
        if agent_id in self.down:
            raise ConnectionError(f"{agent_id} refused the connection")
        return {"agent": agent_id, "echo": data}


def namespace(store, client):
    """The snippets' globals: the package's names (the import line), the
    router given the Redis URL when the test runs on Redis."""
    return {
        "FailoverRouter": functools.partial(FailoverRouter, **store),
        "CircuitBreaker": CircuitBreaker,
        "AllAgentsFailed": AllAgentsFailed,
        "your_agent_client": client,
    }


async def test_basic_usage_fails_over_and_opens_the_dead_agents_circuit(store):
    client = FakeClient(down={"agent-1"})
    ns = namespace(store, client)
    exec(textwrap.dedent(BASIC_USAGE), ns)
    for i in range(5):
        answer = await ns["process_task"](f"task-{i}", {"n": i})
        assert answer == {"success": True, "result": {"agent": "agent-2", "echo": {"n": i}}}
    assert client.calls.count("agent-1") == 5
    # Five failures opened agent-1: it is now skipped with no call.
    answer = await ns["process_task"]("task-5", {"n": 5})
    assert answer["success"] is True
    assert client.calls.count("agent-1") == 5
    assert ns["router"].circuit_breaker.get_metrics("agent-1")["state"] == "open"


async def test_basic_usage_reports_all_agents_failed_readably(store):
    client = FakeClient(down={"agent-1", "agent-2", "agent-3"})
    ns = namespace(store, client)
    exec(textwrap.dedent(BASIC_USAGE), ns)
    answer = await ns["process_task"]("task-x", {})
    assert answer["success"] is False
    error = answer["error"]
    assert error.startswith('all 3 agents failed for task "task-x" (3 calls)')
    assert "agent-2 failed: ConnectionError: agent-2 refused the connection" in error


async def test_monitoring_health_prints_the_originals_fields(store, capsys):
    client = FakeClient(down={"agent-1"})
    ns = namespace(store, client)
    exec(textwrap.dedent(BASIC_USAGE), ns)
    for i in range(5):
        await ns["process_task"](f"task-{i}", {})
    exec(textwrap.dedent(MONITORING_HEALTH), ns)
    out = capsys.readouterr().out.splitlines()
    assert out[:4] == [
        "Total agents: 3",
        "Healthy agents: 2",
        "Open circuits: 1",
        "Half-open circuits: 0",
    ]
    failures = [line for line in out[4:] if line.startswith("Task ")]
    assert len(failures) == 5
    assert failures[0] == "Task task-4 on agent-1: ConnectionError: agent-1 refused the connection"
    # The snippet's last line reset agent-1.
    assert ns["router"].circuit_breaker.get_metrics("agent-1")["state"] == "closed"
    health = ns["router"].get_health_status()
    assert health["routing_events"] == 5
    assert set(health) >= {"total_agents", "open_circuits", "half_open_circuits", "healthy_agents", "routing_events"}


async def test_per_agent_metrics_has_the_originals_shape(store):
    client = FakeClient(down={"agent-1"})
    ns = namespace(store, client)
    exec(textwrap.dedent(BASIC_USAGE), ns)
    await ns["process_task"]("task-1", {})
    exec(textwrap.dedent(PER_AGENT_METRICS), ns)
    metrics = ns["metrics"]
    assert metrics["agent_id"] == "agent-1"
    assert metrics["state"] == "closed"
    assert metrics["backoff_seconds"] == 1.0
    assert set(metrics["metrics"]) == {
        "failure_count",
        "success_count",
        "total_rejections",
        "last_failure_time",
        "last_success_time",
    }
    assert metrics["metrics"]["failure_count"] == 1
    assert metrics["metrics"]["last_success_time"] is None
    assert metrics["metrics"]["last_failure_time"].endswith("Z")


async def test_configuration_assigns_a_breaker_that_the_router_then_uses(store):
    ns = namespace(store, FakeClient())
    exec(textwrap.dedent(CONFIGURATION), ns)
    router = ns["router"]
    assert router.circuit_breaker.failure_threshold == 5
    assert router.circuit_breaker.redis_url == store.get("redis_url")
    router.circuit_breaker = CircuitBreaker(failure_threshold=2)

    async def down(agent_id):
        raise RuntimeError("down")

    for i in range(2):
        try:
            await router.route_task(task_id=f"t{i}", agents=["agent-9"], task_func=down)
        except AllAgentsFailed:
            pass
    # The assigned breaker's threshold (2) opened it.
    assert router.circuit_breaker.get_metrics("agent-9")["state"] == "open"
    assert fleet_breaker.CircuitState(router.circuit_breaker.get_state("agent-9")) is fleet_breaker.CircuitState.OPEN
