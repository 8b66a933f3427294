"""The exceptions of fleet_breaker (raised by the Rust core too)."""

from __future__ import annotations

from typing import Optional, Sequence


class FleetBreakerError(Exception):
    """Base class of the package's errors."""


class StoreUnavailableError(FleetBreakerError, ConnectionError):
    """The breaker's store (Redis) could not be reached or did not answer in time."""


class CircuitOpenError(FleetBreakerError):
    """The breaker refused a call: the agent's circuit is open, half-open with
    no free probe, or forced open (``cause == "circuit"``); this pod opened
    the agent for itself, a trip below the quorum of ``min_reporting_pods``
    (``cause == "local_quorum"``; the fleet's circuit is unchanged); or the
    store is unreachable under the ``fail_closed`` policy
    (``cause == "store_unavailable"``).
    """

    def __init__(
        self,
        message: str,
        agent_id: str,
        state: str,
        retry_after: Optional[float],
        cause: str,
    ) -> None:
        super().__init__(message)
        self.agent_id = agent_id
        self.state = state
        self.retry_after = retry_after
        self.cause = cause


class AgentAttempt:
    """What happened to one agent of a route.

    ``outcome`` is ``"rejected"`` (circuit refused, no call made), ``"failed"``
    (the call raised: ``exception`` holds it, traceback included),
    ``"timed_out"`` or ``"not_tried"`` (``max_retries`` calls already made).
    """

    __slots__ = ("agent_id", "outcome", "reason", "state", "retry_after", "exception")

    def __init__(
        self,
        agent_id: str,
        outcome: str,
        reason: str,
        state: Optional[str],
        retry_after: Optional[float],
        exception: Optional[BaseException],
    ) -> None:
        self.agent_id = agent_id
        self.outcome = outcome
        self.reason = reason
        self.state = state
        self.retry_after = retry_after
        self.exception = exception

    def __repr__(self) -> str:
        return f"AgentAttempt(agent_id={self.agent_id!r}, outcome={self.outcome!r}, reason={self.reason!r})"


class AllAgentsFailed(FleetBreakerError):
    """No agent of the list served the task.

    ``str()`` is one readable line; ``attempts`` says what happened to each
    agent, in list order; ``__cause__`` is the last exception a call raised.
    """

    def __init__(
        self, message: str, task_id: str, attempts: Sequence[AgentAttempt], calls: int
    ) -> None:
        super().__init__(message)
        self.task_id = task_id
        self.attempts = list(attempts)
        self.calls = calls

    @property
    def errors(self) -> dict:
        """The exception each failed agent raised, by agent id."""
        return {a.agent_id: a.exception for a in self.attempts if a.exception is not None}
