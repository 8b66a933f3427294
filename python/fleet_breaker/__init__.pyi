"""Type stubs of fleet_breaker (the Rust crate fleet-breaker, from asyncio)."""

import enum
from types import TracebackType
from typing import Any, AsyncIterator, Awaitable, Callable, Dict, List, Optional, Sequence, Type

class FleetBreakerError(Exception): ...
class StoreUnavailableError(FleetBreakerError, ConnectionError): ...

class CircuitOpenError(FleetBreakerError):
    agent_id: str
    state: str
    retry_after: Optional[float]
    cause: str
    def __init__(
        self, message: str, agent_id: str, state: str, retry_after: Optional[float], cause: str
    ) -> None: ...

class AgentAttempt:
    agent_id: str
    outcome: str
    reason: str
    state: Optional[str]
    retry_after: Optional[float]
    exception: Optional[BaseException]
    def __init__(
        self,
        agent_id: str,
        outcome: str,
        reason: str,
        state: Optional[str],
        retry_after: Optional[float],
        exception: Optional[BaseException],
    ) -> None: ...

class AllAgentsFailed(FleetBreakerError):
    task_id: str
    attempts: List[AgentAttempt]
    calls: int
    def __init__(self, message: str, task_id: str, attempts: Sequence[AgentAttempt], calls: int) -> None: ...
    @property
    def errors(self) -> Dict[str, BaseException]: ...

class CircuitState(str, enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    FORCED_CLOSED = "forced_closed"

class Permit:
    @property
    def agent_id(self) -> str: ...
    @property
    def is_probe(self) -> bool: ...
    @property
    def generation(self) -> int: ...
    async def success(self) -> None: ...
    async def failure(self, reason: str = "") -> None: ...
    def neutral(self) -> None: ...

class _GrantedPermit:
    @property
    def agent_id(self) -> str: ...
    @property
    def is_probe(self) -> bool: ...
    @property
    def generation(self) -> int: ...

class _Guard:
    async def __aenter__(self) -> _GrantedPermit: ...
    async def __aexit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...

class CircuitBreaker:
    failure_threshold: int
    recovery_timeout: float
    half_open_max_calls: int
    backoff_multiplier: float
    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 30,
        half_open_max_calls: int = 3,
        backoff_multiplier: float = 1.5,
        *,
        base_backoff: float = 1.0,
        max_backoff: float = 60.0,
        redis_url: Optional[str] = ...,
        prefix: Optional[str] = None,
        store_policy: Optional[str] = None,
        instance_id: Optional[str] = None,
        redis_timeout: Optional[float] = None,
        max_staleness: Optional[float] = None,
        flush_interval: Optional[float] = None,
        failure_rate_threshold: Optional[float] = None,
        slow_call_duration: Optional[float] = None,
        slow_call_rate_threshold: Optional[float] = None,
        window: Optional[float] = None,
        minimum_calls: Optional[int] = None,
        min_reporting_pods: Optional[int] = None,
        backoff_jitter: Optional[float] = None,
    ) -> None: ...
    @property
    def redis_url(self) -> Optional[str]: ...
    @property
    def instance_id(self) -> str: ...
    def guard(self, agent_id: str) -> _Guard: ...
    async def acquire(self, agent_id: str) -> Permit: ...
    def get_metrics(self, agent_id: str) -> Dict[str, Any]: ...
    async def metrics(self, agent_id: str) -> Dict[str, Any]: ...
    def get_state(self, agent_id: str) -> CircuitState: ...
    def reset(self, agent_id: str) -> Optional[Dict[str, Any]]: ...
    def agents(self) -> List[str]: ...
    def configure(
        self,
        agent_id: str,
        *,
        failure_threshold: int = ...,
        half_open_max_calls: int = ...,
        base_backoff_ms: int = ...,
        backoff_multiplier: float = ...,
        max_backoff_ms: int = ...,
        recovery_timeout_ms: int = ...,
        failure_rate_threshold: float = ...,
        slow_call_duration_ms: int = ...,
        slow_call_rate_threshold: float = ...,
        window_ms: int = ...,
        minimum_calls: int = ...,
        min_reporting_pods: int = ...,
        backoff_jitter: float = ...,
    ) -> Dict[str, Any]: ...
    def settings(self, agent_id: str) -> Dict[str, Any]: ...
    def local_opens(self) -> List[Dict[str, Any]]: ...
    def flush(self) -> None: ...
    def transitions(self) -> AsyncIterator[Dict[str, Any]]: ...
    def is_watching(self) -> bool: ...
    def is_degraded(self) -> bool: ...

class FailoverRouter:
    max_retries: int
    redis_url: Optional[str]
    circuit_breaker: CircuitBreaker
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
    ) -> None: ...
    async def route_task(
        self,
        task_id: str,
        agents: Sequence[str],
        task_func: Callable[..., Awaitable[Any]],
        **kwargs: Any,
    ) -> Any: ...
    def get_health_status(self) -> Dict[str, Any]: ...
    async def health_status(self) -> Dict[str, Any]: ...
    def get_recent_failures(self, limit: int = 10) -> List[Dict[str, Any]]: ...
    def reset_agent(self, agent_id: str) -> None: ...
    def flush(self) -> None: ...

__all__ = [
    "AgentAttempt",
    "AllAgentsFailed",
    "CircuitBreaker",
    "CircuitOpenError",
    "CircuitState",
    "FailoverRouter",
    "FleetBreakerError",
    "Permit",
    "StoreUnavailableError",
]
