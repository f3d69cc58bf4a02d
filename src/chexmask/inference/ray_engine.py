"""The dataset pipeline on Ray Data (``chexmask segment --engine ray``), for clusters.

The same three stages as the local engine, as a streaming Ray Data pipeline:

1. ``map_batches(load_batch)``: CPU tasks read and pad/resize images (uint8 tensors);
2. ``map_batches(Predictor)``: a model-holding actor class (``num_gpus=1`` per actor on
   CUDA, one actor per GPU of the cluster; one actor on the CPU) predicts landmarks and
   uncertainty with the same fixed micro-batches as the local engine;
3. ``map_batches(record_batch)``: CPU tasks fill and run-length encode the masks into
   CheXmask rows (Arrow tables).

The driver receives the rows as they stream out and writes each chunk as a part file
once all its rows arrived, so resuming, the parts folder, the final assembly, the
errors file and ``run.json`` are exactly those of the local engine, and the rows are
bitwise equal to the local engine's.

``ray.init()`` is called when Ray is not initialised yet: it connects to the cluster
named by ``RAY_ADDRESS`` or starts a local instance, quietly (Ray's own log lines at
ERROR only, workers' output not forwarded to the driver). Ray Data's
progress bars, execution plans and stats are switched off while the run streams: the
pipeline's own bar (``--progress``) is the one progress display. Weights given as a
file path must be readable at that path on every node (shipped model names always are).
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from chexmask._errors import ChexmaskError
from chexmask.anatomy import N_NODES, N_NODES_ALL
from chexmask.inference.plan import WorkItem
from chexmask.inference.stages import failure_record, load_item, predict_segmentations, success_records

__all__ = ["RAY_VERSION", "run_ray", "load_batch", "Predictor", "record_batch"]

log = logging.getLogger(__name__)

#: The Ray release this engine is tested with (the ``ray`` extra pins it).
RAY_VERSION = "2.60.0"
_GEOMETRY = ("height", "width", "pad_top", "pad_left", "side", "size")


def _items(batch: dict) -> list[WorkItem]:
    return [WorkItem(int(i), str(d), str(p)) for i, d, p in zip(batch["index"], batch["image_id"], batch["path"])]


def load_batch(batch: dict, size: int) -> dict:
    """Stage 1: read and preprocess; failed images keep zero pixels and an error."""
    n = len(batch["index"])
    pixels = np.zeros((n, size, size), np.uint8)
    geometry = np.zeros((n, len(_GEOMETRY)), np.int64)
    error, reason = np.full(n, "", object), np.full(n, "", object)
    spacing = np.full((n, 2), np.nan)  # (row, column) mm; NaN: unknown
    for k, path in enumerate(batch["path"]):
        status, a, b, *known = load_item(str(path), size)
        if status == "ok":
            pixels[k], geometry[k] = a, [getattr(b, f) for f in _GEOMETRY]
            if known[0] is not None:
                spacing[k] = known[0]
        else:
            error[k], reason[k] = a, b
    return {**batch, "pixels": pixels, "geometry": geometry, "spacing": spacing, "error": error, "reason": reason}


#: dtypes of the Segmentation fields stage 2 passes on (landmarks and node means are
#: mapped to the original frame in float64; stds and latents stay float32).
_FIELD_DTYPES = {"landmarks": np.float64, "node_mean": np.float64, "node_std": np.float32, "latent_mu": np.float32,
                 "latent_sigma": np.float32, "weak_lung_edges": np.float64}


class Predictor:
    """Stage 2: holds one :class:`~chexmask.Segmenter` per actor and predicts a batch."""

    def __init__(self, weights: str, sha256: str, device: str, uncertainty: int, seed: int, batch_size: int, micro_batch: int, amp: bool,
                 clavicles: bool = False, backend: str = "torch") -> None:
        from chexmask.inference.segmenter import Segmenter

        self.segmenter = Segmenter(weights, device=device, uncertainty=uncertainty, seed=seed, batch_size=batch_size, micro_batch=micro_batch,
                                   amp=amp, clavicles=clavicles, backend=backend)
        if self.segmenter.info["sha256"] != sha256:
            raise ChexmaskError(f"weights {weights} on this node differ from the driver's (SHA256 {sha256[:12]}...)")

    def __call__(self, batch: dict) -> dict:
        from chexmask.preprocess import Geometry

        n, ok = len(batch["index"]), batch["error"] == ""
        items = _items(batch)
        loaded = [(items[k], batch["pixels"][k], Geometry(*map(int, batch["geometry"][k]))) for k in np.flatnonzero(ok)]
        segs = predict_segmentations(self.segmenter, loaded) if loaded else []
        # Arrays keep the dtypes of Segmentation's fields, so the rows built from them in
        # stage 3 are bitwise those of the local engine.
        # A batch whose images all failed (or without sampling) gets placeholders of the
        # same dtypes, or Ray cannot join it with the other batches' blocks.
        out = {}
        for field, dtype in _FIELD_DTYPES.items():
            values = [getattr(seg, field) for seg in segs]
            if not values or values[0] is None:
                nodes = N_NODES_ALL if self.segmenter.clavicles else N_NODES
                shape = (nodes, 2) if field.startswith(("land", "node")) else () if field == "weak_lung_edges" else self.segmenter.model.config.latent_dim
                values = [np.zeros(shape, dtype)]
            column = np.zeros((n, *np.shape(values[0])), dtype)
            if segs and getattr(segs[0], field) is not None:
                column[np.flatnonzero(ok)] = values
            out[field] = column
        keep = ("chunk", "index", "image_id", "path", "geometry", "spacing", "error", "reason")
        return {**{c: batch[c] for c in keep}, **out}


def record_batch(batch: dict, id_column: str, uncertainty: bool, clavicles: bool = False, model_sha256: str | None = None):
    """Stage 3: masks and RLE -> CheXmask rows, as an Arrow table with the part schema and ``_chunk``."""
    import pyarrow as pa

    from chexmask.formats.records import part_schema
    from chexmask.inference.segmenter import Segmentation

    records = []
    for k, item in enumerate(_items(batch)):
        if batch["error"][k]:
            records.append(failure_record(item, str(batch["error"][k]), str(batch["reason"][k])))
            continue
        height, width = (int(v) for v in batch["geometry"][k][:2])
        seg = Segmentation(
            item.image_id, item.path, height, width, batch["landmarks"][k], batch["latent_mu"][k], batch["latent_sigma"][k],
            batch["node_mean"][k] if uncertainty else None, batch["node_std"][k] if uncertainty else None, model_sha256,
            float(batch["weak_lung_edges"][k]),
        )
        spacing = None if np.isnan(batch["spacing"][k]).any() else tuple(float(v) for v in batch["spacing"][k])
        records.extend(success_records([seg], [item], id_column, None, [spacing]))
    table = pa.Table.from_pylist(records, schema=part_schema(id_column, clavicles))
    return table.append_column("_chunk", pa.array(batch["chunk"], pa.int64()))


def run_ray(segmenter, todo: list[tuple[int, list[WorkItem]]], parts, id_column: str, bar, stop_after: int | None) -> int:
    """Process the chunks of ``todo`` on Ray Data; write each finished chunk to ``parts``.

    Returns the number of failed inputs. Raises :class:`ChexmaskError` when Ray is not
    installed.
    """
    try:
        import ray
    except ImportError:
        raise ChexmaskError(f"--engine ray needs Ray: pip install 'chexmask[ray]' (ray[data]=={RAY_VERSION})") from None
    if stop_after is not None:
        todo = todo[:stop_after]
    if not todo:
        return 0
    if not ray.is_initialized():
        ray.init(log_to_driver=False, logging_level=logging.ERROR, include_dashboard=False)
    with _quiet_ray_data(ray):
        return _stream(ray, segmenter, todo, parts, id_column, bar)


#: Ray Data settings that print progress, plans and stats (the pipeline has its own bar).
_QUIET = {"enable_progress_bars": False, "enable_operator_progress_bars": False, "print_on_execution_start": False,
          "verbose_stats_logs": False, "enable_auto_log_stats": False}


@contextmanager
def _quiet_ray_data(ray) -> Iterator[None]:
    """Silence Ray Data's progress bars and logs below ERROR for one run, then restore them."""
    context = ray.data.DataContext.get_current()
    saved = {name: getattr(context, name) for name in _QUIET if hasattr(context, name)}
    data_log = logging.getLogger("ray.data")
    level = data_log.level
    for name in saved:
        setattr(context, name, _QUIET[name])
    data_log.setLevel(logging.ERROR)  # also its 'progress bars disabled' notice
    try:
        yield
    finally:
        for name, value in saved.items():
            setattr(context, name, value)
        data_log.setLevel(level)


