"""Run-length encoding of masks, byte-compatible with the CheXmask database.

Format: ``"start length start length ..."``, single spaces, starts 1-based, pixels
in row-major (C) order over the ``height x width`` image, runs of foreground
pixels only, in increasing order. An empty mask is the empty string. Decoding then
re-encoding every mask of the published CheXmask rows gives the identical string.

References
----------
Gaggion et al., "CheXmask: a large-scale dataset of anatomical segmentation masks
for multi-center chest x-ray images", Scientific Data 2024,
doi:10.1038/s41597-024-03358-1.
"""

from __future__ import annotations

import re

import numpy as np

from chexmask._errors import RLEError

__all__ = ["encode_rle", "decode_rle", "rle_runs", "runs_to_rle"]

_WELL_FORMED = re.compile(r"\s*(?:[0-9]+(?:\s+[0-9]+)*)?\s*")
_TOKEN = re.compile(r"[0-9]+")
#: Tokens longer than this cannot be a pixel index of any image numpy can hold.
_MAX_DIGITS = 18


def encode_rle(mask: np.ndarray) -> str:
    """Encode a 2-D mask as a CheXmask run-length string.

    Parameters
    ----------
    mask : (H, W) array_like
        Foreground is every non-zero pixel (255 in a uint8 mask, True in a bool one).

    Returns
    -------
    str
        ``"start length start length ..."`` with 1-based starts in row-major order;
        ``""`` for an empty mask.

    Raises
    ------
    ValueError
        If ``mask`` is not 2-D.

    Examples
    --------
    >>> import numpy as np
    >>> encode_rle(np.array([[0, 255, 255, 0], [0, 0, 0, 255], [255, 0, 0, 0]]))
    '2 2 8 2'
    >>> encode_rle(np.zeros((3, 4), dtype=np.uint8))
    ''
    """
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"mask must be 2-D (H, W), got shape {mask.shape}")
    flat = np.zeros(mask.size + 2, dtype=bool)
    flat[1:-1] = mask.reshape(-1) != 0
    # Positions (0-based pixel index) where a run starts or ends (exclusive).
    edges = np.flatnonzero(flat[1:] != flat[:-1]).reshape(-1, 2)
    return runs_to_rle(edges[:, 0], edges[:, 1] - edges[:, 0])


def runs_to_rle(starts: np.ndarray, lengths: np.ndarray) -> str:
    """The CheXmask string of runs given by 0-based row-major ``starts`` and their ``lengths``.

    The runs must be in increasing order and separated by gaps (as
    :func:`chexmask.masks.fill.polygon_runs` returns them).

    Examples
    --------
    >>> import numpy as np
    >>> runs_to_rle(np.array([1, 7]), np.array([2, 2]))
    '2 2 8 2'
    """
    pairs = np.stack([np.asarray(starts, dtype=np.int64) + 1, np.asarray(lengths, dtype=np.int64)], axis=1)
    return " ".join(map(str, pairs.ravel().tolist()))


