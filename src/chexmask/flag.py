"""The per-image Quality Flag: one rule on the Estimated Dice and, when present, RCA.

This is a postprocess of one result (like :mod:`chexmask.measures`): a pure function of
values the row already holds, so the row builder, the demo and the overlays apply the
same rule without depending on the quality layer.

The flag is a triage aid: ``"review"`` means "look at this segmentation", not "this
segmentation is wrong". The rule:

- ``review`` when ``Estimated Dice Lungs`` < :data:`DEFAULT_MIN_DICE` ``["lungs"]`` or
  ``Estimated Dice Heart`` < :data:`DEFAULT_MIN_DICE` ``["heart"]``
  (:mod:`chexmask.estimate`, written for every segmented image), or, when RCA was
  computed, ``Dice RCA (Mean)`` < :data:`DEFAULT_MIN_RCA` (0.7, the reference's
  threshold), or, with latent sampling, the mean node uncertainty exceeds
  :data:`DEFAULT_MAX_UNCERTAINTY_PX` (5 px in the 1024 frame: beyond what the estimate
  was fitted on, e.g. a blank or non-chest image whose shape alone looks plausible);
- ``good`` otherwise; ``unknown`` only when neither an estimate nor RCA is given.

The estimate already weighs the node uncertainty of the latent samples, so
out-of-distribution images (non-chest, lateral, inverted) get a low estimate and are
flagged. How the thresholds were chosen (leave-one-source-out recall of failures on the
failure benchmark) is in ``docs/quality.md``; ``chexmask experiment quality-fit`` prints
them for a refitted estimator.

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

__all__ = ["DEFAULT_MIN_DICE", "DEFAULT_MIN_RCA", "DEFAULT_MAX_UNCERTAINTY_PX", "QualityFlag", "quality_flag"]

#: Estimated Dice below which an image is flagged, per organ group: chosen on the failure
#: benchmark as the pair that flags the fewest rows while catching at least 85 % of the
#: failed ones (lungs Dice < 0.90 or heart < 0.80) of each benchmarked model, out of
#: source (docs/quality.md).
DEFAULT_MIN_DICE: dict[str, float] = {"lungs": 0.9225, "heart": 0.70}

#: ``Dice RCA (Mean)`` below which an image is flagged (the reference's threshold).
DEFAULT_MIN_RCA = 0.7

#: Mean node uncertainty (pixels of the 1024 frame) above which an image is flagged
#: whatever its estimate: 4 % of the default model's failure-benchmark rows (71 % of them
#: failed), none of its clean val images (95th percentile 2.2 px).
DEFAULT_MAX_UNCERTAINTY_PX = 5.0

_RCA_COLUMN = "Dice RCA (Mean)"


@dataclass(frozen=True)
class QualityFlag:
    """The quality flag of one image.

    Attributes
    ----------
    flag : {"good", "review", "unknown"}
        ``"unknown"`` when neither an estimate nor RCA is available.
    estimate : dict or None
        The Estimated Dice used, ``{"lungs": ..., "heart": ...}``.
    rca : float or None
        ``Dice RCA (Mean)`` used, if any.
    reason : str
        One sentence a reviewer can act on.
    """

    flag: str
    estimate: dict[str, float] | None
    rca: float | None
    reason: str

    def columns(self) -> dict[str, str]:
        """Table column of the segment output: ``{"Quality Flag": flag}``."""
        return {"Quality Flag": self.flag}


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
    estimate: Mapping[str, float] | None,
    rca: float | Mapping[str, float] | None = None,
    *,
    uncertainty_px: float | None = None,
    min_dice: Mapping[str, float] | None = None,
    min_rca: float = DEFAULT_MIN_RCA,
    max_uncertainty_px: float = DEFAULT_MAX_UNCERTAINTY_PX,
) -> QualityFlag:
    """Flag a segmentation for review from its Estimated Dice and, optionally, its RCA.

    Parameters
    ----------
    estimate : mapping or None
        Estimated Dice ``{"lungs": ..., "heart": ...}``
        (:attr:`chexmask.estimate.estimator.QualityEstimate.dice`).
    rca : float or mapping, optional
        ``Dice RCA (Mean)``, or the columns returned by
        :func:`chexmask.quality.rca.score_segmentation`. NaN counts as absent.
    uncertainty_px : float, optional
        Mean node uncertainty in pixels of the 1024 frame
        (:func:`chexmask.preprocess.to_1024_frame`); None without sampling.
    min_dice : mapping, optional
        Thresholds per organ group (default :data:`DEFAULT_MIN_DICE`).
    min_rca : float, optional
        Flag when ``Dice RCA (Mean)`` is below this.
    max_uncertainty_px : float, optional
        Flag when `uncertainty_px` is above this.

    Returns
    -------
    QualityFlag
        ``"review"`` if either signal fails, ``"good"`` if every available signal
        passes, ``"unknown"`` if none is available.

    Raises
    ------
    ValueError
        If a threshold is outside [0, 1], `estimate` lacks an organ group of the
        thresholds, or `rca` is a mapping without ``Dice RCA (Mean)``.

    Examples
    --------
    >>> quality_flag({"lungs": 0.96, "heart": 0.91}).flag
    'good'
    >>> quality_flag({"lungs": 0.88, "heart": 0.91}).reason
    'Estimated Dice Lungs 0.880 < 0.9225: check the contours'
    >>> quality_flag({"lungs": 0.96, "heart": 0.91}, rca=0.5).flag
    'review'
    >>> quality_flag({"lungs": 0.96, "heart": 0.91}, uncertainty_px=7.5).flag
    'review'
    """
    limits = dict(DEFAULT_MIN_DICE if min_dice is None else min_dice)
    if not all(0.0 <= v <= 1.0 for v in (*limits.values(), min_rca)):
        raise ValueError(f"thresholds must be in [0, 1], got min_dice {limits}, min_rca {min_rca}")
    if estimate is not None and set(limits) - set(estimate):
        raise ValueError(f"estimate must give {sorted(limits)}, got {sorted(estimate)}")
    r = _rca_value(rca)
    problems, checks = [], []
    if estimate is not None:
        for group, limit in limits.items():
            value = float(estimate[group])
            (problems if value < limit else checks).append(
                f"Estimated Dice {group.title()} {value:.3f} {'<' if value < limit else '>='} {limit:g}")
    if uncertainty_px is not None and uncertainty_px > max_uncertainty_px:
        problems.append(f"mean node uncertainty {uncertainty_px:.2f} px (1024 frame) > {max_uncertainty_px:g}")
    if r is not None:
        (problems if r < min_rca else checks).append(f"Dice RCA (Mean) {r:.3f} {'<' if r < min_rca else '>='} {min_rca:g}")
    est = None if estimate is None else {g: float(v) for g, v in estimate.items()}
    if problems:
        return QualityFlag("review", est, r, "; ".join(problems) + ": check the contours")
    if checks:
        return QualityFlag("good", est, r, "; ".join(checks))
    return QualityFlag("unknown", None, None, "no quality estimate and no RCA")
