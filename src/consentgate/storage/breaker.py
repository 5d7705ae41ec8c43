"""Every storage call has a bound, and an outage is answered in milliseconds.

Two pieces, used by every backend (SQLite, PostgreSQL, Redis):

* :func:`run_bounded` gives a call a hard wall-clock limit. Driver timeouts are not
  enough on their own: a server that accepts a connection and then never answers
  (packets dropped, a hung host) leaves a driver waiting on a socket for as long as
  the kernel keeps it open — minutes. And cancelling a driver is not instant either
  (psycopg, cancelled mid-query, first tries to cancel on the server, which hangs the
  same way). So the call runs in its own task and the caller stops waiting at the
  limit; the task is cancelled and left to clean up in the background.
* :class:`CircuitBreaker` stops paying that limit on every request during an outage:
  after ``failures`` consecutive failures it *opens* and every call fails at once
  with :class:`CircuitOpenError` for ``cooldown`` seconds; then it lets exactly one
  call through (*half-open*). That probe closes it again when it succeeds, or opens
  it for another cool-down when it fails. No restart is ever needed.
* :func:`request_budget` bounds one *request*, not only each call: a page view may
  make several storage calls in a row (the session, the GPC row, the policy
  acceptance, the server meter), and before the breaker opens each would wait its
  full bound. Inside the block, the calls share one budget of storage time: each is
  bounded by ``min(call_timeout, what is left)``, and one with nothing left fails at
  once with :class:`StorageTimeoutError`. The middleware opens one per HTTP request.

Only outages count as failures (timeouts, refused or broken connections, a locked or
full database); an application error such as a duplicate e-mail address is an answer
from a working backend and resets the count like a success.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import logging
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from typing import TypeVar

from consentgate.storage.base import StorageError

__all__ = [
    "BREAKER_URL_PARAMS",
    "DEFAULT_CALL_TIMEOUT",
    "BreakerSettings",
    "BreakerState",
    "CircuitBreaker",
    "CircuitOpenError",
    "RequestBudget",
    "StorageTimeoutError",
    "breaker_settings_from",
    "close_request_budget",
    "current_request_budget",
    "open_request_budget",
    "request_budget",
    "run_bounded",
    "without_request_budget",
]

logger = logging.getLogger("consentgate.storage")

T = TypeVar("T")

# The longest any one storage call may take (seconds), unless the URL says otherwise.
# A consent click waits on it, so it is short; a statement that needs longer is not one
# a page view should run.
DEFAULT_CALL_TIMEOUT = 5.0
DEFAULT_BREAKER_FAILURES = 3
DEFAULT_BREAKER_COOLDOWN = 5.0


class StorageTimeoutError(StorageError):
    """The backend did not answer within the call's bound."""


class CircuitOpenError(StorageError):
    """The breaker is open: the backend failed repeatedly and is not asked for now."""


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


@dataclass(frozen=True, slots=True)
class BreakerSettings:
    """``failures`` consecutive outages open the breaker for ``cooldown`` seconds;
    every call is bounded by ``call_timeout`` seconds."""

    call_timeout: float = DEFAULT_CALL_TIMEOUT
    failures: int = DEFAULT_BREAKER_FAILURES
    cooldown: float = DEFAULT_BREAKER_COOLDOWN

    def __post_init__(self) -> None:
        if not self.call_timeout > 0:
            raise ValueError("call_timeout must be a positive number of seconds")
        if self.failures < 1:
            raise ValueError("breaker_failures must be at least 1")
        if not self.cooldown > 0:
            raise ValueError("breaker_cooldown must be a positive number of seconds")


# The URL query parameters every backend reads (and takes out before its driver sees them).
BREAKER_URL_PARAMS = frozenset({"call_timeout", "breaker_failures", "breaker_cooldown"})