def decode_rle(rle: str, height: int, width: int, *, source: str = "RLE string") -> np.ndarray:
    """Decode a CheXmask run-length string into a uint8 {0, 255} mask.

    Parameters
    ----------
    rle : str
        ``"start length start length ..."`` (1-based starts, row-major). Any
        whitespace separates values; ``""`` is an empty mask. Runs must be in
        increasing order and must not overlap (touching runs are accepted; the
        encoder merges them).
    height, width : int
        The mask's shape, the image size the string was encoded over.
    source : str, optional
        What the string is, for error messages (e.g. ``"file.csv row 12, column
        Heart"``).

    Returns
    -------
    (height, width) uint8 ndarray
        255 inside the runs, 0 elsewhere (the mask contract of the package; use
        ``mask > 0`` for a boolean mask and ``np.count_nonzero(mask)`` for the area).

    Raises
    ------
    RLEError
        If ``rle`` is not a string, holds a non-integer token or an odd number of
        values, or has a start or length below 1, a run beyond ``height * width``
        pixels, or runs out of order or overlapping. The message starts with
        ``source``.
    ValueError
        If ``height`` or ``width`` is not a positive integer.

    Examples
    --------
    >>> decode_rle("2 2 8 2", 3, 4)
    array([[  0, 255, 255,   0],
           [  0,   0,   0, 255],
           [255,   0,   0,   0]], dtype=uint8)
    """
    starts, lengths = rle_runs(rle, height, width, source=source)
    n_pixels = int(height) * int(width)
    if not len(starts):
        return np.zeros((height, width), dtype=np.uint8)
    # Alternate background gaps and foreground runs, then expand in one repeat.
    ends = starts + lengths  # 0-based, exclusive
    gaps = starts - np.concatenate(([0], ends[:-1]))
    counts = np.empty(2 * len(starts) + 1, dtype=np.int64)
    counts[0:-1:2] = gaps
    counts[1::2] = lengths
    counts[-1] = n_pixels - ends[-1]
    values = np.zeros(len(counts), dtype=np.uint8)
    values[1::2] = 255
    return np.repeat(values, counts).reshape(height, width)


def rle_runs(rle: str, height: int, width: int, *, source: str = "RLE string") -> tuple[np.ndarray, np.ndarray]:
    """The runs of a CheXmask string, checked as :func:`decode_rle` checks them, without painting a mask.

    Returns
    -------
    starts, lengths : (K,) int64 ndarrays
        0-based row-major starts and lengths, in increasing order (touching runs are kept
        apart, as written); what :func:`chexmask.measures.measure_runs` takes.

    Raises
    ------
    RLEError, ValueError
        As :func:`decode_rle`.

    Examples
    --------
    >>> starts, lengths = rle_runs("2 2 8 2", 3, 4)
    >>> starts.tolist(), lengths.tolist()
    ([1, 7], [2, 2])
    """
    for name, value in (("height", height), ("width", width)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    n_pixels = int(height) * int(width)
    if not isinstance(rle, str):
        raise RLEError(source, f"expected a string, got {type(rle).__name__}")
    if not _WELL_FORMED.fullmatch(rle):
        bad = next(t for t in rle.split() if not _TOKEN.fullmatch(t))
        raise RLEError(source, f"non-integer token {bad[:40]!r}")
    tokens = rle.split()
    if len(tokens) % 2:
        raise RLEError(
            source, f"odd number of values ({len(tokens)}); expected 'start length' pairs"
        )
    if not tokens:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    too_long = next((t for t in tokens if len(t) > _MAX_DIGITS), None)
    if too_long is not None:
        raise RLEError(source, f"value {too_long[:40]} is beyond any image size")
    runs = np.array(tokens, dtype=np.int64).reshape(-1, 2)
    starts, lengths = runs[:, 0], runs[:, 1]
    ends = starts + lengths - 1  # 1-based, inclusive

    def first(bad: np.ndarray) -> int:
        return int(np.flatnonzero(bad)[0])

    if (starts < 1).any():
        i = first(starts < 1)
        raise RLEError(source, f"run {i} starts at {starts[i]}; starts are 1-based")
    if (lengths < 1).any():
        i = first(lengths < 1)
        raise RLEError(source, f"run {i} (start {starts[i]}) has length {lengths[i]} < 1")
    if (ends > n_pixels).any():
        i = first(ends > n_pixels)
        raise RLEError(
            source,
            f"run {i} (start {starts[i]}, length {lengths[i]}) ends at pixel {ends[i]}, "
            f"beyond {height}x{width} = {n_pixels} pixels",
        )
    if (starts[1:] <= ends[:-1]).any():
        i = first(starts[1:] <= ends[:-1]) + 1
        raise RLEError(
            source,
            f"run {i} (start {starts[i]}) overlaps or precedes run {i - 1} "
            f"(start {starts[i - 1]}, length {lengths[i - 1]}); runs must increase",
        )
    return starts - 1, lengths
