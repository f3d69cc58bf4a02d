"""Segment a dataset: plan -> read and preprocess (worker processes) -> batched
predict -> postprocess (worker processes) -> sharded, resumable writes.

The work list (:mod:`~chexmask.inference.plan`) is cut into fixed chunks of
``chunk_size`` images, in input order. Each finished chunk is written atomically
(temporary file, then rename) as one Parquet part in ``<OUT>.parts/``, next to a
``manifest.json`` that fingerprints the run (model hash, options, the exact work list:
:mod:`~chexmask.inference.provenance`). A rerun of the same command skips the chunks
already written, so a run killed at any point (even ``kill -9``) loses at most the
chunks in flight. When every chunk is done the parts are concatenated, in input order,
into the output; the result is byte-identical to an uninterrupted run because every
image's row is bitwise deterministic: its latent noise is seeded by its id and the
model runs fixed-shape micro-batches (``Segmenter(micro_batch=...)``).

The stages (:mod:`~chexmask.inference.stages`) run on the local engine
(:mod:`~chexmask.inference.local_engine`) or on Ray Data
(:mod:`~chexmask.inference.ray_engine`); this module validates the options and
orchestrates. Bad inputs become rows of ``<OUT stem>.errors.csv`` (path, error, reason)
and the run goes on; a crash of the machinery (a dead worker, a full disk) stops it
loudly. ``<OUT stem>.run.json`` records the provenance: version, command, weights
SHA256, options, times and counts.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from chexmask._errors import InputError
from chexmask.formats.records import PartStore, assemble
from chexmask.formats.runfiles import run_record, utc_iso, write_errors, write_run_json
from chexmask.formats.table_paths import output_table_format
from chexmask.inference.plan import (
    WorkItem,
    chunks,
    items_from_pairs,
    parse_shard,
    plan_items,
)
from chexmask.inference.provenance import fingerprint, finished_run, run_paths, sha256
from chexmask.inference.stages import load_item
from chexmask.model.default import DEFAULT_MODEL

__all__ = ["WorkItem", "RunSummary", "ENGINES", "MICRO_BATCH", "plan_items", "parse_shard", "load_item",
           "check_output", "build_dataset", "segment_dataset"]

log = logging.getLogger(__name__)

ENGINES = ("local", "ray")
#: Fixed model batch shape per device type (see the module docstring).
MICRO_BATCH = {"cpu": 8, "cuda": 32}
#: Test hook: stop after this many chunks, as a killed run would (None: run to the end).
#: Tests set it with ``monkeypatch.setattr(pipeline, "_stop_after_chunks", 1)``.
_stop_after_chunks: int | None = None


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


def check_output(output: str | os.PathLike[str]) -> Path:
    """The output path, checked: ``.csv`` or ``.parquet`` in an existing folder."""
    output_table_format(output)
    return Path(output)



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
    command: str = "segment",
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
    command : str
        The command recorded in ``run.json`` (``chexmask build`` passes ``"build"``).
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
    t0, started = time.perf_counter(), utc_iso()
    stop_after = _stop_after_chunks
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
        raise ValueError("--atlas and --overlays run with --engine local only (not yet with ray)")
    items = items_from_pairs(pairs, shard) if pairs is not None else plan_items(inputs, shard)
    identity = fingerprint(segmenter, items, id_column, chunk_size, shard)
    if annotate is not None:
        identity["annotate"] = annotate.fingerprint()
    parts_dir, errors_path, run_json = run_paths(output)

    previous = finished_run(output, run_json, identity)
    if previous is not None:
        log.info("%s is already complete (same inputs and options); nothing to do", output)
        shutil.rmtree(parts_dir, ignore_errors=True)
        c = previous["counts"]
        return RunSummary(output, errors_path, run_json, c["images"], c["segmented"], c["failed"], c["images"], 0.0)

    parts = PartStore(parts_dir, identity, id_column, clavicles=segmenter.clavicles)
    done = parts.open()
    work = chunks(items, chunk_size)
    todo = [(c, chunk) for c, chunk in enumerate(work) if c not in done]
    resumed = len(items) - sum(len(chunk) for _, chunk in todo)
    if resumed:
        log.info("resuming: %d of %d images already done in %s", resumed, len(items), parts_dir)

    from tqdm.auto import tqdm

    with tqdm(total=len(items), initial=resumed, unit="img", disable=not progress, desc="segment", smoothing=0.1) as bar:
        if engine == "local":
            from chexmask.inference.local_engine import run_local

            run_local(segmenter, todo, parts, id_column, workers, bar, stop_after, annotate)
        else:
            from chexmask.inference.ray_engine import run_ray

            run_ray(segmenter, todo, parts, id_column, bar, stop_after)
    if stop_after is not None and stop_after < len(todo):
        return RunSummary(output, errors_path, run_json, len(items), 0, 0, resumed, time.perf_counter() - t0, complete=False)

    n_ok, failures = assemble(parts, len(work), output, (segmenter.info["name"], segmenter.info["sha256"]))
    write_errors(errors_path, failures)
    seconds = time.perf_counter() - t0
    summary = RunSummary(output, errors_path, run_json, len(items), n_ok, len(failures), resumed, seconds)
    record = run_record(
        command, args if args is not None else {"inputs": [str(p) for p in inputs], "workers": workers, "engine": engine},
        started, seconds, {"images": len(items), "segmented": n_ok, "failed": len(failures), "resumed": resumed},
        weights={k: segmenter.info[k] for k in ("name", "path", "sha256")}, device=str(segmenter.device), engine=engine,
        images_per_second=round(summary.images_per_second, 2), fingerprint=identity, output_sha256=sha256(output),
    )
    write_run_json(run_json, record)
    shutil.rmtree(parts_dir)
    return summary


def segment_dataset(
    inputs: Sequence[str | os.PathLike[str]],
    output: str | os.PathLike[str],
    *,
    weights: str | os.PathLike[str] = DEFAULT_MODEL,
    device: str = "auto",
    uncertainty: int = 50,
    seed: int = 0,
    batch_size: int = 32,
    amp: bool = True,
    clavicles: bool = False,
    backend: str = "auto",
    annotate: Callable | None = None,
    **options,
) -> RunSummary:
    """Load a model and run :func:`build_dataset` (the ``chexmask segment`` command).

    ``weights``, ``device``, ``uncertainty``, ``seed``, ``batch_size`` and ``backend`` are
    those of :class:`~chexmask.Segmenter`; ``amp`` enables float16 autocast on CUDA. The model
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
    segmenter = Segmenter(weights, device=device, uncertainty=uncertainty, seed=seed, batch_size=batch_size, amp=amp, clavicles=clavicles,
                          backend=backend)
    segmenter.micro_batch = MICRO_BATCH.get(segmenter.device.type, 8)
    if annotate is not None:
        options["annotate"] = annotate(segmenter)
    return build_dataset(segmenter, inputs, output, **options)
