"""Benchmark of the Python package (build it with --release first):

    maturin develop --release && python bench.py [--calls N]

Prints, embedded and on a private redis-server (started on a free port):
- the per-call cost of `async with breaker.guard(...)` on a closed circuit
  and of `await router.route_task(...)` on a healthy agent (asyncio included);
- Redis commands per 1,000 guarded calls at 1,000 calls/s (INFO
  commandstats delta over a steady run).

Goals: at most 5 us per guarded call on a closed circuit; at most 5 Redis
commands per 1,000 calls.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).with_name("tests")))

from conftest import RedisServer, _free_port  # noqa: E402

from fleet_breaker import CircuitBreaker, FailoverRouter  # noqa: E402


async def guarded(breaker: CircuitBreaker, n: int) -> float:
    guard = breaker.guard
    for _ in range(1000):  # warm-up: the agent exists, the cache holds it
        async with guard("agent-1"):
            pass
    start = time.perf_counter()
    for _ in range(n):
        async with guard("agent-1"):
            pass
    return (time.perf_counter() - start) / n * 1e6


async def routed(router: FailoverRouter, n: int) -> float:
    async def call(agent_id, data):
        return data

    for i in range(200):
        await router.route_task(task_id="warm", agents=["agent-1", "agent-2"], task_func=call, data=i)
    start = time.perf_counter()
    for i in range(n):
        await router.route_task(task_id="t", agents=["agent-1", "agent-2"], task_func=call, data=i)
    return (time.perf_counter() - start) / n * 1e6


# Commands Redis counts in commandstats when a Lua script runs them (as
# examples/support/commandstats.rs): not sent by a client.
RUN_INSIDE_SCRIPTS = set("time hmget hset exists zrange zadd zrem zremrangebyscore del sadd xadd publish".split())


async def paced(breaker: CircuitBreaker, server: RedisServer, seconds: float) -> float:
    """Guarded calls at 1,000/s for `seconds`; Redis commands the pod sent
    per 1,000 calls (a script call counts once, its inner commands not)."""
    for _ in range(100):
        async with breaker.guard("agent-paced"):
            pass
    await asyncio.sleep(1.5)  # let the warm-up's flush pass
    before = server.commandstats()
    start = time.perf_counter()
    calls = 0
    while (elapsed := time.perf_counter() - start) < seconds:
        due = int(elapsed * 1000)
        while calls < due:
            async with breaker.guard("agent-paced"):
                pass
            calls += 1
        await asyncio.sleep(0.001)
    after = server.commandstats()
    per_command = {k: round((n - before.get(k, 0)) / calls * 1000, 2) for k, n in after.items() if k != "info"}
    print("redis commands per 1,000 calls, by command:", {k: v for k, v in per_command.items() if v})
    sent = sum(v for k, v in per_command.items() if k not in RUN_INSIDE_SCRIPTS)
    print(f"  sent by the pod: {sent:.2f}; counting the commands scripts run: {sum(per_command.values()):.2f}")
    return sent


async def main(calls: int, paced_seconds: float) -> dict:
    binary = shutil.which("redis-server")
    if binary is None:
        sys.exit("redis-server is not on PATH")
    port = _free_port()
    directory = tempfile.mkdtemp()
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", directory],
        stdout=subprocess.DEVNULL,
    )
    try:
        server = RedisServer(port, process)
        for _ in range(500):
            try:
                if server.command("PING").startswith(b"+PONG"):
                    break
            except OSError:
                time.sleep(0.01)
        redis = {"redis_url": server.url, "prefix": f"bench-{uuid.uuid4().hex[:8]}"}
        out = {}
        out["guard_us_embedded"] = await guarded(CircuitBreaker(), calls)
        out["guard_us_redis"] = await guarded(CircuitBreaker(**redis), calls)
        out["route_task_us_embedded"] = await routed(FailoverRouter(), calls // 10)
        out["route_task_us_redis"] = await routed(FailoverRouter(**redis), calls // 10)
        out["redis_commands_per_1000_calls_at_1000_per_s"] = await paced(CircuitBreaker(**redis), server, paced_seconds)
        # The same with a 2 s staleness bound (pings and refreshes half as often).
        out["redis_commands_per_1000_calls_max_staleness_2s"] = await paced(
            CircuitBreaker(max_staleness=2.0, **redis), server, paced_seconds
        )
        return out
    finally:
        process.kill()
        shutil.rmtree(directory, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--paced-seconds", type=float, default=10.0)
    args = parser.parse_args()
    figures = asyncio.run(main(args.calls, args.paced_seconds))
    for name, value in figures.items():
        print(f"{name:48} {value:10.2f}")
    print(json.dumps({k: round(v, 3) for k, v in figures.items()}))
