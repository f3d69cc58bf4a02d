"""The one process pool of chexmask: tasks in worker processes, results in submission order.

``segment`` (:mod:`chexmask.inference.local_engine`), ``masks``
(:mod:`chexmask.formats.masks_export`) and ``measure`` (:mod:`chexmask.formats.measure_table`)
use it. Its workers:

- are fresh processes from a fork server (``spawn`` where there is none), never ``fork`` of
  a parent whose torch/OpenMP threads may run;
- end with the process that started them however it dies, ``kill -9`` included
  (:mod:`chexmask._lifeline`), so a killed run leaves no worker, fork server or resource
  tracker behind;
- run at most ``lookahead`` tasks ahead of the consumer (every queue is bounded).

A dead worker (killed, out of memory) ends the pool with a :class:`~chexmask.ChexmaskError`
that says what died and what to do. With 0 workers every task runs in the calling process.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from chexmask._errors import ChexmaskError

__all__ = ["OrderedPool"]


def _start_worker(main_pid: int, initializer: Callable | None, initargs: tuple) -> None:
    from chexmask._lifeline import exit_with

    exit_with(main_pid)
    if initializer is not None:
        initializer(*initargs)


def _context(preload: Sequence[str]):
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # A fork server that has imported the task code starts each worker in milliseconds.
    ctx.set_forkserver_preload(list(preload))
    return ctx


class OrderedPool:
    """``workers`` processes (0: none) running tasks whose results come back in order.

    Use it as a context manager: leaving it cancels what was not started and waits for
    the workers; a worker that died while it was open becomes a ChexmaskError.

    Parameters
    ----------
    workers : int
        Worker processes; 0 runs every task in the calling process, when it is asked for.
    initializer : callable, optional
        Called with ``initargs`` once in each worker process (not in the calling process).
    initargs : tuple
        Arguments of ``initializer``.
    preload : sequence of str
        Modules the fork server imports once (the ones holding the tasks).
    died : str
        What to say when a worker dies, after ``"a worker process died (killed, or out of memory?); "``.
    """

    def __init__(self, workers: int, *, initializer: Callable | None = None, initargs: tuple = (),
                 preload: Sequence[str] = (), died: str = "rerun with fewer --workers") -> None:
        self.workers = workers
        self._died = died
        self._pool = (ProcessPoolExecutor(workers, mp_context=_context(preload), initializer=_start_worker,
                                          initargs=(os.getpid(), initializer, initargs))
                      if workers > 0 else None)

    def __enter__(self) -> OrderedPool:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if self._pool is not None:
            self._pool.shutdown(cancel_futures=True)
        if isinstance(exc, BrokenProcessPool):
            raise ChexmaskError(f"a worker process died (killed, or out of memory?); {self._died}") from exc

    def submit(self, fn: Callable, *args) -> Future:
        """``fn(*args)`` in a worker, or now in this process with 0 workers."""
        if self._pool is not None:
            return self._pool.submit(fn, *args)
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut

    def ordered(self, fn: Callable, arg_tuples: Iterable[tuple], lookahead: int | None = None) -> Iterator:
        """Results of ``fn(*args)`` for each of ``arg_tuples``, in order, at most ``lookahead``
        (default ``2 * workers``) calls in flight; with 0 workers each call runs when its result is due."""
        lookahead = max(1, 2 * self.workers if lookahead is None else lookahead)
        pending: deque[Future] = deque()
        for args in arg_tuples:
            pending.append(self.submit(fn, *args))
            if len(pending) >= lookahead:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
