"""``chexmask build``: index a public dataset, then run the segment pipeline on it."""

from __future__ import annotations

import os

from chexmask.formats.table_paths import table_stem
from chexmask.formats.tables import write_table
from chexmask.sources._base import get_source

__all__ = ["build_source"]


def build_source(source: str, root: str | os.PathLike[str], output: str | os.PathLike[str], **segment_options):
    """Segment the frontal images of a public dataset into its CheXmask table.

    Parameters
    ----------
    source : str
        One of :data:`chexmask.sources.SOURCES` (``chestxray8``, ``chexpert``,
        ``mimic-cxr-jpg``, ``padchest``, ``vindr-cxr``).
    root : path-like
        The dataset's folder, as downloaded (images may sit anywhere below it).
    output : path-like
        ``.csv`` or ``.parquet``; the id column is the source's own. The index with
        the kept metadata (sex, age, view...) is written next to it as
        ``<stem>.index.csv``, for ``chexmask evaluate --group-by``.
    **segment_options
        Passed to :func:`chexmask.inference.pipeline.segment_dataset` (weights,
        uncertainty, batch size, workers, rca, shard...). Resumable like ``segment``.

    Returns
    -------
    chexmask.inference.pipeline.RunSummary
    """
    from chexmask.inference.pipeline import check_output, segment_dataset

    spec = get_source(source)
    out = check_output(output)
    index = spec(root)
    stem = table_stem(out)
    kept = index.drop(columns=["path"]).rename(columns={"id": spec.id_column}, errors="ignore")
    write_table(kept.loc[:, ~kept.columns.duplicated()], out.with_name(stem + ".index.csv"))
    pairs = list(zip(index["id"].astype(str), index["path"]))
    return segment_dataset([], out, id_column=spec.id_column, pairs=pairs, command="build", **segment_options)


