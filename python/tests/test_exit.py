"""The interpreter exits cleanly after async routes: the runtime's threads
finish handing results to asyncio (under the GIL) before finalization."""

import subprocess
import sys

SCRIPT = """
import asyncio, fleet_breaker as fb
r = fb.FailoverRouter(max_retries=3)
async def call_agent(agent_id, data):
    if agent_id == "agent-1":
        raise ConnectionError("refused")
    return data
async def main():
    for i in range(3):
        await r.route_task(task_id=f"t{i}", agents=["agent-1", "agent-2"], task_func=call_agent, data=i)
        try:
            await r.route_task(task_id="x", agents=["agent-1"], task_func=call_agent, data=i)
        except fb.AllAgentsFailed:
            pass
asyncio.run(main())
r.get_recent_failures(limit=10)
"""


def test_twenty_processes_exit_with_status_zero():
    codes = [subprocess.run([sys.executable, "-c", SCRIPT], timeout=60).returncode for _ in range(20)]
    assert codes == [0] * 20
