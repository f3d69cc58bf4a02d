"""Segment a dataset: discover -> read and preprocess (worker processes) -> batched
predict -> postprocess (worker processes) -> sharded, resumable writes.

The work list is cut into fixed chunks of ``chunk_size`` images, in input order. Each
finished chunk is written atomically (temporary file, then rename) as one Parquet
part in ``<OUT>.parts/``, next to a ``manifest.json`` that fingerprints the run
(model hash, options, the exact work list). A rerun of the same command skips the
chunks already written, so a run killed at any point (even ``kill -9``) loses at most
the chunks in flight. When every chunk is done the parts are concatenated, in input
order, into the output; the result is byte-identical to an uninterrupted run because
every image's row is bitwise deterministic: its latent noise is seeded by its id
and the model runs fixed-shape micro-batches (``Segmenter(micro_batch=...)``).

Bad inputs become rows of ``<OUT stem>.errors.csv`` (path, error, reason) and the run
goes on; a crash of the machinery (a dead worker, a full disk) stops it loudly.
``<OUT stem>.run.json`` records the provenance: version, weights SHA256, options,
times and counts.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

import numpy as np

import chexmask
from chexmask._errors import ChexmaskError, InputError
from chexmask.formats.records import PartStore, assemble, atomic_write, segmentation_record, write_errors
from chexmask.measures import MEASURE_COLUMNS
from chexmask.model.default import DEFAULT_MODEL

__all__ = ["WorkItem", "RunSummary", "ENGINES", "MICRO_BATCH", "plan_items", "parse_shard", "build_dataset", "segment_dataset"]

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
#: Fixed model batch shape per device type (see the module docstring).
MICRO_BATCH = {"cpu": 8, "cuda": 32}


class WorkItem(NamedTuple):
    """One input image: its position in the input order, its row id and its file."""

    index: int
    image_id: str
    path: str


@dataclass(frozen=True)
class RunSummary:
    """What a :func:`build_dataset` run did.

    ``images`` counts this shard's inputs; ``resumed`` those already done by an earlier
    run; ``complete`` is False only when the run was stopped early (test hook).
    """

    output: Path
    errors: Path
    run_json: Path
    images: int
    segmented: int
    failed: int
    resumed: int
    seconds: float
    complete: bool = True

    @property
    def images_per_second(self) -> float:
        """Throughput of this run (images it processed, not resumed ones)."""
        return (self.images - self.resumed) / self.seconds if self.seconds > 0 else 0.0


# ----------------------------------------------------------------------------- planning


def parse_shard(text: str) -> tuple[int, int]:
    """Parse ``"I/N"`` (0-based: ``0/4`` ... ``3/4``) into ``(I, N)``."""
    try:
        i, n = (int(v) for v in str(text).split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like I/N (e.g. 0/4), got {text!r}") from None
    if n < 1 or not 0 <= i < n:
        raise ValueError(f"--shard {text}: need N >= 1 and 0 <= I < N (shards are numbered from 0)")
    return i, n


def _shard_of(image_id: str, n: int) -> int:
    return int.from_bytes(hashlib.sha256(image_id.encode()).digest()[:8], "little") % n


def plan_items(inputs: Sequence[str | os.PathLike[str]], shard: tuple[int, int] | None = None) -> list[WorkItem]:
    """The images to segment, in input order, with their row ids.

    The id of an image is its path relative to the deepest folder holding all inputs,
    with ``/`` separators (a single folder of PNGs gives file names such as
    ``00000001_000.png``, as in the published ChestX-ray8 rows). ``shard=(i, n)`` keeps
    the images whose id hashes to ``i`` modulo ``n``: deterministic and stable when
    images are added.

    Raises
    ------
    InputError
        An input does not exist, a list file is unreadable, or no image was found.
    """
    from chexmask.io.discover import DEFAULT_EXTENSIONS, find_images

    paths = find_images(list(inputs))
    if not paths:
        raise InputError(", ".join(map(str, inputs)), f"no images found (looked for {', '.join(DEFAULT_EXTENSIONS)} files)")
    root = Path(os.path.commonpath([p.parent for p in paths]))
    items = [WorkItem(i, p.relative_to(root).as_posix(), str(p)) for i, p in enumerate(paths)]
    return _keep_shard(items, shard)


def _keep_shard(items: list[WorkItem], shard: tuple[int, int] | None) -> list[WorkItem]:
    if shard is None:
        return items
    return [it for it in items if _shard_of(it.image_id, shard[1]) == shard[0]]


def items_from_pairs(pairs: Sequence[tuple[str, str]], shard: tuple[int, int] | None = None) -> list[WorkItem]:
    """Work items from explicit ``(image_id, path)`` pairs (a dataset builder's index), in order.

    Raises
    ------
    InputError
        No pairs, or an id that repeats (rows would be ambiguous).
    """
    if not pairs:
        raise InputError("image index", "no images to segment")
    ids = [str(i) for i, _ in pairs]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise InputError("image index", f"image id {dup!r} appears more than once")
    return _keep_shard([WorkItem(k, i, str(p)) for k, (i, p) in enumerate(pairs)], shard)


# ----------------------------------------------------------------------------- rows


def failure_record(item: WorkItem, error: str, reason: str) -> dict:
    """The part row of an input that could not be segmented."""
    return {"_index": item.index, "_path": item.path, "_error": error, "_reason": reason}


def success_records(segmentations: list, items: list[WorkItem], id_column: str, rca: list | None = None,
                    spacings: list | None = None) -> list[dict]:
    """Part rows of segmented images (mask filling, RLE and measures: run in worker processes).

    ``spacings`` are the images' pixel spacings (``(row, column)`` mm or None), for the mm measures.
    """
    out = []
    none = [None] * len(items)
    for seg, item, scores, spacing in zip(segmentations, items, rca or none, spacings or none):
        try:
            rec = segmentation_record(seg, id_column, scores, spacing)
        except InputError as exc:  # e.g. a non-finite prediction for one odd image
            out.append(failure_record(item, type(exc).__name__, f"prediction unusable: {exc.reason}"))
            continue
        rec.update(_index=item.index, _path=item.path, _error=None, _reason=None)
        out.append(rec)
    return out


# ----------------------------------------------------------------------------- local engine


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
    ctx.set_forkserver_preload(["chexmask.inference.pipeline", "chexmask.inference.segmenter"])
    return ctx


def load_item(path: str, size: int) -> tuple:
    """Read and pad/resize one image: ``("ok", uint8 (S, S) pixels, Geometry, pixel spacing or None)``
    or ``("failed", error, reason)``."""
    from chexmask.io.read import read_image
    from chexmask.preprocess import pad_resize

    try:
        image = read_image(path)
    except InputError as exc:
        return ("failed", type(exc).__name__, exc.reason)
    pixels, geometry = pad_resize(image.pixels, size)
    return ("ok", pixels, geometry, image.pixel_spacing)


class _Meta(NamedTuple):  # what Segmenter.postprocess needs of an image
    image_id: str
    path: str
    height: int
    width: int


def predict_segmentations(segmenter, batch: list[tuple[WorkItem, np.ndarray, object]]) -> list:
    """Run one batch of loaded images through the model; Segmentations in the original frame."""
    pred = segmenter.predict(np.stack([b[1] for b in batch]))
    return [
        segmenter.postprocess(pred, i, _Meta(item.image_id, item.path, g.height, g.width), g)
        for i, (item, _, g, *_) in enumerate(batch)
    ]


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


def _run_local(segmenter, todo, parts: PartStore, id_column: str, workers: int, bar, stop_after: int | None, annotate=None) -> int:
    """Process the chunks of ``todo``; return how many inputs failed."""
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


# ----------------------------------------------------------------------------- entry points


def _paths(output: Path) -> tuple[Path, Path, Path]:
    stem = output.name[: -len(output.suffix)]
    return output.with_name(output.name + ".parts"), output.with_name(stem + ".errors.csv"), output.with_name(stem + ".run.json")


def _fingerprint(segmenter, items: list[WorkItem], id_column: str, chunk_size: int, shard) -> dict:
    h = hashlib.sha256()
    for it in items:
        h.update(f"{it.index}\t{it.image_id}\t{it.path}\n".encode())
    return {
        "chexmask": chexmask.__version__,
        "weights_sha256": segmenter.info["sha256"],
        "input_size": segmenter.input_size,
        "uncertainty": segmenter.uncertainty,
        "seed": segmenter.seed,
        "device_type": segmenter.device.type,
        "amp": segmenter.amp,
        "micro_batch": segmenter.micro_batch,
        "measures": MEASURE_COLUMNS,  # parts of a version without them are not resumed
        "clavicles": segmenter.clavicles,
        "id_column": id_column,
        "chunk_size": chunk_size,
        "shard": None if shard is None else list(shard),
        "items": len(items),
        "items_sha256": h.hexdigest(),
    }


def check_output(output: str | os.PathLike[str]) -> Path:
    """The output path, checked: ``.csv`` or ``.parquet`` in an existing folder."""
    path = Path(output)
    if path.suffix.lower() not in (".csv", ".parquet"):
        raise ValueError(f"-o {output}: the output must end in .csv (CheXmask CSV) or .parquet, got {path.suffix or 'no suffix'!r}")
    if not path.parent.is_dir():
        raise ValueError(f"-o {output}: folder {path.parent} does not exist")
    return path


def build_dataset(
    segmenter,
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    workers: int = 0,
    id_column: str = "Image ID",
    shard: tuple[int, int] | str | None = None,
    chunk_size: int = 1000,
    engine: str = "local",
    progress: bool = True,
    args: dict | None = None,
    pairs: Sequence[tuple[str, str]] | None = None,
    annotate=None,
    _stop_after_chunks: int | None = None,
) -> RunSummary:
    """Segment every image named by ``inputs`` into a CheXmask table, resumably.

    Parameters
    ----------
    segmenter : chexmask.Segmenter
        Its model, device, uncertainty samples, seed and batch size are used; set its
        ``micro_batch`` (as :func:`segment_dataset` does) for bitwise determinism.
    inputs : sequence of str or path-like
        Image files, folders (searched recursively) and ``.csv``/``.txt`` path lists.
    output : str or path-like
        ``.csv`` (CheXmask columns + uncertainty summary) or ``.parquet`` (also the
        per-node arrays and the model). Rows are in input order.
    workers : int
        Worker processes reading/preprocessing images and filling/encoding masks
        (0 = all in this process).
    id_column : str
        Name of the id column.
    shard : (i, n) or "i/n", optional
        Process only shard ``i`` of ``n`` (0-based), split by id hash.
    chunk_size : int
        Images per part file (resume granularity and Parquet row-group size).
    engine : {"local", "ray"}
        ``"ray"`` runs the same stages on Ray Data (see :mod:`chexmask.inference.ray_engine`).
    progress : bool
        Show a progress bar (images/s, ETA, failures) on stderr.
    args : dict, optional
        The command-line arguments to record in ``run.json``.
    pairs : sequence of (image_id, path), optional
        Explicit ids and files (a dataset builder's index) instead of ``inputs``.
    annotate : callable, optional
        ``annotate(segmentation) -> RCA columns or None``, with a ``fingerprint()``
        method (:class:`chexmask.reports.annotate.Annotator`): adds RCA scores and
        writes overlays (local engine only).

    Returns
    -------
    RunSummary

    Raises
    ------
    ValueError
        A bad option (output suffix, shard, workers, chunk size, engine).
    InputError
        An input does not exist.
    ChexmaskError
        No images, a parts folder from a run with other settings, or a dead worker.
    """
    t0, started = time.perf_counter(), datetime.now(timezone.utc)
    output = check_output(output)
    if isinstance(shard, str):
        shard = parse_shard(shard)
    if workers < 0:
        raise ValueError(f"--workers must be >= 0, got {workers}")
    if chunk_size < 1:
        raise ValueError(f"--chunk-size must be >= 1, got {chunk_size}")
    if engine not in ENGINES:
        raise ValueError(f"--engine {engine!r}: expected one of {list(ENGINES)}")
    if not id_column.strip() or id_column.startswith("_"):
        raise ValueError(f"--id-column must be a non-empty name not starting with '_', got {id_column!r}")
    if annotate is not None and engine != "local":
        raise ValueError("--rca and --overlays run with --engine local only (not yet with ray)")
    items = items_from_pairs(pairs, shard) if pairs is not None else plan_items(inputs, shard)
    fingerprint = _fingerprint(segmenter, items, id_column, chunk_size, shard)
    if annotate is not None:
        fingerprint["annotate"] = annotate.fingerprint()
    parts_dir, errors_path, run_json = _paths(output)

    if output.exists() and run_json.exists():
        try:
            previous = json.loads(run_json.read_text())
        except (OSError, ValueError):
            previous = {}
        if previous.get("fingerprint") == fingerprint and previous.get("output_sha256") == _sha256(output):
            log.info("%s is already complete (same inputs and options); nothing to do", output)
            shutil.rmtree(parts_dir, ignore_errors=True)
            c = previous["counts"]
            return RunSummary(output, errors_path, run_json, c["images"], c["segmented"], c["failed"], c["images"], 0.0)

    parts = PartStore(parts_dir, fingerprint, id_column, clavicles=segmenter.clavicles)
    done = parts.open()
    chunks = [items[i : i + chunk_size] for i in range(0, len(items), chunk_size)]
    todo = [(c, chunk) for c, chunk in enumerate(chunks) if c not in done]
    resumed = len(items) - sum(len(chunk) for _, chunk in todo)
    if resumed:
        log.info("resuming: %d of %d images already done in %s", resumed, len(items), parts_dir)

    from tqdm.auto import tqdm

    with tqdm(total=len(items), initial=resumed, unit="img", disable=not progress, desc="segment", smoothing=0.1) as bar:
        if engine == "local":
            _run_local(segmenter, todo, parts, id_column, workers, bar, _stop_after_chunks, annotate)
        else:
            from chexmask.inference.ray_engine import run_ray

            run_ray(segmenter, todo, parts, id_column, bar, _stop_after_chunks)
    if _stop_after_chunks is not None and _stop_after_chunks < len(todo):
        return RunSummary(output, errors_path, run_json, len(items), 0, 0, resumed, time.perf_counter() - t0, complete=False)

    n_ok, failures = assemble(parts, len(chunks), output, (segmenter.info["name"], segmenter.info["sha256"]))
    atomic_write(errors_path, lambda p: write_errors(p, failures))
    seconds = time.perf_counter() - t0
    summary = RunSummary(output, errors_path, run_json, len(items), n_ok, len(failures), resumed, seconds)
    record = {
        "chexmask": chexmask.__version__,
        "command": "segment",
        "args": args if args is not None else {"inputs": [str(p) for p in inputs], "workers": workers, "engine": engine},
        "weights": {k: segmenter.info[k] for k in ("name", "path", "sha256")},
        "device": str(segmenter.device),
        "engine": engine,
        "started": started.isoformat(timespec="seconds"),
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(seconds, 3),
        "counts": {"images": len(items), "segmented": n_ok, "failed": len(failures), "resumed": resumed},
        "images_per_second": round(summary.images_per_second, 2),
        "fingerprint": fingerprint,
        "output_sha256": _sha256(output),
    }
    atomic_write(run_json, lambda p: p.write_text(json.dumps(record, indent=1) + "\n"))
    shutil.rmtree(parts_dir)
    return summary


def _sha256(path: Path) -> str:
    from chexmask.model.weights import sha256_file

    return sha256_file(path)


def segment_dataset(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] = DEFAULT_MODEL,
    device: str = "cpu",
    uncertainty: int = 50,
    seed: int = 0,
    batch_size: int = 32,
    amp: bool = True,
    clavicles: bool = False,
    annotate: Callable | None = None,
    **options,
) -> RunSummary:
    """Load a model and run :func:`build_dataset` (the ``chexmask segment`` command).

    ``weights``, ``device``, ``uncertainty``, ``seed`` and ``batch_size`` are those of
    :class:`~chexmask.Segmenter`; ``amp`` enables float16 autocast on CUDA. The model
    runs micro-batches of :data:`MICRO_BATCH` images (8 on the CPU, 32 on CUDA), so
    rows do not depend on ``batch_size``; use a multiple of it. ``clavicles`` adds the
    clavicle columns (a model that predicts them). ``annotate`` is a factory called with
    the loaded Segmenter that returns :func:`build_dataset`'s ``annotate`` hook (RCA
    columns, overlays: :func:`chexmask.reports.annotate.annotator` builds it, so this
    layer never imports quality or reports). ``options`` go to :func:`build_dataset`.
    """
    from chexmask.inference.segmenter import Segmenter

    check_output(output)
    if batch_size < 1:
        raise ValueError(f"--batch-size must be >= 1, got {batch_size}")
    if uncertainty < 0:
        raise ValueError(f"--uncertainty must be >= 0 samples, got {uncertainty}")
    if isinstance(options.get("shard"), str):
        options["shard"] = parse_shard(options["shard"])
    for item in inputs:  # before the (slow) model load; discovery checks the rest
        if not Path(item).exists():
            raise InputError(item, "no such file or folder")
    segmenter = Segmenter(weights, device=device, uncertainty=uncertainty, seed=seed, batch_size=batch_size, amp=amp, clavicles=clavicles)
    segmenter.micro_batch = MICRO_BATCH.get(segmenter.device.type, 8)
    if annotate is not None:
        options["annotate"] = annotate(segmenter)
    return build_dataset(segmenter, inputs, output, **options)
