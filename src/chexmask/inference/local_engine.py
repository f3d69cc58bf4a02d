"""The local engine: worker processes load images and make rows, the main process predicts.

Reads run ahead of the model by a bounded look-ahead (never more than a few batches in
flight); each chunk's rows are written as one part once its last row is back, while the
next chunk is predicted. Workers are fresh processes (a fork server, never ``fork``) that
end with the main process however it dies (:mod:`chexmask._lifeline`).
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from chexmask._errors import ChexmaskError
from chexmask.formats.records import PartStore
from chexmask.inference.stages import failure_record, load_item, predict_segmentations, success_records

__all__ = ["run_local"]

log = logging.getLogger(__name__)


def _init_worker(main_pid: int) -> None:
    import cv2

    from chexmask._lifeline import exit_with

    exit_with(main_pid)  # a killed run leaves no worker (nor fork server, nor resource tracker)
    cv2.setNumThreads(1)  # one image per worker process; OpenCV's own threads would oversubscribe


def _mp_context():
    """Fresh worker processes (never ``fork`` a parent whose torch/OpenMP threads may run).

    A fork server that has imported the worker code starts each worker in milliseconds;
    platforms without one use ``spawn``.
    """
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["chexmask.inference.local_engine", "chexmask.inference.segmenter"])
    return ctx


def _run_now(fn: Callable, *args) -> Future:
    fut: Future = Future()
    fut.set_result(fn(*args))
    return fut


def _ordered(submit: Callable, fn: Callable, arg_tuples: Iterable[tuple], lookahead: int) -> Iterator:
    """Results of ``fn(*args)`` in order, with at most ``lookahead`` calls in flight."""
    pending: deque[Future] = deque()
    for args in arg_tuples:
        pending.append(submit(fn, *args))
        if len(pending) >= lookahead:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def run_local(segmenter, todo, parts: PartStore, id_column: str, workers: int, bar, stop_after: int | None, annotate=None) -> int:
    """Process the chunks of ``todo`` (``(chunk id, items)`` pairs), write each to ``parts``; return how many inputs failed."""
    pool = (ProcessPoolExecutor(workers, mp_context=_mp_context(), initializer=_init_worker, initargs=(os.getpid(),))
            if workers > 0 else None)
    submit = pool.submit if pool else _run_now
    size, batch_size = segmenter.input_size, segmenter.batch_size
    loads = _ordered(submit, load_item, ((it.path, size) for _, chunk in todo for it in chunk), max(2 * batch_size, 4 * workers))
    failed = 0
    pending = None

    def finish(chunk_id: int, records: list[dict], futures: list[Future]) -> None:
        for fut in futures:
            records.extend(fut.result())
        parts.write(chunk_id, records)

    try:
        for done, (chunk_id, chunk) in enumerate(todo, 1):
            records: list[dict] = []
            futures: list[Future] = []
            batch: list = []
            for k, item in enumerate(chunk):
                status, *payload = next(loads)
                if status == "failed":
                    records.append(failure_record(item, *payload))
                    failed += 1
                    log.debug("%s: %s", item.path, payload[1])  # all are in the errors file
                    bar.update(1)
                    bar.set_postfix(failed=failed, refresh=False)
                else:
                    batch.append((item, *payload))
                if batch and (len(batch) == batch_size or k == len(chunk) - 1):
                    segs = predict_segmentations(segmenter, batch)
                    rca = [annotate(seg) for seg in segs] if annotate is not None else None
                    futures.append(submit(success_records, segs, [b[0] for b in batch], id_column, rca, [b[3] for b in batch]))
                    bar.update(len(batch))
                    batch = []
            if pool is None:  # nothing builds rows in the background: write now, hold one chunk's rows at most
                finish(chunk_id, records, futures)
            else:
                if pending is not None:  # finish the previous chunk while this one's rows are built
                    finish(*pending)
                pending = (chunk_id, records, futures)
            if stop_after is not None and done >= stop_after:
                break
        if pending is not None:
            finish(*pending)
    except BrokenProcessPool as exc:
        raise ChexmaskError(
            "a worker process died (killed, or out of memory?); rerun the same command to resume, with fewer --workers"
        ) from exc
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return failed


