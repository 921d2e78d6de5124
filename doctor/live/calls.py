"""One read = one or more HTTP attempts: the answer, bounded retries, the run's deadline, timings.

Retries are for idempotent reads only (every request this tool sends is one) and only on
429, 5xx and connection failures (refused, reset, truncated), at most ``retries`` times, waiting
what ``Retry-After`` asks (or a short exponential backoff) as long as the run's deadline allows.
A request that times out is not retried: the next try would most likely time out too, and the
run has a deadline.
"""
from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

RETRY_STATUS = (429, 500, 502, 503, 504)


@dataclass
class Answer:
    """What one attempt (or the last of several) got."""

    status: int | None                 # HTTP status; None when no HTTP answer came
    data: Any = None                   # the parsed body of a success
    error: Any = None                  # the error body of a failure ({"message": ...} without an answer)
    retry_after: float | None = None   # seconds, from a Retry-After header
    transport: str | None = None       # "connect" | "timeout" | "invalid" | "credentials" | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.error is None

    @property
    def retryable(self) -> bool:
        return self.status in RETRY_STATUS or self.transport == "connect"


def failure(kind: str, message: str) -> Answer:
    return Answer(None, error={"message": message}, transport=kind)


def parse_retry_after(value: Any) -> float | None:
    if value is None:
        return None
    try:
        return max(0.0, float(str(value).strip()))
    except ValueError:
        pass
    try:  # an HTTP date
        from email.utils import parsedate_to_datetime

        return max(0.0, parsedate_to_datetime(str(value)).timestamp() - time.time())
    except (TypeError, ValueError, IndexError):
        return None


@dataclass
class Call:
    service: str          # "k8s" or a Google service name
    method: str
    path: str             # request path (and query, for pages and logs)
    status: int | None
    duration: float
    attempt: int
    note: str = ""


class Budget:
    """The whole run's deadline and the per-request timeout it leaves."""

    def __init__(self, total: float, per_request: float) -> None:
        self.deadline = time.monotonic() + total
        self.total = total
        self.per_request = per_request

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    def request_timeout(self) -> float:
        return max(0.05, min(self.per_request, self.remaining()))

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0


@dataclass
class Recorder:
    """Every HTTP attempt of a run, for ``--verbose`` and the closing numbers."""

    calls: list[Call] = field(default_factory=list)
    echo: Callable[[Call], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)
        if self.echo is not None:
            self.echo(call)

    def __len__(self) -> int:
        return len(self.calls)


class Breaker:
    """After a service refused connections through all retries, fail its other reads at once."""

    def __init__(self) -> None:
        self._down: dict[str, str] = {}
        self._lock = threading.Lock()

    def down(self, service: str) -> str | None:
        return self._down.get(service)

    def trip(self, service: str, message: str) -> None:
        with self._lock:
            self._down.setdefault(service, message)


def with_retries(once: Callable[[float], Answer], *, service: str, method: str, path: str,
                 budget: Budget, recorder: Recorder, breaker: Breaker, retries: int) -> Answer:
    """Run ``once(timeout)`` until it succeeds, fails for good, or retries/time run out."""
    down = breaker.down(service)
    if down is not None:
        return failure("connect", down)
    attempt = 0
    while True:
        if budget.expired:
            return failure("timeout", f"not read: the run's --timeout of {budget.total:g} s ran out")
        attempt += 1
        t0 = time.perf_counter()
        ans = once(budget.request_timeout())
        recorder.add(Call(service, method, path, ans.status, time.perf_counter() - t0, attempt,
                          ans.transport or ""))
        if ans.ok or not ans.retryable or attempt > retries:
            if ans.transport == "connect" and not ans.ok:
                breaker.trip(service, ans.error.get("message", "connection failed") if isinstance(ans.error, dict)
                             else "connection failed")
            return ans
        if ans.retry_after is not None:
            wait = ans.retry_after
        else:   # a refused or reset connection is retried sooner than an overloaded server
            wait = min(4.0, (0.1 if ans.transport == "connect" else 0.25) * 2 ** (attempt - 1))
        wait += random.uniform(0, 0.1)
        if wait >= budget.remaining():
            return ans
        time.sleep(wait)
