"""Landmark strings of CheXmask tables: parse and format, never ``eval``.

The published CSVs hold the 120 nodes (right lung 44, left lung 50, heart 26) as a
flat string ``"x1,y1,x2,y2,..."``; the PhysioNet documentation describes the same
column as a JSON array of ``[x, y]`` pairs. Both are read; the flat form is written.
Coordinates are (x, y) = (col, row) pixels of the original image.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from chexmask._errors import InputError
from chexmask.anatomy import N_NODES

__all__ = ["parse_landmarks", "format_landmarks"]

# A decimal number, or nan (an organ that was not annotated).
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan", re.I)


def _flat_values(text: str, source: str) -> list[float]:
    tokens = [t.strip() for t in text.split(",")]
    if tokens and tokens[-1] == "":  # tolerate one trailing comma
        tokens.pop()
    for i, token in enumerate(tokens):
        if not _NUMBER.fullmatch(token):
            raise InputError(source, f"landmark value {i} is not a number: {token[:40]!r}")
    return [float(t) for t in tokens]


def _json_values(text: str, source: str) -> list[float]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(source, f"landmarks look like JSON but do not parse: {err}") from err
    if not isinstance(data, list):
        raise InputError(source, f"landmarks JSON must be a list, got {type(data).__name__}")
    if all(isinstance(p, list) for p in data):  # [[x, y], ...]
        for i, p in enumerate(data):
            if len(p) != 2:
                raise InputError(source, f"landmark {i} has {len(p)} values, expected [x, y]")
        values = [v for p in data for v in p]
    else:  # [x1, y1, x2, y2, ...]
        values = data
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InputError(source, f"landmark value {i} is not a number: {v!r}")
    return [float(v) for v in values]


def parse_landmarks(
    text: str, *, source: str = "landmarks string", n_points: int = N_NODES
) -> np.ndarray:
    """Parse a CheXmask landmarks string into an ``(n_points, 2)`` array.

    Parameters
    ----------
    text : str
        Either the flat form ``"x1,y1,x2,y2,..."`` or a JSON array of ``[x, y]``
        pairs (``"[[x1, y1], [x2, y2], ...]"``); a flat JSON array is also accepted.
        ``nan`` marks an organ that was not annotated.
    source : str, optional
        What the string is, for error messages (e.g. ``"file.csv row 3"``).
    n_points : int, optional
        Expected number of points (default 120: right lung, left lung, heart).

    Returns
    -------
    (n_points, 2) float64 ndarray
        (x, y) = (col, row) coordinates; note that this is not skimage's (row, col).

    Raises
    ------
    InputError
        If ``text`` is not a string, holds a token that is not a number, is invalid
        JSON, or holds other than ``2 * n_points`` values. Infinite values are
        rejected; NaN is kept.

    Examples
    --------
    >>> parse_landmarks("1,2,3,4", n_points=2)
    array([[1., 2.],
           [3., 4.]])
    >>> parse_landmarks("[[1, 2], [3.5, 4]]", n_points=2)
    array([[1. , 2. ],
           [3.5, 4. ]])
    """
    if not isinstance(text, str):
        raise InputError(source, f"landmarks must be a string, got {type(text).__name__}")
    stripped = text.strip()
    if not stripped:
        raise InputError(source, "landmarks string is empty")
    if stripped.startswith("["):
        values = _json_values(stripped, source)
    else:
        values = _flat_values(stripped, source)
    if len(values) != 2 * n_points:
        raise InputError(
            source,
            f"expected {2 * n_points} numbers ({n_points} (x, y) points), got {len(values)}",
        )
    points = np.array(values, dtype=np.float64).reshape(n_points, 2)
    if np.isinf(points).any():
        i = int(np.flatnonzero(np.isinf(points).any(axis=1))[0])
        raise InputError(source, f"landmark {i} is infinite")
    return points


def _format_value(v: float) -> str:
    if math.isnan(v):
        return "nan"
    r = round(v, 2)
    if r == int(r):
        return str(int(r))
    return repr(r)


def format_landmarks(points_xy: np.ndarray) -> str:
    """Format points as the flat CheXmask string ``"x1,y1,x2,y2,..."``.

    Parameters
    ----------
    points_xy : (N, 2) array_like of float
        (x, y) = (col, row) coordinates.

    Returns
    -------
    str
        Integral values are written as integers (``"381"``, not ``"381.0"``), as in
        the published database; other values are rounded to 2 decimals and written
        in their shortest form (``"12.5"``); NaN is written ``"nan"``. Parsing the
        result with :func:`parse_landmarks` gives the values back (rounded).

    Raises
    ------
    ValueError
        If ``points_xy`` is not (N, 2) or holds infinities.

    Examples
    --------
    >>> format_landmarks([[381.0, 223.0], [12.5, 7.256]])
    '381,223,12.5,7.26'
    """
    pts = np.asarray(points_xy, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"points_xy must have shape (N, 2), got {pts.shape}")
    if np.isinf(pts).any():
        raise ValueError("points_xy holds infinite values")
    return ",".join(_format_value(v) for v in pts.ravel().tolist())