def _stream(ray, segmenter, todo, parts, id_column: str, bar) -> int:
    cuda = segmenter.device.type == "cuda"
    actors = max(1, int(ray.cluster_resources().get("GPU", 0))) if cuda else 1
    rows = [{"chunk": c, "index": it.index, "image_id": it.image_id, "path": it.path} for c, chunk in todo for it in chunk]
    size, batch_size = segmenter.input_size, segmenter.batch_size
    weights = str(segmenter.info["path"])
    ds = ray.data.from_items(rows)
    ds = ds.map_batches(load_batch, fn_kwargs={"size": size}, batch_size=batch_size, batch_format="numpy")
    with warnings.catch_warnings():
        # max_restarts has no named parameter in Ray 2.60 (RAY_VERSION): only the deprecated **ray_remote_args
        warnings.filterwarnings("ignore", message=".*ray_remote_args.* is deprecated")
        ds = ds.map_batches(
            Predictor,
            fn_constructor_args=(weights, segmenter.info["sha256"], str(segmenter.device), segmenter.uncertainty,
                                 segmenter.seed, batch_size, segmenter.micro_batch, segmenter.amp, segmenter.clavicles,
                                 segmenter.backend.split()[0]),  # the driver's backend ("openvino ..." -> "openvino"), never a fallback
            batch_size=batch_size, batch_format="numpy", compute=ray.data.ActorPoolStrategy(size=actors), num_gpus=1 if cuda else 0,
            # a dead model actor stops the run loudly (rerun to resume) instead of a silent restart, which
            # Ray's core worker also warns about on every run (constructor arguments in the object store)
            max_restarts=0,
        )
    ds = ds.map_batches(record_batch, fn_kwargs={"id_column": id_column, "uncertainty": segmenter.uncertainty > 0,
                                                 "clavicles": segmenter.clavicles, "model_sha256": segmenter.info["sha256"]},
                        batch_size=batch_size, batch_format="numpy")

    expected = {c: len(chunk) for c, chunk in todo}
    pending: dict[int, list[dict]] = {c: [] for c in expected}
    failed = 0
    for table in ds.iter_batches(batch_format="pyarrow", batch_size=None):
        for rec in table.to_pylist():
            chunk = rec.pop("_chunk")
            pending[chunk].append(rec)
            failed += rec["_error"] is not None
            if len(pending[chunk]) == expected[chunk]:
                parts.write(chunk, pending.pop(chunk))
        bar.update(table.num_rows)
        bar.set_postfix(failed=failed, refresh=False)
    if pending:
        raise ChexmaskError(f"Ray returned no rows for {sum(expected[c] - len(r) for c, r in pending.items())} images of chunks {sorted(pending)}")
    return failed
