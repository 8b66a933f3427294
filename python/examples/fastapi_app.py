"""The original's FastAPI integration, on fleet_breaker.

    pip install fastapi uvicorn
    ADMIN_TOKEN=change-me REDIS_URL=redis://127.0.0.1:6379 uvicorn fastapi_app:app

Without REDIS_URL the router uses the embedded store (one process). The
reset is a POST and needs `Authorization: Bearer $ADMIN_TOKEN`.
"""

import hmac
import os

from fastapi import FastAPI, Header, HTTPException

from fleet_breaker import AllAgentsFailed, FailoverRouter

app = FastAPI()
router = FailoverRouter(max_retries=3, redis_url=os.environ.get("REDIS_URL"))
ADMIN_TOKEN = os.environ.get("ADMIN_TOKEN", "")


@app.get("/api/circuit-breaker/health")
async def get_circuit_breaker_health():
    """Get circuit breaker status for all agents"""
    return await router.health_status()


@app.get("/api/circuit-breaker/failures")
async def get_circuit_breaker_failures():
    """Get recent routing failures"""
    return router.get_recent_failures(limit=20)


@app.post("/api/circuit-breaker/reset/{agent_id}")
async def reset_circuit(agent_id: str, authorization: str = Header(default="")):
    """Manually reset a circuit (admin only)"""
    if not ADMIN_TOKEN or not hmac.compare_digest(authorization, f"Bearer {ADMIN_TOKEN}"):
        raise HTTPException(status_code=401, detail="a valid admin token is required")
    try:
        router.reset_agent(agent_id)
    except ValueError as e:
        raise HTTPException(status_code=400, detail=str(e))
    return {"status": "reset", "agent_id": agent_id}


@app.post("/api/tasks/{task_id}")
async def route(task_id: str, data: dict):
    """Routes a task over three agents (a stand-in agent call)."""

    async def call_agent(agent_id: str, data: dict):
        return {"agent": agent_id, "echo": data}

    try:
        result = await router.route_task(
            task_id=task_id, agents=["agent-1", "agent-2", "agent-3"], task_func=call_agent, data=data
        )
        return {"success": True, "result": result}
    except AllAgentsFailed as e:
        return {"success": False, "error": str(e)}
