"""CircuitBreaker: the original's class, backed by the Rust crate."""

from __future__ import annotations

import asyncio
import enum
import json
from typing import Any, AsyncIterator, Dict, List, Optional

from . import _native


class CircuitState(str, enum.Enum):
    """A circuit's state (the original's three, plus the operator overrides)."""

    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"
    FORCED_OPEN = "forced_open"
    FORCED_CLOSED = "forced_closed"

    def __str__(self) -> str:
        return self.value


class Permit:
    """One granted call; settle it once (``guard`` does it for you)."""

    __slots__ = ("_native",)

    def __init__(self, native: Any) -> None:
        self._native = native

    @property
    def agent_id(self) -> str:
        return self._native.agent_id

    @property
    def is_probe(self) -> bool:
        return self._native.is_probe

    @property
    def generation(self) -> int:
        return self._native.generation

    async def success(self) -> None:
        pending = self._native.settle_now("success")
        if pending is not None:
            await pending

    async def failure(self, reason: str = "") -> None:
        pending = self._native.settle_now("failure", reason)
        if pending is not None:
            await pending

    def neutral(self) -> None:
        self._native.settle_now("neutral")


_UNSET: Any = object()


class CircuitBreaker:
    """Circuit breakers for many agents, shared fleet-wide through Redis.

    The original's keyword arguments, with its defaults. ``redis_url=None``
    is the embedded in-memory store (one process); a ``redis://``,
    ``rediss://``, ``redis+cluster://`` or ``redis+sentinel://`` URL is the
    fleet's Redis. Assigned to ``router.circuit_breaker``, a breaker with no
    URL of its own takes the router's.

    The trip policies (all off by default: the original's consecutive
    failures alone) are keyword arguments too: ``failure_rate_threshold``
    (0 to 1) trips on the share of failed calls in the last ``window``
    seconds (default 60) once it holds ``minimum_calls`` (default 10);
    ``slow_call_duration`` (seconds) with ``slow_call_rate_threshold``
    trips on the share of slow calls (a permit times its call from its
    grant to its settling); ``min_reporting_pods`` (default 1) is how many
    pods must report trouble before a rate trip opens the circuit
    fleet-wide (fewer open it on their own pod only); ``backoff_jitter``
    (0 to 0.5) spreads the backoff.

    Invalid settings raise ``ValueError`` naming the rule at once.
    """

    def __init__(
        self,
        failure_threshold: int = 5,
        recovery_timeout: float = 30,
        half_open_max_calls: int = 3,
        backoff_multiplier: float = 1.5,
        *,
        base_backoff: float = 1.0,
        max_backoff: float = 60.0,
        redis_url: Optional[str] = _UNSET,
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
    ) -> None:
        self._policies = _native.Policies(
            failure_rate_threshold=failure_rate_threshold,
            slow_call_duration=slow_call_duration,
            slow_call_rate_threshold=slow_call_rate_threshold,
            window=window,
            minimum_calls=minimum_calls,
            min_reporting_pods=min_reporting_pods,
            backoff_jitter=backoff_jitter,
        )
        _native.check_config(
            failure_threshold,
            recovery_timeout,
            half_open_max_calls,
            backoff_multiplier,
            base_backoff,
            max_backoff,
            self._policies,
        )
        self.failure_threshold = failure_threshold
        self.recovery_timeout = recovery_timeout
        self.half_open_max_calls = half_open_max_calls
        self.backoff_multiplier = backoff_multiplier
        self._settings: Dict[str, Any] = dict(
            base_backoff=base_backoff,
            max_backoff=max_backoff,
            prefix=prefix,
            store_policy=store_policy,
            instance_id=instance_id,
            redis_timeout=redis_timeout,
            max_staleness=max_staleness,
            flush_interval=flush_interval,
        )
        self._redis_url = redis_url
        self._native_breaker: Any = None

    def _adopt(self, redis_url: Optional[str], settings: Dict[str, Any]) -> None:
        """Takes a router's store when it has none of its own (not yet built)."""
        if self._redis_url is _UNSET and self._native_breaker is None:
            self._redis_url = redis_url
            for key, value in settings.items():
                if self._settings.get(key) is None:
                    self._settings[key] = value

    @property
    def _native(self) -> Any:
        native = self._native_breaker
        if native is None:
            url = None if self._redis_url is _UNSET else self._redis_url
            native = _native.NativeBreaker(
                self.failure_threshold,
                self.recovery_timeout,
                self.half_open_max_calls,
                self.backoff_multiplier,
                redis_url=url,
                **self._settings,
                policies=self._policies,
            )
            self._native_breaker = native
        return native

    @property
    def redis_url(self) -> Optional[str]:
        return None if self._redis_url is _UNSET else self._redis_url

    def guard(self, agent_id: str) -> Any:
        """``async with breaker.guard("agent-1"):`` runs the block under a
        permit: raises ``CircuitOpenError`` (block not run) when the circuit
        refuses; an exception in the block is a failure (and propagates),
        ``asyncio.CancelledError`` is neutral, a normal exit a success."""
        return self._native.guard(agent_id)

    async def acquire(self, agent_id: str) -> Permit:
        """A permit to call ``agent_id``, or ``CircuitOpenError``."""
        permit = self._native.acquire_now(agent_id)
        if type(permit) is not _native.NativePermit:
            permit = await permit
        return Permit(permit)

    def get_metrics(self, agent_id: str) -> Dict[str, Any]:
        """The original's metrics dict (blocks briefly, GIL released)."""
        return json.loads(self._native.metrics_json(agent_id))

    async def metrics(self, agent_id: str) -> Dict[str, Any]:
        """``get_metrics``, awaited."""
        return json.loads(await self._native.metrics_json_async(agent_id))

    def get_state(self, agent_id: str) -> CircuitState:
        return CircuitState(self.get_metrics(agent_id)["state"])

    def reset(self, agent_id: str) -> Optional[Dict[str, Any]]:
        """Admin reset, fleet-wide; the transition, or None for an unknown agent."""
        transition = self._native.reset(agent_id)
        return None if transition is None else json.loads(transition)

    def agents(self) -> list:
        return self._native.agents()

    def configure(self, agent_id: str, **settings: Any) -> Dict[str, Any]:
        """Replaces ``agent_id``'s own settings, fleet-wide: stored with the
        agent (in Redis), they override this breaker's for that agent on
        every pod from its next call, without a restart. Keywords, each
        optional: ``failure_threshold``, ``half_open_max_calls``,
        ``base_backoff_ms``, ``backoff_multiplier``, ``max_backoff_ms``,
        ``recovery_timeout_ms``, ``failure_rate_threshold``,
        ``slow_call_duration_ms``, ``slow_call_rate_threshold``,
        ``window_ms``, ``minimum_calls``, ``min_reporting_pods``,
        ``backoff_jitter`` (a rate threshold or ``slow_call_duration_ms`` of
        0 turns that policy off for the agent). No keyword clears them.
        An unknown name or a value out of range raises ``ValueError`` and
        writes nothing. Returns the settings now stored."""
        stored = self._native.configure(agent_id, json.dumps(settings))
        return json.loads(stored)

    def settings(self, agent_id: str) -> Dict[str, Any]:
        """``agent_id``'s own settings (``{}``: none)."""
        return json.loads(self._native.settings(agent_id))

    def local_opens(self) -> List[Dict[str, Any]]:
        """The agents this pod opened for itself alone (a trip condition held,
        but fewer than ``min_reporting_pods`` pods reported trouble): dicts
        with ``agent_id``, ``seconds_left`` and ``reason``. The fleet's state
        of each is unchanged."""
        return [
            {"agent_id": agent_id, "seconds_left": left, "reason": reason}
            for agent_id, left, reason in self._native.local_opens()
        ]

    def flush(self) -> None:
        """Sends locally counted successes to the store now."""
        self._native.flush()

    async def transitions(self) -> AsyncIterator[Dict[str, Any]]:
        """Every transition from now on (for alert hooks): dicts with
        ``agent_id``, ``from``, ``to``, ``generation``, ``reason``, ..."""
        stream = self._native.transitions()
        async for message in stream:
            yield json.loads(message)

    @property
    def instance_id(self) -> str:
        return self._native.instance_id

    def is_watching(self) -> bool:
        return self._native.is_watching()

    def is_degraded(self) -> bool:
        return self._native.is_degraded()

    def __repr__(self) -> str:
        return (
            f"CircuitBreaker(failure_threshold={self.failure_threshold}, "
            f"recovery_timeout={self.recovery_timeout}, "
            f"half_open_max_calls={self.half_open_max_calls}, "
            f"backoff_multiplier={self.backoff_multiplier})"
        )
