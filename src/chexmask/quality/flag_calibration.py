"""Calibrating the Quality Flag threshold on clean in-distribution images.

The rule itself is :mod:`chexmask.flag`; this module derives its threshold from the
uncertainties of the val splits the model was selected on (``chexmask experiment
threshold``, docs/uncertainty.md "Quality flag").
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from chexmask.flag import normalised_uncertainty

__all__ = ["calibrate_threshold", "source_uncertainties"]


def calibrate_threshold(uncertainties_px: np.ndarray, quantile: float = 0.95) -> float:
    """A flag threshold from in-distribution uncertainties: their `quantile`, rounded up.

    Parameters
    ----------
    uncertainties_px : (N,) array_like
        Mean node uncertainties (1024 frame) of clean in-distribution images.
    quantile : float, optional
        Fraction of such images that should pass (the false-alarm rate is ``1 - quantile``).

    Returns
    -------
    float
        The quantile rounded up to 0.5 px.

    Raises
    ------
    ValueError
        If there are no finite values or `quantile` is outside (0, 1).

    Examples
    --------
    >>> calibrate_threshold([1.0, 2.0, 3.0, 4.0], quantile=0.5)
    2.5
    """
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"quantile must be in (0, 1), got {quantile}")
    u = np.asarray(uncertainties_px, dtype=np.float64).ravel()
    u = u[np.isfinite(u)]
    if u.size == 0:
        raise ValueError("calibrate_threshold needs at least one finite uncertainty")
    return float(math.ceil(np.quantile(u, quantile) * 2.0) / 2.0)


def source_uncertainties(segmenter, folders, split: str = "val"):
    """Mean node uncertainty (1024 frame) of every image of a split of each JSRT-layout source.

    This is what the flag threshold is calibrated on (``chexmask experiment threshold``):
    clean images of the sources the model was selected on.

    Parameters
    ----------
    segmenter : chexmask.Segmenter
        With ``uncertainty > 0`` latent samples.
    folders : sequence of path
        JSRT-layout folders (images/, splits/).
    split : str
        The split to use (``val`` for calibration; never the test split).

    Returns
    -------
    pandas.DataFrame
        Columns ``source``, ``image_id``, ``uncertainty_px``.
    """
    import pandas as pd

    from chexmask.model.report import segment_split

    if segmenter.uncertainty < 1:
        raise ValueError("calibrating the flag needs latent samples (uncertainty >= 1)")
    rows = [{"source": folder.resolve().name, "image_id": image_id,
             "uncertainty_px": normalised_uncertainty(seg.uncertainty, seg.height, seg.width)}
            for folder in map(Path, folders) for image_id, _, seg in segment_split(segmenter, folder, split)]
    return pd.DataFrame(rows, columns=["source", "image_id", "uncertainty_px"])
