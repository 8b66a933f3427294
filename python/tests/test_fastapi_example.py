"""examples/fastapi_app.py: health, failures, and the token-guarded reset."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
from fastapi.testclient import TestClient  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "fastapi_app.py"


@pytest.fixture
def client(monkeypatch):
    monkeypatch.setenv("ADMIN_TOKEN", "s3cret")
    monkeypatch.delenv("REDIS_URL", raising=False)
    spec = importlib.util.spec_from_file_location("fastapi_app", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with TestClient(module.app) as client:
        yield client


def test_health_failures_and_reset_with_a_token(client):
    assert client.post("/api/tasks/t1", json={"x": 1}).json() == {
        "success": True,
        "result": {"agent": "agent-1", "echo": {"x": 1}},
    }
    health = client.get("/api/circuit-breaker/health").json()
    assert (health["total_agents"], health["healthy_agents"], health["routing_events"]) == (3, 3, 1)
    assert client.get("/api/circuit-breaker/failures").json() == []
    assert client.post("/api/circuit-breaker/reset/agent-1").status_code == 401
    assert client.post("/api/circuit-breaker/reset/agent-1", headers={"Authorization": "Bearer nope"}).status_code == 401
    ok = client.post("/api/circuit-breaker/reset/agent-1", headers={"Authorization": "Bearer s3cret"})
    assert ok.json() == {"status": "reset", "agent_id": "agent-1"}
    bad = client.post("/api/circuit-breaker/reset/bad%20id", headers={"Authorization": "Bearer s3cret"})
    assert bad.status_code == 400
    assert client.get("/api/circuit-breaker/reset/agent-1").status_code == 405
