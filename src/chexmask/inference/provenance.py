"""Provenance of a dataset run: where its files go, what identifies it, its ``run.json``.

Beside the output ``OUT`` (``<stem>.csv`` or ``<stem>.parquet``) a run keeps
``OUT.parts/`` while it works, then writes ``<stem>.errors.csv`` and ``<stem>.run.json``.
The *fingerprint* identifies a run: the model hash, the quality estimate's hash, every
option that changes a row and a hash of the exact work list. Parts are resumed only by a run with the same
fingerprint, and a finished output whose ``run.json`` has it (and the output's SHA256)
is not redone. The record's format is that of every command
(:mod:`chexmask.formats.runfiles`).
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import chexmask
from chexmask.estimate.estimator import estimator_sha256
from chexmask.formats.runfiles import errors_path
from chexmask.formats.table_paths import table_stem
from chexmask.inference.plan import WorkItem
from chexmask.measures import MEASURE_COLUMNS

__all__ = ["run_paths", "fingerprint", "finished_run", "sha256"]

log = logging.getLogger(__name__)


def run_paths(output: Path) -> tuple[Path, Path, Path]:
    """``(parts folder, errors file, run.json)`` of the output ``output``."""
    return output.with_name(output.name + ".parts"), errors_path(output), output.with_name(table_stem(output) + ".run.json")


def fingerprint(segmenter, items: list[WorkItem], id_column: str, chunk_size: int, shard) -> dict:
    """What makes two runs the same run: the model, the options that change rows, the work list."""
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
        "backend": segmenter.backend,
        "amp": segmenter.amp,
        "micro_batch": segmenter.micro_batch,
        "measures": MEASURE_COLUMNS,  # parts of a version without them are not resumed
        "estimator_sha256": estimator_sha256(),  # nor parts whose Estimated Dice and flag another estimate made
        "clavicles": segmenter.clavicles,
        "id_column": id_column,
        "chunk_size": chunk_size,
        "shard": None if shard is None else list(shard),
        "items": len(items),
        "items_sha256": h.hexdigest(),
    }


def finished_run(output: Path, run_json: Path, fingerprint: dict) -> dict | None:
    """The ``run.json`` record of a finished run of the same fingerprint whose output is intact, else None."""
    if not (output.exists() and run_json.exists()):
        return None
    try:
        previous = json.loads(run_json.read_text())
    except (OSError, ValueError):
        return None
    if previous.get("fingerprint") == fingerprint and previous.get("output_sha256") == sha256(output):
        return previous
    return None


def sha256(path: Path) -> str:
    """SHA256 of a file, hex."""
    from chexmask.model.weights import sha256_file

    return sha256_file(path)
