"""Retry, backoff and pacing shared by every source: each source only says which errors are worth a retry.

Waits are interruptible (a `threading.Event` set on shutdown ends them at once), and a rate-limit wait
is bounded, so a run never hangs for longer than the config allows.
"""

from __future__ import annotations

import errno
import logging
import random
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import urlsplit

from monitor.errors import AnswerTooLargeError, SourceError

if TYPE_CHECKING:
    from monitor.config import RetryingSourceSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class GaveUpError(SourceError):
    """Retries ran out, or the rate limit resets later than we are willing to wait, for this run."""


class StoppedError(SourceError):
    """Shutdown was requested while a source was waiting."""


@dataclass(frozen=True)
class RetryPolicy:
    """How long and how often to retry."""

    retries: int = 5  # retries of a transient error (5xx, dropped connection) per request
    backoff_base: float = 2.0  # seconds before the first retry; doubles each time
    backoff_cap: float = 120.0  # no single backoff is longer than this
    max_rate_limit_wait: float = 900.0  # seconds; a later rate-limit reset ends the run instead

    @classmethod
    def from_settings(cls, settings: RetryingSourceSettings) -> RetryPolicy:
        """The policy a source's config section asks for."""
        return cls(
            retries=settings.retries,
            backoff_base=settings.backoff_base.total_seconds(),
            max_rate_limit_wait=settings.max_rate_limit_wait.total_seconds(),
        )


@dataclass(frozen=True)
class Transient:
    """The verdict on an error that may pass if we try again (5xx, connection dropped, garbage body)."""

    reason: str


@dataclass(frozen=True)
class RateLimited:
    """The verdict on an HTTP 429 that will pass at reset_at (epoch seconds; None when the API did not say)."""

    reset_at: float | None


Verdict = Transient | RateLimited | None  # None: not retryable, re-raise
Classifier = Callable[[Exception], Verdict]


def backoff_delay(attempt: int, policy: RetryPolicy) -> float:
    """Exponential backoff with jitter: half the doubled delay is fixed, half random, so clients spread out."""
    ceiling = min(policy.backoff_cap, policy.backoff_base * 2**attempt)
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def wait(seconds: float, stop: threading.Event | None, why: str) -> None:
    """Sleep, unless shutdown is requested first (then raise StoppedError)."""
    if seconds <= 0:
        return
    if stop is None:
        time.sleep(seconds)
    elif stop.wait(seconds):
        raise StoppedError(f"stopped while {why}")


def rate_limit_delay(reset_at: float | None, now: float, attempt: int, policy: RetryPolicy) -> float:
    """Seconds to wait for a rate-limit reset; GaveUpError when that is beyond max_rate_limit_wait."""
    if reset_at is None:
        return backoff_delay(attempt, policy)
    remaining = max(0.0, reset_at - now)
    if remaining > policy.max_rate_limit_wait:
        raise GaveUpError(
            f"rate limited for another {remaining:.0f}s, longer than max_rate_limit_wait "
            f"({policy.max_rate_limit_wait:.0f}s); the next run resumes from the stored cursor"
        )
    # The reset header has one-second resolution: a second more avoids hitting the limit again.
    return min(remaining + 1.0, policy.max_rate_limit_wait)


def call_with_retries(
    call: Callable[[], T],
    classify: Classifier,
    policy: RetryPolicy,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.time,
) -> T:
    """Run call(); retry transient errors with backoff and wait out rate limits, within the policy's bounds."""
    attempt = 0
    while True:
        try:
            return call()
        except RecursionError:  # [[[[… thousands deep: json gives up, and no API answers like that
            raise SourceError("an answer was nested too deeply to read (not the API's JSON)") from None
        except Exception as error:
            _raise_if_too_large(error)
            verdict = classify(error)
            if verdict is None:
                raise
            if attempt >= policy.retries:
                tries = f"{attempt + 1} attempt" + ("s" if attempt else "")
                raise GaveUpError(f"gave up after {tries}: {_describe(verdict)}") from None
            delay = _delay_for(verdict, attempt, policy, clock())
            log.warning(
                "%s; retrying in %.1fs (attempt %d of %d)", _describe(verdict), delay, attempt + 2, policy.retries + 1
            )
            wait(delay, stop, "waiting to retry")
            attempt += 1