def breaker_settings_from(
    params: Mapping[str, str], what: str, *, call_timeout: float = DEFAULT_CALL_TIMEOUT
) -> BreakerSettings:
    """Settings from URL query values (strings); ``what`` names the URL in errors."""

    def number(key: str, default: float) -> float:
        text = params.get(key)
        if text is None:
            return default
        try:
            return float(text)
        except ValueError:
            raise ValueError(f"{what} URL parameter {key} must be a number") from None

    failures = number("breaker_failures", DEFAULT_BREAKER_FAILURES)
    if failures != int(failures):
        raise ValueError(f"{what} URL parameter breaker_failures must be a whole number")
    return BreakerSettings(
        call_timeout=number("call_timeout", call_timeout),
        failures=int(failures),
        cooldown=number("breaker_cooldown", DEFAULT_BREAKER_COOLDOWN),
    )


# Tasks whose caller stopped waiting. Kept referenced until they end (an unreferenced
# task may be garbage-collected mid-flight), and their outcome is collected so that
# asyncio does not log "exception was never retrieved".
_abandoned: set[asyncio.Task[object]] = set()


def _forget(task: asyncio.Task[object]) -> None:
    _abandoned.discard(task)
    if not task.cancelled() and task.exception() is not None:
        logger.debug("consentgate: abandoned storage call ended with %r", task.exception())


def _abandon(task: asyncio.Task[T]) -> None:
    task.cancel()
    _abandoned.add(task)
    task.add_done_callback(_forget)


async def run_bounded(job: Callable[[], Awaitable[T]], seconds: float | None, what: str) -> T:
    """``await job()``, but never longer than ``seconds`` (None: no bound).

    On expiry raises :class:`StorageTimeoutError` at once; the job is cancelled and
    finishes its own clean-up in the background (its result is discarded).
    """
    if seconds is None:
        return await job()

    async def call() -> T:
        return await job()

    task = asyncio.get_running_loop().create_task(call())
    try:
        done, _ = await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        _abandon(task)
        raise
    if task in done:
        return task.result()
    _abandon(task)
    raise StorageTimeoutError(f"{what} did not answer within {seconds:g} s")


class RequestBudget:
    """The storage time (seconds) one request may still spend waiting, shared by all
    of its calls on every backend. It counts time spent waiting on storage only, not
    the request's wall-clock time: the app's own rendering and CPU work (a password
    hash) do not use it up, so a slow page is never cut off a healthy database."""

    __slots__ = ("left", "total")

    def __init__(self, seconds: float) -> None:
        if not seconds > 0:
            raise ValueError("a request budget must be a positive number of seconds")
        self.total = seconds
        self.left = seconds


_REQUEST_BUDGET: ContextVar[RequestBudget | None] = ContextVar(
    "consentgate_request_budget", default=None
)


def open_request_budget(seconds: float | None) -> Token[RequestBudget | None]:
    """Storage calls from here on (and in tasks started from here) share ``seconds`` of
    waiting, until :func:`close_request_budget` with the token. ``None`` means no budget
    beyond each call's own bound (a storage without one). Two calls, not a context
    manager, for the middleware: it opens one on every HTTP request."""
    return _REQUEST_BUDGET.set(None if seconds is None else RequestBudget(seconds))


def close_request_budget(token: Token[RequestBudget | None]) -> None:
    _REQUEST_BUDGET.reset(token)


def current_request_budget() -> RequestBudget | None:
    """The budget the calls made here share, or None (outside a request: no budget)."""
    return _REQUEST_BUDGET.get()


@contextlib.contextmanager
def request_budget(seconds: float | None) -> Iterator[RequestBudget | None]:
    """``with request_budget(s):`` around :func:`open_request_budget` (tests, scripts)."""
    token = open_request_budget(seconds)
    try:
        yield _REQUEST_BUDGET.get()
    finally:
        close_request_budget(token)


@contextlib.contextmanager
def without_request_budget() -> Iterator[None]:
    """For background work started during a request (a counter flush, a prune): a task
    inherits the request's context, but must not spend, nor be cut by, its budget."""
    token = _REQUEST_BUDGET.set(None)
    try:
        yield
    finally:
        _REQUEST_BUDGET.reset(token)


