"""Landmark strings of CheXmask tables: parse and format, never ``eval``.

The published CSVs hold the 120 nodes (right lung 44, left lung 50, heart 26) as a
flat string ``"x1,y1,x2,y2,..."``; the PhysioNet documentation describes the same
column as a JSON array of ``[x, y]`` pairs. Both are read; the flat form is written.
Coordinates are (x, y) = (col, row) pixels of the original image. The per-node standard
deviations of CheXmask-U's ``Landmarks (Std)`` column are the same flat form, written
with two decimals (:func:`parse_node_std`, :func:`format_node_std`). Which column of a
table holds what is :mod:`chexmask.formats.landmark_columns`.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np

from chexmask._errors import InputError
from chexmask.anatomy import N_NODES

__all__ = ["format_landmarks", "format_node_std", "node_uncertainty", "parse_landmarks", "parse_node_radius", "parse_node_std"]

# A decimal number, or nan (an organ that was not annotated).
_NUMBER = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|nan", re.I)


def _flat_numbers(text: str, source: str, what: str = "landmark") -> list[float]:
    tokens = [t.strip() for t in text.split(",")]
    if tokens and tokens[-1] == "":  # tolerate one trailing comma
        tokens.pop()
    for i, token in enumerate(tokens):
        if not _NUMBER.fullmatch(token):
            raise InputError(source, f"{what} value {i} is not a number: {token[:40]!r}")
    return [float(t) for t in tokens]


def _json_numbers(text: str, source: str, what: str = "landmark") -> list[float]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(source, f"{what}s look like JSON but do not parse: {err}") from err
    if not isinstance(data, list):
        raise InputError(source, f"{what}s JSON must be a list, got {type(data).__name__}")
    if all(isinstance(p, list) for p in data):  # [[x, y], ...]
        for i, p in enumerate(data):
            if len(p) != 2:
                raise InputError(source, f"{what} {i} has {len(p)} values, expected [x, y]")
        values = [v for p in data for v in p]
    else:  # [x1, y1, x2, y2, ...]
        values = data
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InputError(source, f"{what} value {i} is not a number: {v!r}")
    return [float(v) for v in values]


def _numbers(value: object, source: str, what: str) -> list[float]:
    """The numbers of a cell: a flat or JSON string, or a list/array (a Parquet list cell)."""
    if isinstance(value, (list, tuple, np.ndarray)):
        try:
            return np.asarray(value, dtype=np.float64).ravel().tolist()
        except (TypeError, ValueError):
            raise InputError(source, f"{what}s are not all numbers") from None
    if not isinstance(value, str):
        raise InputError(source, f"{what}s must be a string, got {type(value).__name__}")
    stripped = value.strip()
    if not stripped:
        raise InputError(source, f"{what}s string is empty")
    if stripped.startswith("["):
        return _json_numbers(stripped, source, what)
    return _flat_numbers(stripped, source, what)


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
    return _points(_numbers(text, source, "landmark"), source, n_points, "landmark")


def _points(values: list[float], source: str, n_points: int | tuple[int, ...], what: str) -> np.ndarray:
    counts = (n_points,) if isinstance(n_points, int) else tuple(n_points)
    if len(values) not in [2 * n for n in counts]:
        expected = " or ".join(f"{2 * n}" for n in counts)
        raise InputError(
            source,
            f"expected {expected} numbers ({' or '.join(map(str, counts))} (x, y) points), got {len(values)}",
        )
    points = np.array(values, dtype=np.float64).reshape(-1, 2)
    if np.isinf(points).any():
        i = int(np.flatnonzero(np.isinf(points).any(axis=1))[0])
        raise InputError(source, f"{what} {i} is infinite")
    return points


def parse_node_std(value: object, *, source: str = "std string", n_points: int | tuple[int, ...] = N_NODES) -> np.ndarray:
    """Parse per-node standard deviations (a ``Landmarks (Std)`` cell) into ``(n_points, 2)``.

    Parameters
    ----------
    value : str or array_like
        The flat form ``"sx1,sy1,sx2,sy2,..."`` (CheXmask-U and ``chexmask segment``
        write it with two decimals) or a JSON array, as :func:`parse_landmarks` reads;
        or a list/array of numbers (a Parquet list cell).
    source : str, optional
        What the value is, for error messages (``"t.csv row 3, column Landmarks (Std)"``).
    n_points : int or tuple of int, optional
        Expected number of nodes (default 120), or the numbers accepted.

    Returns
    -------
    (n_points, 2) float64 ndarray
        ``(std_x, std_y)`` per node, pixels of the row's frame; NaN is kept.

    Raises
    ------
    InputError
        If the value is empty, holds text that is not a number, holds other than
        ``2 * n_points`` values, or a value is infinite or negative.

    Examples
    --------
    >>> parse_node_std("0.50,1.25,2.00,0.00", n_points=2)
    array([[0.5 , 1.25],
           [2.  , 0.  ]])
    """
    std = _points(_numbers(value, source, "std"), source, n_points, "std")
    negative = std < 0
    if negative.any():
        i = int(np.flatnonzero(negative.any(axis=1))[0])
        raise InputError(source, f"std {i} is negative: {std[i].tolist()}")
    return std


def parse_node_radius(value: object, *, source: str = "value") -> np.ndarray:
    """Parse a ``Node Error Radius`` cell: one radius per CheXmask node.

    Parameters
    ----------
    value : str or sequence of float
        A Parquet list cell of ``chexmask segment``'s output, or its CSV text (a JSON
        list, as ``chexmask convert`` writes it).
    source : str, optional
        What the value is, for error messages.

    Returns
    -------
    (120,) float64 ndarray
        Pixels of the row's frame.

    Raises
    ------
    InputError
        Text that is not a number, other than 120 values, or a negative or infinite one.

    Examples
    --------
    >>> parse_node_radius("[" + ",".join(["12.5"] * 120) + "]")[:2]
    array([12.5, 12.5])
    """
    radius = np.asarray(_numbers(value, source, "radius"), np.float64)
    if radius.size != N_NODES:
        raise InputError(source, f"expected {N_NODES} radii (one per node), got {radius.size}")
    bad = ~np.isfinite(radius) | (radius < 0)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(source, f"radius {i} is {radius[i]}; radii are finite and >= 0")
    return radius


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
    pts = _checked(points_xy, "points_xy")
    return ",".join(_format_value(v) for v in pts.ravel().tolist())


def _checked(values, name: str) -> np.ndarray:
    pts = np.asarray(values, dtype=np.float64)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {pts.shape}")
    if np.isinf(pts).any():
        raise ValueError(f"{name} holds infinite values")
    return pts


def format_node_std(std_xy: np.ndarray) -> str:
    """Format per-node standard deviations as CheXmask-U's ``Landmarks (Std)``: ``"sx1,sy1,..."``.

    Parameters
    ----------
    std_xy : (N, 2) array_like of float
        ``(std_x, std_y)`` per node, pixels of the original frame.

    Returns
    -------
    str
        Every value with exactly two decimals (``"1.50"``), as the CheXmask-U release
        writes them; NaN is written ``"nan"``.

    Raises
    ------
    ValueError
        If ``std_xy`` is not (N, 2) or holds infinities.

    Examples
    --------
    >>> format_node_std([[1.5, 0.254], [2, 0.0]])
    '1.50,0.25,2.00,0.00'
    """
    std = _checked(std_xy, "std_xy")
    return ",".join("nan" if math.isnan(v) else f"{v:.2f}" for v in std.ravel().tolist())


def node_uncertainty(std_xy: np.ndarray) -> np.ndarray:
    """chexmask's per-node uncertainty: ``sqrt(std_x^2 + std_y^2)``, same unit as ``std_xy``.

    What the ``Uncertainty`` columns average and overlays colour nodes by. CheXmask-U's
    per-node uncertainty is ``(std_x + std_y) / 2`` of the same standard deviations, which
    lies between ``u / 2`` and ``u / sqrt(2)`` of this ``u`` (equal to ``u / sqrt(2)`` when
    ``std_x == std_y``).

    Parameters
    ----------
    std_xy : (N, 2) array_like of float

    Returns
    -------
    (N,) float64 ndarray

    Examples
    --------
    >>> node_uncertainty([[3.0, 4.0]])
    array([5.])
    """
    std = np.asarray(std_xy, dtype=np.float64)
    return np.sqrt((std**2).sum(-1))