def _raise_if_too_large(error: Exception) -> None:
    """An answer over the size ceiling is never retried, even when an SDK wrapped it in its network error."""
    found = next((item for item in _error_chain(error) if isinstance(item, AnswerTooLargeError)), None)
    if found is not None:
        raise found from None


def _delay_for(verdict: Transient | RateLimited, attempt: int, policy: RetryPolicy, now: float) -> float:
    if isinstance(verdict, RateLimited):
        return rate_limit_delay(verdict.reset_at, now, attempt, policy)
    return backoff_delay(attempt, policy)


def _describe(verdict: Transient | RateLimited) -> str:
    return "rate limited (HTTP 429)" if isinstance(verdict, RateLimited) else verdict.reason


def cannot_connect(error: BaseException, fallback_url: str) -> Transient:
    """'mastodon.social: cannot connect (connection refused)': the host asked and the cause, never a credential.

    The host is read from the failed request when the SDK kept it (Reddit's token and API hosts differ),
    else from the source's configured URL; only host and port are shown, never a path, query or user.
    """
    chain = list(_error_chain(error))
    url = next((found for found in map(_request_url, chain) if found), fallback_url)
    cause = _connect_cause(chain)
    if cause is None:  # connected, then dropped: the server's side, not ours
        return Transient(f"{host_of(url)}: connection failed ({chain[0].__class__.__name__})")
    return Transient(f"{host_of(url)}: cannot connect ({cause})")


_CAUSES: tuple[tuple[type[BaseException], str], ...] = (
    (ConnectionRefusedError, "connection refused"),
    (socket.gaierror, "host name not found in DNS"),
    (ConnectionResetError, "connection reset"),
    (TimeoutError, "timed out"),
    (ssl.SSLError, "TLS handshake failed"),
)
_ERRNO_CAUSES = {errno.ENETUNREACH: "network unreachable", errno.EHOSTUNREACH: "host unreachable"}


def _connect_cause(chain: list[BaseException]) -> str | None:
    """Why no connection could be made, from the innermost error outwards; None when it is none of these."""
    for error in reversed(chain):
        for kind, cause in _CAUSES:
            if isinstance(error, kind):
                return cause
        if isinstance(error, OSError) and error.errno in _ERRNO_CAUSES:
            return _ERRNO_CAUSES[error.errno]
    if any("Timeout" in error.__class__.__name__ for error in chain):  # requests' and httpx's own timeouts
        return "timed out"
    return None


# urllib3's reason, prawcore's original: read from the instance, never through a property (websockets
# deprecates its ConnectionClosed.reason)
_WRAPPED = ("reason", "original_exception")


def _error_chain(error: BaseException, limit: int = 12) -> Iterator[BaseException]:
    """The error and those it wraps, outermost first."""
    pending, seen = [error], set[int]()
    while pending and len(seen) < limit:
        current = pending.pop(0)
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        wrapped = [current.__cause__, current.__context__, *(vars(current).get(name) for name in _WRAPPED)]
        pending.extend(item for item in [*wrapped, *current.args] if isinstance(item, BaseException))


def _request_url(error: BaseException) -> str | None:
    try:
        request = getattr(error, "request", None)  # httpx raises RuntimeError when the error has no request
    except RuntimeError:
        return None
    url = getattr(request, "url", None)
    return str(url) if url else None


def host_of(url: str) -> str:
    """host[:port] of a URL, or of a bare 'host:port' (a Mastodon instance as configured)."""
    parts = urlsplit(url if "//" in url else "//" + url)
    try:
        port = parts.port
    except ValueError:  # not a number: the host alone says enough
        port = None
    host = parts.hostname or "?"
    return f"{host}:{port}" if port else host


class Pacer:
    """Keeps successive requests at least `interval` seconds apart (e.g. full-archive search: one per second)."""

    def __init__(self, interval: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = interval
        self.clock = clock
        self._last: float | None = None

    def wait_turn(self, stop: threading.Event | None = None) -> None:
        """Wait until the next request may go, then mark it as sent."""
        if self._last is not None:
            wait(self._last + self.interval - self.clock(), stop, "pacing requests")
        self._last = self.clock()
