"""A Python pod for test_mixed_fleet.py: the same modes and config as the
Rust pod examples/py_interop.rs.

    pod.py fail        REDIS_URL PREFIX AGENT N
    pod.py expect-open REDIS_URL PREFIX AGENT
    pod.py probe       REDIS_URL PREFIX AGENT SECS
"""

import asyncio
import json
import os
import sys
import time

from fleet_breaker import CircuitBreaker, CircuitOpenError


def breaker(url, prefix):
    base = int(os.environ.get("BASE_BACKOFF_MS", "200")) / 1000
    # A long max_staleness: no cache refresh (a script call) falls in the
    # test's measuring window by chance. As in examples/py_interop.rs.
    return CircuitBreaker(
        failure_threshold=5, half_open_max_calls=3, base_backoff=base, redis_url=url, prefix=prefix, max_staleness=10
    )


async def main(mode, url, prefix, agent, *rest):
    b = breaker(url, prefix)
    if mode == "fail":
        failed = 0
        for _ in range(int(rest[0])):
            try:
                async with b.guard(agent):
                    failed += 1
                    raise ConnectionError("python pod: simulated failure")
            except (ConnectionError, CircuitOpenError):
                pass
        print(json.dumps({"failed": failed}), flush=True)
    elif mode == "expect-open":
        deadline = time.monotonic() + 10
        while True:
            try:
                # Neutral: no success is counted, so nothing is flushed later.
                (await b.acquire(agent)).neutral()
            except CircuitOpenError:
                break
            if time.monotonic() > deadline:
                sys.exit("the circuit did not open within 10 s")
            await asyncio.sleep(0.01)
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        rejected = 0
        for _ in range(1000):
            try:
                async with b.guard(agent):
                    pass
            except CircuitOpenError:
                rejected += 1
        print(json.dumps({"rejected": rejected}), flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    elif mode == "probe":
        b._native  # connected before "ready"
        until = time.monotonic() + float(rest[0])
        print("ready", flush=True)
        held = []
        while time.monotonic() < until:
            try:
                permit = await b.acquire(agent)
                if permit.is_probe:
                    held.append(permit)
                else:
                    permit.neutral()  # a closed circuit's permit: nothing counted
            except CircuitOpenError:
                pass
            await asyncio.sleep(0.005)
        print(json.dumps({"probes": len(held)}), flush=True)
        # Exit holding the permits: none is handed back while others probe.
        os._exit(0)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:]))
