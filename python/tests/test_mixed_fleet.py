"""One fleet, two languages: Rust pods (examples/py_interop.rs) and Python
pods (pod.py) on one Redis share each agent's breaker."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import commands_between

ROOT = Path(__file__).resolve().parents[2]
POD = Path(__file__).with_name("pod.py")
SCRIPTS = ("evalsha", "eval", "fcall", "evalsha_ro", "eval_ro")


@pytest.fixture(scope="session")
def rust_pod() -> str:
    """The Rust pod's binary, built once (the root target dir is reused)."""
    given = os.environ.get("FLEET_BREAKER_RUST_POD")
    if given:
        return given
    subprocess.run(
        ["cargo", "build", "--quiet", "--all-features", "--example", "py_interop"],
        cwd=ROOT,
        check=True,
        timeout=1200,
    )
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return str(target / "debug" / "examples" / "py_interop")


def run(cmd, backoff_ms, **kwargs):
    env = dict(os.environ, BASE_BACKOFF_MS=str(backoff_ms))
    return subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, **kwargs)


def finish(process, timeout=30):
    out, _ = process.communicate(timeout=timeout)
    assert process.returncode == 0, f"{process.args} exited with {process.returncode}: {out}"
    return json.loads(out.strip().splitlines()[-1])


def script_calls(server):
    stats = server.commandstats()
    return {k: v for k, v in stats.items() if k in SCRIPTS}


@pytest.mark.parametrize("opener, watcher", [("rust", "python"), ("python", "rust")])
def test_a_circuit_opened_by_one_language_is_rejected_by_the_other_with_no_round_trip(
    redis_server, prefix, rust_pod, opener, watcher
):
    pods = {"rust": [rust_pod], "python": [sys.executable, str(POD)]}
    args = [redis_server.url, prefix, "agent-1"]
    # A long backoff: the circuit stays open for the whole check.
    waiting = run(pods[watcher] + ["expect-open"] + args, backoff_ms=20_000)
    opened = finish(run(pods[opener] + ["fail"] + args + ["5"], backoff_ms=20_000))
    assert opened == {"failed": 5}
    ready = waiting.stdout.readline().strip()
    assert ready == "ready", f"the {watcher} pod did not see the circuit open: {ready!r}"
    before = script_calls(redis_server)
    waiting.stdin.write("go\n")
    waiting.stdin.flush()
    answer = json.loads(waiting.stdout.readline())
    after = script_calls(redis_server)
    waiting.stdin.write("exit\n")
    waiting.stdin.flush()
    assert waiting.wait(30) == 0
    assert answer == {"rejected": 1000}
    # Rejected from the local cache, with no round trip: 1,000 rejections
    # cost no script call of their own (one each would be 1,000). Background
    # work on timers may fall in the window (the batched flush of the
    # rejection counter, once per flush interval, and cache refreshes): a
    # few calls at most.
    assert commands_between(before, after) <= 5


def test_exactly_half_open_max_calls_probes_fleet_wide_across_rust_and_python(redis_server, prefix, rust_pod):
    args = [redis_server.url, prefix, "agent-2"]
    # Two Rust and two Python pods poll the agent every 5 ms for 4 s and
    # hold every probe permit they get.
    probers = [run([rust_pod, "probe"] + args + ["4"], backoff_ms=200) for _ in range(2)]
    probers += [run([sys.executable, str(POD), "probe"] + args + ["4"], backoff_ms=200) for _ in range(2)]
    for p in probers:
        assert p.stdout.readline().strip() == "ready"
    # Opened for 300 ms, then half-open while all four are polling.
    assert finish(run([rust_pod, "fail"] + args + ["5"], backoff_ms=200)) == {"failed": 5}
    answers = [finish(p) for p in probers]
    assert sum(a["probes"] for a in answers) == 3, answers
