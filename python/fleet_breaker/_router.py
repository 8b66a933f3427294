"""FailoverRouter: the original's class, backed by the Rust crate."""

from __future__ import annotations

import json
from typing import Any, Awaitable, Callable, Dict, List, Optional, Sequence

from . import _native
from ._breaker import CircuitBreaker


def _wake(future: Any) -> None:
    """Completes `future` (a route's wake-up) unless it is already done."""
    if not future.done():
        future.set_result(None)


class FailoverRouter:
    """Routes each task to the first agent, in priority order, whose circuit
    admits it and whose call succeeds.

    ``redis_url=None`` is the embedded store; a URL is the fleet's Redis.
    Invalid settings raise ``ValueError``; an unreachable Redis at start
    raises ``StoreUnavailableError``; later outages follow ``store_policy``.
    """

    def __init__(
        self,
        max_retries: int = 3,
        redis_url: Optional[str] = None,
        *,
        circuit_breaker: Optional[CircuitBreaker] = None,
        attempt_timeout: Optional[float] = None,
        slow_call_threshold: Optional[float] = None,
        panic_mode: bool = False,
        failures_cap: Optional[int] = None,
        prefix: Optional[str] = None,
        store_policy: Optional[str] = None,
        instance_id: Optional[str] = None,
        redis_timeout: Optional[float] = None,
    ) -> None:
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise ValueError(
                f"invalid router config: `max_retries` is {max_retries!r}, but it must be an integer, at least 1"
            )
        self.max_retries = max_retries
        self.redis_url = redis_url
        self._options = dict(
            attempt_timeout=attempt_timeout,
            slow_call_threshold=slow_call_threshold,
            panic_mode=panic_mode,
            failures_cap=failures_cap,
        )
        self._store = dict(
            prefix=prefix,
            store_policy=store_policy,
            instance_id=instance_id,
            redis_timeout=redis_timeout,
        )
        self._native: Any = None
        self.circuit_breaker = circuit_breaker if circuit_breaker is not None else CircuitBreaker()

    @property
    def circuit_breaker(self) -> CircuitBreaker:
        """The breaker the router decides with; assign a new one to change
        its settings (it takes the router's store unless it has its own)."""
        return self._breaker

    @circuit_breaker.setter
    def circuit_breaker(self, breaker: CircuitBreaker) -> None:
        if not isinstance(breaker, CircuitBreaker):
            raise TypeError(f"circuit_breaker must be a CircuitBreaker, not {type(breaker).__name__}")
        breaker._adopt(self.redis_url, self._store)
        self._breaker = breaker
        self._native = None

    def _router(self) -> Any:
        native = self._native
        if native is None:
            native = _native.NativeRouter(self._breaker._native, self.max_retries, **self._options)
            self._native = native
        return native

    async def route_task(
        self,
        task_id: str,
        agents: Sequence[str],
        task_func: Callable[..., Awaitable[Any]],
        **kwargs: Any,
    ) -> Any:
        """Calls ``await task_func(agent_id, **kwargs)`` on the agents in
        priority order; returns the first result. Rejected agents are
        skipped with no call; at most ``max_retries`` calls are made.

        Raises ``AllAgentsFailed`` (with each agent's attempt, and the
        exceptions raised) when no agent served; ``ValueError`` for an empty
        list, a repeated agent or an invalid id.
        """
        if isinstance(agents, (str, bytes)):
            raise ValueError(
                f"task {task_id!r}: agents must be a list of agent ids, not one string ({agents!r})"
            )
        return await self._router().route(task_id, list(agents), task_func, kwargs, _wake)

    def get_health_status(self) -> Dict[str, Any]:
        """The original's health dict (blocks briefly with the GIL released)."""
        return json.loads(self._router().health_status_json())

    async def health_status(self) -> Dict[str, Any]:
        """``get_health_status``, awaited."""
        return json.loads(await self._router().health_status_json_async())

    def get_recent_failures(self, limit: int = 10) -> List[Dict[str, Any]]:
        """Up to ``limit`` routing failures of the fleet, newest first: dicts
        with ``task_id``, ``agent_id``, ``reason``, ``timestamp``, ..."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
            raise ValueError(f"`limit` is {limit!r}, but it must be an integer, at least 0")
        return json.loads(self._router().recent_failures_json(limit))

    def reset_agent(self, agent_id: str) -> None:
        """Admin reset of one agent's circuit, fleet-wide."""
        self._router()
        self._breaker.reset(agent_id)

    def flush(self) -> None:
        """Sends this pod's pending counts to the store now (call before exit)."""
        self._router().flush_routing_events()
        self._breaker.flush()