class CircuitBreaker:
    """closed → (``failures`` consecutive outages) → open → (``cooldown``) → half-open:
    one probe; success closes, failure opens again.

    One breaker per backend object (and per Redis client): every worker process keeps
    its own, which is what is wanted, as each sees the network from where it runs.
    """

    def __init__(
        self,
        name: str,
        settings: BreakerSettings | None = None,
        *,
        is_outage: Callable[[BaseException], bool] = lambda exc: True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.settings = settings or BreakerSettings()
        self._is_outage = is_outage
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._failures = 0
        self._opened_at = 0.0
        self._probing = False

    @property
    def state(self) -> BreakerState:
        return self._state

    async def call(self, job: Callable[[], Awaitable[T]], *, bounded: bool = True) -> T:
        """Run ``job`` under the breaker and (unless ``bounded`` is False) the bound:
        ``call_timeout``, or less when the request's budget has less left."""
        if not bounded:  # a migration: neither the call bound nor a request's budget
            return await self._call(job, None, None)
        budget = _REQUEST_BUDGET.get()
        if budget is None:
            return await self._call(job, self.settings.call_timeout, None)
        if budget.left <= 0:
            # Earlier calls of this request used up its storage time: fail without
            # asking. Not counted towards the breaker (and no half-open probe taken):
            # the backend was not asked, so this says nothing about it, and counting it
            # would let one slow request's leftovers open the breaker for everyone. A
            # call that did wait (even a shortened one) and got no answer does count:
            # the backend was silent for as long as this request could afford, and a
            # request only runs short after waiting on storage for its whole budget.
            raise StorageTimeoutError(
                f"{self.name} not asked: the request's {budget.total:g} s for storage are used up"
            )
        return await self._call(job, min(self.settings.call_timeout, budget.left), budget)

    async def _call(
        self, job: Callable[[], Awaitable[T]], bound: float | None, budget: RequestBudget | None
    ) -> T:
        probe = self._admit()
        started = time.monotonic()
        try:
            result = await run_bounded(job, bound, self.name)
        except StorageTimeoutError:
            self._failed(probe)
            raise
        except asyncio.CancelledError:
            # The caller went away (a closed request): no verdict on the backend.
            if probe:
                self._probing = False
            raise
        except Exception as exc:
            if self._is_outage(exc):
                self._failed(probe)
            else:
                self._succeeded(probe)
            raise
        finally:
            if budget is not None:
                budget.left -= time.monotonic() - started
        self._succeeded(probe)
        return result

    def _admit(self) -> bool:
        """Raise when the breaker is open; True when this call is the half-open probe."""
        if self._state is BreakerState.CLOSED:
            return False
        if self._state is BreakerState.OPEN:
            if self._clock() - self._opened_at < self.settings.cooldown:
                raise CircuitOpenError(f"{self.name} is unavailable (circuit open)")
            self._state = BreakerState.HALF_OPEN
        if self._probing:
            raise CircuitOpenError(f"{self.name} is unavailable (probing after an outage)")
        self._probing = True
        return True

    def _failed(self, probe: bool) -> None:
        if probe:
            self._probing = False
        self._failures += 1
        if probe or self._failures >= self.settings.failures:
            if self._state is not BreakerState.OPEN:
                logger.warning(
                    "consentgate: %s failed %d times in a row; failing fast for %g s",
                    self.name,
                    self._failures,
                    self.settings.cooldown,
                )
            self._state = BreakerState.OPEN
            self._opened_at = self._clock()

    def _succeeded(self, probe: bool) -> None:
        if probe:
            self._probing = False
        if self._state is not BreakerState.CLOSED:
            logger.warning("consentgate: %s answers again", self.name)
        self._state = BreakerState.CLOSED
        self._failures = 0
