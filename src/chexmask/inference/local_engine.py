"""The local engine: worker processes load images and make rows, the main process predicts.

Reads run ahead of the model by a bounded look-ahead (never more than a few batches in
flight); each chunk's rows are written as one part once its last row is back, while the
next chunk is predicted. The workers are :class:`chexmask._pool.OrderedPool`'s: fresh
processes that end with the main process however it dies.
"""

from __future__ import annotations

import logging
from concurrent.futures import Future

from chexmask._pool import OrderedPool
from chexmask.formats.records import PartStore
from chexmask.inference.stages import (
    failure_record,
    load_item,
    predict_segmentations,
    success_records,
)

__all__ = ["run_local"]

#: What the fork server imports once: the worker's tasks and the model code they touch.
_PRELOAD = ("chexmask.inference.local_engine", "chexmask.inference.segmenter")

log = logging.getLogger(__name__)


def _init_worker() -> None:
    import cv2

    cv2.setNumThreads(1)  # one image per worker process; OpenCV's own threads would oversubscribe


def run_local(segmenter, todo, parts: PartStore, id_column: str, workers: int, bar, stop_after: int | None, annotate=None) -> int:
    """Process the chunks of ``todo`` (``(chunk id, items)`` pairs), write each to ``parts``; return how many inputs failed."""
    size, batch_size = segmenter.input_size, segmenter.batch_size
    failed = 0
    pending = None

    def finish(chunk_id: int, records: list[dict], futures: list[Future]) -> None:
        for fut in futures:
            records.extend(fut.result())
        parts.write(chunk_id, records)

    with OrderedPool(workers, initializer=_init_worker, preload=_PRELOAD,
                     died="rerun the same command to resume, with fewer --workers") as pool:
        submit = pool.submit
        loads = pool.ordered(load_item, ((it.path, size) for _, chunk in todo for it in chunk), max(2 * batch_size, 4 * workers))
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
            if workers == 0:  # nothing builds rows in the background: write now, hold one chunk's rows at most
                finish(chunk_id, records, futures)
            else:
                if pending is not None:  # finish the previous chunk while this one's rows are built
                    finish(*pending)
                pending = (chunk_id, records, futures)
            if stop_after is not None and done >= stop_after:
                break
        if pending is not None:
            finish(*pending)
    return failed


