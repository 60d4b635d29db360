"""The one model worker: every call of the network, bounded queues, and work that stops.

Requests and class-model jobs wait in two bounded queues (503 with ``Retry-After`` when full);
a request always goes before a job, and a running job lets the waiting requests run between
two of its steps. Each piece of work has a cancel flag and a deadline, checked before every
module's forward pass (a global forward pre-hook, registered for the call and removed after it)
and between the stages of a request: when its time is up the work raises :class:`Cancelled`
at the next check, the methods' ``finally`` blocks restore the model, and the worker moves on.
"""

from __future__ import annotations

import asyncio
import atexit
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import torch

from .problems import Problem

__all__ = ["Cancelled", "Limits", "ModelWorker", "Work", "check_cancelled"]


@dataclass
class Limits:
    """What one request, and one client, may ask for.

    Attributes:
        max_body: bytes of a request's photo (413 above; the whole body may have 64 kB more).
        max_pixels: pixels of a photo (413 above).
        max_render_pixels: an explained photo larger than this is scaled down to it before its
            map, overlay and mask are drawn (its box is still in the photo's pixels): a 40 MP
            overlay takes seconds that no time limit can stop, and tens of MB to send.
        queue: requests waiting for (or in) the model worker (503 above).
        timeout: seconds a request may take, waiting included (504 above; its work stops).
        max_classmodel_steps: ascent steps of one class-model job.
        max_instances: instances of one KServe request (413 above).
        max_json_depth: nesting of a JSON body or of ``params`` (422 above).
        jobs: class-model jobs queued or running (503 above).
        jobs_per_client: of those, from one client address (429 above).
        job_timeout: seconds a job may run (it then ends with an error).
        job_ttl: seconds a finished job's result is kept (then 404; its memory is freed).
    """

    max_body: int = 10 * 2**20
    max_pixels: int = 40_000_000
    max_render_pixels: int = 4_000_000
    queue: int = 32
    timeout: float = 60.0
    max_classmodel_steps: int = 500
    max_instances: int = 16
    max_json_depth: int = 32
    jobs: int = 8
    jobs_per_client: int = 2
    job_timeout: float = 600.0
    job_ttl: float = 600.0


class Cancelled(Exception):
    """The work was stopped: it was cancelled or its time ran out."""


@dataclass(eq=False)
class Work:
    """One request's or job's call, with its cancel flag and deadline (``time.monotonic``)."""

    fn: Callable
    args: tuple
    kind: str = "request"  # or "job", or "internal" (the warm-up: in no queue's count)
    seconds: float | None = None  # the time it may run, counted from its start
    future: Future = field(default_factory=Future)
    cancel: threading.Event = field(default_factory=threading.Event)
    deadline: float | None = None

    def stopped(self) -> bool:
        return self.cancel.is_set() or (self.deadline is not None
                                        and time.monotonic() > self.deadline)


_local = threading.local()


def _stack() -> list[Work]:
    if not hasattr(_local, "stack"):
        _local.stack = []
    return _local.stack


def check_cancelled() -> None:
    """Raise :class:`Cancelled` if the work running in this thread was stopped."""
    stack = _stack()
    if stack and stack[-1].stopped():
        raise Cancelled("stopped")


def _pre_hook(_module, _args) -> None:
    if not torch.compiler.is_compiling():  # compiled code: checked at its own entry
        check_cancelled()


