"""fleet_breaker: a circuit breaker and failover router whose state a whole
fleet shares through Redis. The Rust crate ``fleet-breaker`` is the core;
this package is its asyncio interface, with the original API."""

import atexit as _atexit

from . import _native
from ._breaker import CircuitBreaker, CircuitState, Permit
from ._errors import (
    AgentAttempt,
    AllAgentsFailed,
    CircuitOpenError,
    FleetBreakerError,
    StoreUnavailableError,
)
from ._router import FailoverRouter

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

# The Rust runtime's threads hand results to asyncio under the GIL; let them
# finish before the interpreter finalizes.
_atexit.register(_native._quiesce)
