"""The per-image Quality Flag: a rule on the predictive uncertainty and, when present, RCA.

This is a postprocess of one result (like :mod:`chexmask.measures`): a pure function of
values the row already holds, so the row builder, the demo and the overlays apply the
same rule without depending on the quality layer. How the threshold is calibrated on
val images is :mod:`chexmask.quality.flag_calibration`.

The flag is a triage aid: ``"review"`` means "look at this segmentation", not "this
segmentation is wrong". It combines two signals:

- the mean node uncertainty (CheXmask-U predictive std, pixels) rescaled to a
  1024-pixel frame, ``u * 1024 / max(H, W)``, so one threshold serves every image
  size; above :data:`DEFAULT_THRESHOLD_PX` the image is flagged;
- the reverse classification accuracy ``Dice RCA (Mean)`` when it was computed;
  below :data:`DEFAULT_MIN_RCA` (0.7, the reference's quality threshold) the image
  is flagged.

How the threshold was chosen, and how to recalibrate it for other weights, is in
``docs/uncertainty.md``.

References
----------
Gaggion et al., "CheXmask: a large-scale dataset of anatomical segmentation masks for
multi-center chest x-ray images", Scientific Data 11, 511 (2024).
https://doi.org/10.1038/s41597-024-03358-1
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "DEFAULT_THRESHOLD_PX",
    "DEFAULT_MIN_RCA",
    "QualityFlag",
    "quality_flag",
    "normalised_uncertainty",
]

#: Mean node uncertainty (pixels of a 1024 frame) above which an image is flagged:
#: the 95th percentile of the 51 clean JSRT test images with 20 latent samples
#: (2.22 px with ``hybridgnet-jsrt-256``), rounded up to 0.5 px, i.e. at most a 5 %
#: false-alarm rate on in-distribution images; for the default ``hybridgnet-multi-256``
#: the 95th percentile of the 68 clean val images of its three sources, 50 samples, is
#: 2.20 px, so the same threshold holds. It depends on the weights;
#: ``chexmask experiment threshold`` prints the value for the weights it runs
#: (docs/uncertainty.md, "Quality flag").
DEFAULT_THRESHOLD_PX = 2.5

#: ``Dice RCA (Mean)`` below which an image is flagged (the reference's threshold).
DEFAULT_MIN_RCA = 0.7

_RCA_COLUMN = "Dice RCA (Mean)"


@dataclass(frozen=True)
class QualityFlag:
    """The quality flag of one image.

    Attributes
    ----------
    flag : {"good", "review", "unknown"}
        ``"unknown"`` when neither uncertainty nor RCA is available.
    uncertainty_px : float or None
        Mean node uncertainty rescaled to a 1024-pixel frame.
    rca : float or None
        ``Dice RCA (Mean)`` used, if any.
    reason : str
        One sentence a reviewer can act on.
    """

    flag: str
    uncertainty_px: float | None
    rca: float | None
    reason: str

    def columns(self) -> dict[str, str]:
        """Table column of the segment output: ``{"Quality Flag": flag}``."""
        return {"Quality Flag": self.flag}


def normalised_uncertainty(uncertainty: float | None, height: int, width: int) -> float | None:
    """Rescale an uncertainty in original pixels to a 1024-pixel frame.

    Parameters
    ----------
    uncertainty : float or None
        Mean node uncertainty (or any length) in pixels of an ``height x width`` image.
    height, width : int
        Original image size.

    Returns
    -------
    float or None
        ``uncertainty * 1024 / max(height, width)``; None when `uncertainty` is None.

    Raises
    ------
    ValueError
        If the size is not positive.

    Examples
    --------
    >>> normalised_uncertainty(2.0, 2048, 1500)
    1.0
    """
    from chexmask.preprocess import to_1024_frame

    scaled = to_1024_frame(0.0 if uncertainty is None else float(uncertainty), height, width)  # validates the size
    return None if uncertainty is None else scaled


def _rca_value(rca: float | Mapping[str, float] | None) -> float | None:
    if rca is None:
        return None
    if isinstance(rca, Mapping):
        if _RCA_COLUMN not in rca:
            raise ValueError(f"rca columns must include {_RCA_COLUMN!r}, got {sorted(rca)}")
        rca = rca[_RCA_COLUMN]
    value = float(rca)
    return None if math.isnan(value) else value


def quality_flag(
    segmentation,
    rca: float | Mapping[str, float] | None = None,
    *,
    threshold_px: float = DEFAULT_THRESHOLD_PX,
    min_rca: float = DEFAULT_MIN_RCA,
) -> QualityFlag:
    """Flag a segmentation for review from its uncertainty and, optionally, its RCA.

    Parameters
    ----------
    segmentation : chexmask.inference.segmenter.Segmentation
        A result; its ``uncertainty`` is None when sampling was off.
    rca : float or mapping, optional
        ``Dice RCA (Mean)``, or the columns returned by
        :func:`chexmask.quality.rca.score_segmentation`. NaN counts as absent.
    threshold_px : float, optional
        Flag when the mean node uncertainty, in pixels of a 1024 frame, exceeds this.
    min_rca : float, optional
        Flag when ``Dice RCA (Mean)`` is below this.

    Returns
    -------
    QualityFlag
        ``"review"`` if either signal fails, ``"good"`` if every available signal
        passes, ``"unknown"`` if none is available.

    Raises
    ------
    ValueError
        If `threshold_px` is not positive, `min_rca` is outside [0, 1], or `rca`
        is a mapping without ``Dice RCA (Mean)``.

    Examples
    --------
    >>> from types import SimpleNamespace
    >>> seg = SimpleNamespace(uncertainty=3.0, height=2048, width=2048)
    >>> quality_flag(seg, threshold_px=2.0).flag   # 3 px at 2048 = 1.5 px at 1024
    'good'
    >>> quality_flag(seg, rca=0.5, threshold_px=2.0).flag
    'review'
    """
    if not threshold_px > 0:
        raise ValueError(f"threshold_px must be > 0, got {threshold_px}")
    if not 0.0 <= min_rca <= 1.0:
        raise ValueError(f"min_rca must be in [0, 1], got {min_rca}")
    u = normalised_uncertainty(segmentation.uncertainty, segmentation.height, segmentation.width)
    r = _rca_value(rca)
    problems, checks = [], []
    if u is not None:
        (problems if u > threshold_px else checks).append(
            f"mean node uncertainty {u:.2f} px (1024 frame) {'>' if u > threshold_px else '<='} {threshold_px:g}")
    if r is not None:
        (problems if r < min_rca else checks).append(f"Dice RCA (Mean) {r:.3f} {'<' if r < min_rca else '>='} {min_rca:g}")
    if problems:
        return QualityFlag("review", u, r, "; ".join(problems) + ": check the contours")
    if checks:
        return QualityFlag("good", u, r, "; ".join(checks))
    return QualityFlag("unknown", None, None, "no uncertainty (sampling off) and no RCA")
