"""Which column of a CheXmask table holds the landmarks, and which the per-node standard deviations.

Two layouts name the columns differently. CheXmask (and ``chexmask segment``) calls the
120 nodes ``Landmarks``; the CheXmask-U release calls them ``Landmarks (Mean)`` (the mean
of the decoded latent samples, rounded to whole pixels) and adds ``Landmarks (Std)``: the
standard deviation of x and of y of each node over those samples, flat ``"sx1,sy1,..."``
with two decimals, in pixels of the row's ``Height`` x ``Width`` frame. ``chexmask segment``
with latent sampling writes ``Landmarks (Std)`` the same way, so rows of both read alike.

This module is the one place that resolves those names: every reader of tables (the
table reader, evaluation, the dataset records, Label Studio export) asks it
(:func:`landmarks_column`, :func:`row_landmarks`, :func:`node_std_column`,
:func:`row_node_std`) instead of naming a column itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pandas as pd

from chexmask.anatomy import N_NODES, N_NODES_ALL
from chexmask.formats.landmarks import parse_landmarks, parse_node_radius, parse_node_std

__all__ = [
    "LANDMARKS_COLUMN",
    "LANDMARK_COLUMNS",
    "MEAN_LANDMARKS_COLUMN",
    "NODE_STD_COLUMNS",
    "RADIUS_COLUMN",
    "STD_COLUMN",
    "landmarks_column",
    "node_std_column",
    "row_landmarks",
    "row_node_radius",
    "row_node_std",
]

#: The landmarks column of CheXmask tables and of ``chexmask segment``'s output.
LANDMARKS_COLUMN: str = "Landmarks"
#: The landmarks column of CheXmask-U tables (the mean nodes, whole pixels).
MEAN_LANDMARKS_COLUMN: str = "Landmarks (Mean)"
#: Per-node standard deviations of x and y, flat ``"sx1,sy1,..."``, two decimals, pixels of
#: the row's frame: CheXmask-U's column, which ``chexmask segment`` writes too.
STD_COLUMN: str = "Landmarks (Std)"
#: Columns that can hold the 120 nodes, in the order they are looked for.
LANDMARK_COLUMNS: tuple[str, ...] = (LANDMARKS_COLUMN, MEAN_LANDMARKS_COLUMN)
#: Columns that can hold the per-node standard deviations, in the order they are looked for:
#: ``Landmarks (Std)``, then ``Node Std`` (float32 lists of ``chexmask segment``'s Parquet output,
#: the same values unrounded, 120 nodes or 166 with the clavicles; tables written before
#: ``Landmarks (Std)`` existed have only this one).
NODE_STD_COLUMNS: tuple[str, ...] = (STD_COLUMN, "Node Std")
#: Per-node Node Error Radius (pixels of the row's frame): a float list in ``chexmask segment``'s
#: Parquet output, its JSON text after ``chexmask convert`` to CSV.
RADIUS_COLUMN: str = "Node Error Radius"


def landmarks_column(columns: Iterable[object]) -> str | None:
    """The column of a table that holds its 120 nodes, or ``None`` if it has none.

    Parameters
    ----------
    columns : iterable
        The table's column names.

    Returns
    -------
    str or None
        The first of :data:`LANDMARK_COLUMNS` present: ``Landmarks`` (CheXmask, ``chexmask
        segment``), else ``Landmarks (Mean)`` (CheXmask-U).

    Examples
    --------
    >>> landmarks_column(["Image Index", "Landmarks (Mean)", "Landmarks (Std)"])
    'Landmarks (Mean)'
    """
    names = {str(c) for c in columns}
    return next((c for c in LANDMARK_COLUMNS if c in names), None)


def node_std_column(columns: Iterable[object]) -> str | None:
    """The column of a table that holds its per-node standard deviations, or ``None``.

    Returns
    -------
    str or None
        The first of :data:`NODE_STD_COLUMNS` present: ``Landmarks (Std)``, else ``Node Std``.

    Examples
    --------
    >>> node_std_column(["Landmarks", "Heart"]) is None
    True
    """
    names = {str(c) for c in columns}
    return next((c for c in NODE_STD_COLUMNS if c in names), None)


def _blank(value: object) -> bool:
    """No value: None, NaN, pandas.NA, an empty or blank string, an empty list."""
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, np.ndarray)):
        return len(value) == 0
    return value is None or bool(pd.isna(value))


def row_landmarks(row: Mapping[str, object], *, source: str = "row") -> np.ndarray | None:
    """The 120 nodes of a table row, from whichever column holds them.

    Parameters
    ----------
    row : mapping
        Column -> value of one row.
    source : str, optional
        What the row is (``"t.csv row 3"``); errors name it and the column.

    Returns
    -------
    (120, 2) float64 ndarray or None
        (x, y) = (col, row) original pixels; ``None`` when the row has no landmarks
        column (:func:`landmarks_column`) or its value is empty.

    Raises
    ------
    InputError
        If the value does not parse (:func:`parse_landmarks`).

    Examples
    --------
    >>> row_landmarks({"Landmarks (Mean)": ",".join(["381,223"] * 120)}).shape
    (120, 2)
    """
    column = landmarks_column(row.keys())
    if column is None or _blank(row[column]):
        return None
    return parse_landmarks(row[column] if isinstance(row[column], str) else str(row[column]),
                           source=f"{source}, column {column}")


def row_node_std(row: Mapping[str, object], *, source: str = "row") -> np.ndarray | None:
    """The per-node standard deviations ``(std_x, std_y)`` of a table row, or ``None``.

    Parameters
    ----------
    row : mapping
        Column -> value of one row.
    source : str, optional
        What the row is (``"t.csv row 3"``); errors name it and the column.

    Returns
    -------
    (120, 2) float64 ndarray or None
        Pixels of the row's ``Height`` x ``Width`` frame, the CheXmask nodes only, from the
        first column of :data:`NODE_STD_COLUMNS` the row has (``Landmarks (Std)``, else
        ``Node Std``, whose clavicle nodes are dropped); ``None`` when it has none or the
        value is empty (no latent sampling).

    Raises
    ------
    InputError
        If the value is malformed (:func:`parse_node_std`: text, a wrong count, a
        negative or infinite value); the message names the row and the column.

    Examples
    --------
    >>> row_node_std({"Landmarks (Std)": ""}) is None
    True
    """
    column = node_std_column(row.keys())
    if column is None or _blank(row[column]):
        return None
    where = f"{source}, column {column}"
    if column == STD_COLUMN:
        return parse_node_std(row[column], source=where)
    return parse_node_std(row[column], source=where, n_points=(N_NODES, N_NODES_ALL))[:N_NODES]


def row_node_radius(row: Mapping[str, object], *, source: str = "row") -> np.ndarray | None:
    """The ``Node Error Radius`` of a table row, ``(120,)`` pixels of its frame, or ``None`` without one.

    Raises
    ------
    InputError
        If the value is malformed (:func:`~chexmask.formats.landmarks.parse_node_radius`);
        the message names the row and the column.

    Examples
    --------
    >>> row_node_radius({"Landmarks": "1,2"}) is None
    True
    """
    if RADIUS_COLUMN not in row or _blank(row[RADIUS_COLUMN]):
        return None
    return parse_node_radius(row[RADIUS_COLUMN], source=f"{source}, column {RADIUS_COLUMN}")