class ModelWorker:
    """One thread runs every call of the network; bounded queues of requests and jobs.

    By default the worker is a thread of its own. ``deepinside serve`` instead runs it in the
    process's main thread (:meth:`serve`), with the HTTP server in another: torch runs
    markedly faster there (46 against 68 ms for a lite0 map on this machine).
    """

    def __init__(self, limits: Limits, *, thread: bool = True) -> None:
        self.limits = limits
        self.requests: deque[Work] = deque()
        self.jobs: deque[Work] = deque()
        self.busy_requests = 0  # queued or running
        self.busy_jobs = 0
        self.cond = threading.Condition()
        self.on_idle: list[Callable[[], None]] = []  # called about every 0.2 s
        self.running: list[Work] = []
        self.thread: threading.Thread | None = None
        self.stop = threading.Event()
        if thread:
            self.thread = threading.Thread(target=self.serve, args=(self.stop,),
                                           name="deepinside-model", daemon=True)
            self.thread.start()
            # a daemon thread still inside torch when Python finalises aborts the process
            atexit.register(self.close)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the work (running and queued) and the worker's own thread."""
        self.stop.set()
        with self.cond:
            for work in [*self.running, *self.requests, *self.jobs]:
                work.cancel.set()
                work.future.cancel()
        if self.thread is not None and self.thread is not threading.current_thread():
            self.thread.join(timeout)

    def serve(self, stop: threading.Event | None = None) -> None:
        """Run the queued work in this thread, until ``stop`` is set."""
        while stop is None or not stop.is_set():
            with self.cond:
                if not self.requests and not self.jobs:
                    self.cond.wait(timeout=0.2)
                work = (self.requests.popleft() if self.requests else
                        self.jobs.popleft() if self.jobs else None)
            if work is not None:
                self._run(work)
            else:
                for fn in self.on_idle:
                    fn()

    def _run(self, work: Work) -> None:
        try:
            if not work.future.set_running_or_notify_cancel():
                return
            if work.seconds is not None:
                work.deadline = time.monotonic() + work.seconds
            stack = _stack()
            hook = torch.nn.modules.module.register_module_forward_pre_hook(_pre_hook) \
                if not stack else None
            stack.append(work)
            self.running.append(work)
            try:
                work.future.set_result(work.fn(*work.args))
            except BaseException as e:  # noqa: BLE001 - handed to the request or job
                work.future.set_exception(e)
                if not isinstance(e, Exception):
                    raise  # Ctrl-C in the worker's thread stops the server
            finally:
                self.running.remove(work)
                stack.pop()
                if hook is not None:
                    hook.remove()
        finally:
            with self.cond:
                if work.kind == "job":
                    self.busy_jobs -= 1
                elif work.kind == "request":
                    self.busy_requests -= 1

    def between_steps(self) -> None:
        """Called by a job between two of its steps: run the waiting requests, then stop the
        job if it was cancelled or its time ran out."""
        while True:
            with self.cond:
                work = self.requests.popleft() if self.requests else None
            if work is None:
                break
            self._run(work)
        check_cancelled()

    def submit(self, fn: Callable, *args, deadline: float | None = None,
               seconds: float | None = None, kind: str = "request") -> Work:
        """Queue ``fn(*args)``; a full queue is a 503 :class:`Problem`.

        Args:
            deadline: when the work must stop (``time.monotonic``).
            seconds: how long it may run, counted from its start (for jobs).
            kind: ``"request"``, ``"job"`` (its own queue) or ``"internal"`` (first in line,
                counted in no queue: the warm-up).
        """
        work = Work(fn, args, kind=kind, seconds=seconds, deadline=deadline)
        with self.cond:
            if kind == "internal":
                self.requests.appendleft(work)
            elif kind == "job":
                if self.busy_jobs >= self.limits.jobs:
                    raise Problem(503, "Busy", f"{self.busy_jobs} class-model jobs are queued "
                                  "or running; try again later", headers={"Retry-After": "10"})
                self.busy_jobs += 1
                self.jobs.append(work)
            else:
                if self.busy_requests >= self.limits.queue:
                    raise Problem(503, "Busy", f"{self.busy_requests} requests are waiting for "
                                  "the model; try again shortly", headers={"Retry-After": "1"})
                self.busy_requests += 1
                self.requests.append(work)
            self.cond.notify()
        return work

    async def run(self, fn: Callable, *args):
        """``fn(*args)`` in the worker, within the time limit (504 after it; the work stops)."""
        t0 = time.monotonic()  # the time counts from here, waiting included
        work = self.submit(fn, *args, deadline=t0 + self.limits.timeout)
        answer = asyncio.wrap_future(work.future)
        try:
            return await asyncio.wait_for(asyncio.shield(answer), self.limits.timeout)
        except asyncio.TimeoutError:
            work.cancel.set()
            work.future.cancel()  # if it is still queued, it never runs
            answer.add_done_callback(lambda f: f.cancelled() or f.exception())  # retrieved
            raise Problem(504, "Timed out", f"the request took more than "
                                            f"{self.limits.timeout:g} s") from None
        except Cancelled:  # the worker saw the deadline first
            raise Problem(504, "Timed out", f"the request took more than "
                                            f"{self.limits.timeout:g} s") from None
