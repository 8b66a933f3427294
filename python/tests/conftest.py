"""Fixtures: a private redis-server on a free port (never 6379), a unique
key prefix per test, INFO commandstats reading."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from typing import Dict, Iterator

import pytest


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    """A redis-server this test session started, with a tiny RESP client."""

    def __init__(self, port: int, process: subprocess.Popen) -> None:
        self.port = port
        self.process = process
        self.url = f"redis://127.0.0.1:{port}"

    def command(self, *args: str) -> bytes:
        """One command; the raw reply."""
        payload = f"*{len(args)}\r\n".encode()
        for arg in args:
            data = str(arg).encode()
            payload += b"$%d\r\n%s\r\n" % (len(data), data)
        with socket.create_connection(("127.0.0.1", self.port), timeout=5) as s:
            s.sendall(payload)
            reply = b""
            s.settimeout(5)
            while True:
                chunk = s.recv(65536)
                reply += chunk
                if not chunk or _complete(reply):
                    return reply

    def commandstats(self) -> Dict[str, int]:
        """Calls per command since the server started (INFO commandstats)."""
        text = self.command("INFO", "commandstats").decode()
        calls = {}
        for line in text.splitlines():
            if line.startswith("cmdstat_"):
                name, rest = line[len("cmdstat_") :].split(":", 1)
                fields = dict(kv.split("=") for kv in rest.split(","))
                calls[name] = int(fields["calls"])
        return calls


def _complete(reply: bytes) -> bool:
    if reply.startswith(b"$"):
        header, _, body = reply.partition(b"\r\n")
        return len(body) >= int(header[1:]) + 2
    return reply.endswith(b"\r\n")


def commands_between(before: Dict[str, int], after: Dict[str, int], ignore=("info",)) -> int:
    """Commands run between two commandstats readings (the readings excluded)."""
    return sum(n - before.get(k, 0) for k, n in after.items() if k not in ignore)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.fail("redis-server is not on PATH: scripts/test installs it (apt-get install redis-server)")
    port = _free_port()
    directory = tempfile.mkdtemp(prefix="fleet-breaker-py-")
    process = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", directory],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(port, process)
    deadline = time.monotonic() + 10
    while True:
        try:
            if server.command("PING").startswith(b"+PONG"):
                break
        except OSError:
            pass
        if time.monotonic() > deadline or process.poll() is not None:
            process.kill()
            pytest.fail(f"redis-server did not start on port {port}")
        time.sleep(0.02)
    yield server
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
    shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests share one server safely."""
    return f"pytest-{uuid.uuid4().hex[:10]}"


@pytest.fixture(params=["embedded", "redis"])
def store(request, redis_server, prefix):
    """Keyword arguments for FailoverRouter / CircuitBreaker: the embedded
    store, then the private Redis."""
    if request.param == "embedded":
        return {}
    return {"redis_url": redis_server.url, "prefix": prefix}


def wait_until(predicate, timeout: float = 10.0, interval: float = 0.01, what: str = "condition"):
    """Polls `predicate` until it is true, at most `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)
