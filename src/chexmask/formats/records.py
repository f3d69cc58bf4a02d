"""One segmentation -> one CheXmask table row, and the columns of the CSV and Parquet outputs.

A row holds the image id (column name chosen by the caller), then the published
CheXmask columns (:data:`~chexmask.formats.tables.CHEXMASK_COLUMNS`: RCA scores,
``Landmarks``, the three run-length masks, ``Height``, ``Width``), the per-organ RCA
scores (:data:`RCA_ORGAN_COLUMNS`), the per-node standard deviations in CheXmask-U's
``Landmarks (Std)`` layout (:data:`NODE_STD_COLUMNS`), the uncertainty summary (:data:`SUMMARY_COLUMNS`),
the Estimated Dice (:data:`~chexmask.estimate.estimator.ESTIMATE_COLUMNS`), the review flag and the measurements
(:data:`~chexmask.measures.MEASURE_COLUMNS`: cardiothoracic ratio, areas, widths and
heights, in mm too when the image's pixel spacing is known). The Parquet output adds the per-node
and latent arrays (:data:`ARRAY_COLUMNS`) and the model that made the row
(:data:`MODEL_COLUMNS`).

Everything is in the ORIGINAL image frame: landmarks are (x, y) = (col, row) rounded
to whole pixels, the masks are filled from those rounded landmarks at ``Height`` x
``Width``, and uncertainties are in original pixels.

The segment pipeline keeps finished rows in Parquet part files (:class:`PartStore`, with
:data:`PRIVATE_COLUMNS` for input order and failures) and streams them into the final
CSV or Parquet table (:func:`assemble`, :class:`TableWriter`).
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pandas as pd

from chexmask._errors import ChexmaskError
from chexmask.anatomy import N_NODES
from chexmask.estimate.estimator import ESTIMATE_COLUMNS
from chexmask.formats.landmark_columns import STD_COLUMN
from chexmask.formats.landmarks import format_landmarks, format_node_std
from chexmask.formats.runfiles import atomic_write
from chexmask.formats.table_paths import table_format
from chexmask.formats.tables import CHEXMASK_COLUMNS, MASK_COLUMNS, write_csv
from chexmask.masks.fill import landmarks_to_runs
from chexmask.masks.rle import runs_to_rle
from chexmask.measures import MEASURE_COLUMNS, arrow_types, measure_record, measure_runs

__all__ = [
    "NODE_STD_COLUMNS",
    "SUMMARY_COLUMNS",
    "FLAG_COLUMNS",
    "CLAVICLE_COLUMNS",
    "RCA_ORGAN_COLUMNS",
    "ARRAY_COLUMNS",
    "MODEL_COLUMNS",
    "SUMMARY_DECIMALS",
    "PRIVATE_COLUMNS",
    "csv_columns",
    "parquet_columns",
    "segmentation_record",
    "part_schema",
    "TableWriter",
    "PartStore",
    "assemble",
]

#: Per-node uncertainty of both outputs: ``Landmarks (Std)``, CheXmask-U's column, the std of x
#: and of y of each of the 120 CheXmask nodes over the latent samples, flat ``"sx1,sy1,..."``
#: like ``Landmarks``, original pixels, two decimals (``"1.50"``): ``Node Std[:240]`` (float32)
#: rounded, so CSV and Parquet hold the same text; ``""`` without latent sampling.
NODE_STD_COLUMNS: list[str] = [STD_COLUMN]
#: Uncertainty summary columns of both outputs (empty without latent sampling, except
#: ``Latent Sigma``, the mean posterior standard deviation of the latent).
SUMMARY_COLUMNS: list[str] = [
    "Uncertainty",
    "Uncertainty Right Lung",
    "Uncertainty Left Lung",
    "Uncertainty Heart",
    "Latent Sigma",
]
#: Review flag of both outputs: "good", "review" or "unknown" (see
#: :func:`chexmask.flag.quality_flag`: the Estimated Dice (:data:`ESTIMATE_COLUMNS`,
#: :mod:`chexmask.estimate`) and, with ``--atlas``, ``Dice RCA (Mean)`` against their thresholds).
FLAG_COLUMNS: list[str] = ["Quality Flag"]
#: Columns of both outputs with ``--clavicles`` (a model that predicts them):
#: ``Clavicle Landmarks`` holds the 46 clavicle nodes (right 23, then left 23) as the flat
#: ``x1,y1,...`` string of ``Landmarks``, which keeps the 120 CheXmask nodes; the masks
#: are run-length encoded as the others.
CLAVICLE_COLUMNS: list[str] = ["Clavicle Landmarks", "Right Clavicle", "Left Clavicle"]
#: Per-organ RCA scores of both outputs, after the CheXmask columns (filled by ``--atlas``).
RCA_ORGAN_COLUMNS: list[str] = ["Dice RCA Lungs (Mean)", "Dice RCA Lungs (Max)", "Dice RCA Heart (Mean)", "Dice RCA Heart (Max)"]
#: Per-image arrays of the Parquet output (float32 lists). ``Node Mean``/``Node Std``:
#: mean and std of the decoded latent samples, flat ``x1, y1, x2, y2, ...`` over the
#: 120 nodes (166 with ``--clavicles``), original pixels (null without sampling). ``Latent Mu``/``Latent Sigma
#: Vector``: the encoder's posterior (used by RCA to pick references). ``Node Error Radius``:
#: per CheXmask node (120), original pixels, the radius within which the expert's node lies
#: with 90 % probability (null without sampling or for weights the estimate was not fitted on).
ARRAY_COLUMNS: list[str] = ["Node Mean", "Node Std", "Latent Mu", "Latent Sigma Vector", "Node Error Radius"]
#: Provenance columns of the Parquet output: weights name and SHA256.
MODEL_COLUMNS: list[str] = ["Model", "Model SHA256"]
#: Summary values are rounded to this many decimals (1e-4 px), which keeps the CSV
#: readable; the results are deterministic, so rounding never makes runs differ.
SUMMARY_DECIMALS = 4
#: Bookkeeping columns of the pipeline's part files: input position, file, and for a
#: failed input the error type and reason (null for segmented images).
PRIVATE_COLUMNS: list[str] = ["_index", "_path", "_error", "_reason"]

_ORGAN_UNCERTAINTY = {
    "right_lung": "Uncertainty Right Lung",
    "left_lung": "Uncertainty Left Lung",
    "heart": "Uncertainty Heart",
}


def csv_columns(id_column: str, clavicles: bool = False) -> list[str]:
    """Columns of the CSV output, in order: id, CheXmask columns, per-organ RCA, ``Landmarks (Std)``, uncertainty summary, Estimated Dice, flag, measures (then the clavicles)."""
    return [id_column, *CHEXMASK_COLUMNS, *RCA_ORGAN_COLUMNS, *NODE_STD_COLUMNS, *SUMMARY_COLUMNS, *ESTIMATE_COLUMNS, *FLAG_COLUMNS, *MEASURE_COLUMNS,
            *(CLAVICLE_COLUMNS if clavicles else [])]


def parquet_columns(id_column: str, clavicles: bool = False) -> list[str]:
    """Columns of the Parquet output: the CSV columns, then the arrays and the model."""
    return [*csv_columns(id_column, clavicles), *ARRAY_COLUMNS, *MODEL_COLUMNS]


def segmentation_record(
    segmentation, id_column: str = "Image ID", rca: dict[str, float] | None = None,
    pixel_spacing: tuple[float, float] | None = None,
) -> dict[str, object]:
    """The table row of one segmentation (all Parquet columns except the model's).

    Parameters
    ----------
    segmentation : chexmask.inference.segmenter.Segmentation
        A result in the original frame.
    id_column : str
        Name of the id column; its value is ``segmentation.image_id``.
    rca : dict, optional
        RCA columns of the image (:func:`chexmask.quality.rca.score_segmentation`).
    pixel_spacing : (float, float), optional
        ``(row, column)`` mm of the image (:attr:`chexmask.io.read.XrayImage.pixel_spacing`);
        without it the mm measurement columns are ``None``.

    Returns
    -------
    dict
        Column -> value. Text columns are ``str`` (``Landmarks (Std)`` is ``""``
        without sampling); ``Height``/``Width`` ``int``;
        the summary columns ``float`` rounded to :data:`SUMMARY_DECIMALS` decimals or
        ``None``; the RCA columns ``None`` unless ``rca`` is given; ``Quality Flag``
        a ``str``; the array columns float32 ndarrays or ``None``.

    Notes
    -----
    The masks are the runs of ``landmarks_to_masks`` fills of
    :attr:`Segmentation.landmarks_int` (the rounded ``Landmarks`` written in the row),
    computed without painting them (:func:`chexmask.masks.fill.landmarks_to_runs`), so
    decoding a row's masks and re-filling its landmarks agree exactly. The pipeline
    builds rows in worker processes when it has them.
    """
    # Runs straight from the contours (no mask painted): the same pixels as
    # Segmentation.masks(), 5x cheaper than painting and encoding them (chexmask.masks.fill.polygon_runs).
    runs = landmarks_to_runs(segmentation.landmarks_int, segmentation.height, segmentation.width)
    row: dict[str, object] = {
        id_column: segmentation.image_id,
        "Dice RCA (Mean)": _round_rca(rca, "Dice RCA (Mean)"),
        "Dice RCA (Max)": _round_rca(rca, "Dice RCA (Max)"),
        "Landmarks": format_landmarks(segmentation.landmarks_int[:N_NODES]),
    }
    for organ in ("left_lung", "right_lung", "heart"):  # published column order
        row[MASK_COLUMNS[organ]] = runs_to_rle(*runs[organ])
    row["Height"] = int(segmentation.height)
    row["Width"] = int(segmentation.width)
    # From the float32 values Parquet's Node Std holds (the Ray engine's too), so the text is one.
    node_std = _flat(segmentation.node_std)
    row[STD_COLUMN] = "" if node_std is None else format_node_std(node_std.reshape(-1, 2)[:N_NODES])
    row["Uncertainty"] = _round(segmentation.uncertainty)
    organs = segmentation.organ_uncertainty() or {}
    for organ, column in _ORGAN_UNCERTAINTY.items():
        row[column] = _round(organs.get(organ))
    row["Latent Sigma"] = _round(float(np.mean(segmentation.latent_sigma)))
    estimate = segmentation.quality_estimate()
    for column, value in estimate.columns().items():
        row[column] = _round(value)
    row["Quality Flag"] = estimate.flag(row["Dice RCA (Mean)"]).flag
    row.update(measure_record(measure_runs(runs, segmentation.width, pixel_spacing)))
    if "right_clavicle" in runs:
        row["Clavicle Landmarks"] = format_landmarks(segmentation.landmarks_int[N_NODES:])
        row["Right Clavicle"] = runs_to_rle(*runs["right_clavicle"])
        row["Left Clavicle"] = runs_to_rle(*runs["left_clavicle"])
    for column in RCA_ORGAN_COLUMNS:
        row[column] = _round_rca(rca, column)
    row["Node Mean"] = _flat(segmentation.node_mean)
    row["Node Std"] = node_std
    row["Latent Mu"] = _flat(segmentation.latent_mu)
    row["Latent Sigma Vector"] = _flat(segmentation.latent_sigma)
    row["Node Error Radius"] = _flat(estimate.node_radius)
    return row


def _round(value: float | None) -> float | None:
    if value is None or math.isnan(value):
        return None
    return round(float(value), SUMMARY_DECIMALS)


def _round_rca(rca: dict[str, float] | None, column: str) -> float | None:
    # full precision, as the published tables hold it
    if rca is None or rca.get(column) is None or math.isnan(rca[column]):
        return None
    return float(rca[column])


def _flat(values: np.ndarray | None) -> np.ndarray | None:
    return None if values is None else np.asarray(values, dtype=np.float32).reshape(-1)


def part_schema(id_column: str, clavicles: bool = False):
    """Arrow schema of the pipeline's part files: every output column plus :data:`PRIVATE_COLUMNS`."""
    import pyarrow as pa

    types = {c: pa.string() for c in ("Landmarks", "Left Lung", "Right Lung", "Heart", *NODE_STD_COLUMNS, *CLAVICLE_COLUMNS)}
    types.update({"Dice RCA (Mean)": pa.float64(), "Dice RCA (Max)": pa.float64(), "Height": pa.int64(), "Width": pa.int64()})
    types.update({c: pa.float64() for c in SUMMARY_COLUMNS + RCA_ORGAN_COLUMNS + ESTIMATE_COLUMNS})
    types.update({c: pa.string() for c in FLAG_COLUMNS})
    types.update(arrow_types())
    types.update({c: pa.list_(pa.float32()) for c in ARRAY_COLUMNS})
    fields = [(id_column, pa.string())] + [(c, types[c]) for c in parquet_columns(id_column, clavicles)[1:-2]]
    fields += [("_index", pa.int64()), ("_path", pa.string()), ("_error", pa.string()), ("_reason", pa.string())]
    return pa.schema(fields)


class TableWriter:
    """Stream segmented rows into a CheXmask CSV or Parquet file.

    Parameters
    ----------
    path : path-like
        The file to write (the caller renames it into place).
    kind : {"csv", "parquet"}
    id_column : str
    model : (str, str)
        Weights name and SHA256, the Parquet ``Model``/``Model SHA256`` columns.

    Notes
    -----
    The CSV has ``"\\n"`` line ends, minimal quoting and empty fields for missing
    values, as :func:`chexmask.formats.tables.write_table` writes (so reading it with
    ``read_table`` and writing it back gives the same bytes). The Parquet file gets one
    row group per :meth:`write`.
    """

    def __init__(self, path: str | os.PathLike[str], kind: str, id_column: str, model: tuple[str, str], clavicles: bool = False) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        if kind not in ("csv", "parquet"):
            raise ValueError(f"kind must be 'csv' or 'parquet', got {kind!r}")
        self.kind, self.model = kind, model
        if kind == "csv":
            self.columns = csv_columns(id_column, clavicles)
            self._fh = open(path, "w", newline="", encoding="utf-8")
            write_csv(pd.DataFrame(columns=self.columns), self._fh)
        else:
            self.columns = parquet_columns(id_column, clavicles)[:-2]
            schema = part_schema(id_column, clavicles)
            fields = [schema.field(c) for c in self.columns] + [pa.field(c, pa.string()) for c in MODEL_COLUMNS]
            self._pq = pq.ParquetWriter(path, pa.schema(fields))

    def write(self, table) -> int:
        """Append the rows of an Arrow table with the :func:`part_schema` columns; return their count."""
        import pyarrow as pa

        table = table.select(self.columns)
        if self.kind == "csv":
            # object columns: each value written as Python gives it (ints stay ints beside missing values)
            write_csv(pd.DataFrame(table.to_pylist(), columns=self.columns, dtype=object), self._fh, header=False)
        else:
            n = table.num_rows
            for column, value in zip(MODEL_COLUMNS, self.model):
                table = table.append_column(column, pa.array([value] * n, pa.string()))
            self._pq.write_table(table)
        return table.num_rows

    def close(self) -> None:
        """Finish the file."""
        (self._fh if self.kind == "csv" else self._pq).close()


class PartStore:
    """The pipeline's ``<OUT>.parts/`` folder: a manifest and one Parquet file per finished chunk.

    ``fingerprint`` identifies the run; a folder holding another run's manifest is refused.
    ``clavicles`` adds :data:`CLAVICLE_COLUMNS`.
    """

    def __init__(self, folder: Path, fingerprint: dict, id_column: str, clavicles: bool = False) -> None:
        self.dir, self.fingerprint, self.id_column, self.clavicles = folder, fingerprint, id_column, clavicles
        self.schema = part_schema(id_column, clavicles)

    def open(self) -> set[int]:
        """Create or check the folder; return the chunks already written."""
        manifest = self.dir / "manifest.json"
        if manifest.exists():
            stored = json.loads(manifest.read_text())
            if stored != self.fingerprint:
                changed = sorted(k for k in set(stored) | set(self.fingerprint) if stored.get(k) != self.fingerprint.get(k))
                raise ChexmaskError(
                    f"{self.dir} holds a partial run with other settings (differs in: {', '.join(changed)}); "
                    "rerun with the same inputs and options to resume it, or delete the folder to start over"
                )
        self.dir.mkdir(parents=True, exist_ok=True)
        for stale in self.dir.glob(".*.tmp"):
            stale.unlink()
        atomic_write(manifest, lambda p: p.write_text(json.dumps(self.fingerprint, indent=1, sort_keys=True)))
        return {int(p.name[5:-8]) for p in self.dir.glob("part-*.parquet")}

    def path(self, chunk: int) -> Path:
        """The part file of a chunk."""
        return self.dir / f"part-{chunk:06d}.parquet"

    def write(self, chunk: int, records: list[dict]) -> None:
        """Write a chunk's rows (success and failure records), sorted by input position, atomically."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        table = pa.Table.from_pylist(sorted(records, key=lambda r: r["_index"]), schema=self.schema)
        atomic_write(self.path(chunk), lambda p: pq.write_table(table, p))

    def read(self, chunk: int):
        """A chunk's rows as an Arrow table with :func:`part_schema`."""
        import pyarrow.parquet as pq

        return pq.read_table(self.path(chunk), schema=self.schema)


def assemble(parts: PartStore, n_chunks: int, output: Path, model: tuple[str, str]) -> tuple[int, list[list[str]]]:
    """Concatenate parts ``0 .. n_chunks - 1`` into the output (CSV or Parquet, by :func:`~chexmask.formats.table_paths.table_format`), atomically.

    Returns the number of rows written and the failures ``[path, error, reason]``, in
    input order.
    """
    import pyarrow.compute as pc

    failures: list[list[str]] = []
    n_ok = 0

    def write(tmp: Path) -> None:
        nonlocal n_ok
        writer = TableWriter(tmp, table_format(output), parts.id_column, model, parts.clavicles)
        try:
            for chunk in range(n_chunks):
                table = parts.read(chunk)
                failed = pc.invert(pc.is_null(table["_error"]))
                bad = table.filter(failed).select(["_path", "_error", "_reason"])
                failures.extend(list(r.values()) for r in bad.to_pylist())
                n_ok += writer.write(table.filter(pc.invert(failed)))
        finally:
            writer.close()

    atomic_write(output, write)
    return n_ok, failures
