"""Validate the cardiothoracic ratio against the JSRT expert masks (``chexmask validate --ctr-report``).

For every image of a JSRT split, the CTR (:func:`chexmask.measures.measure_masks`) is
computed from:

- ``scr``: the SCR expert masks (the reference);
- ``model``: the masks of a model (predicted heart and lungs), filled in the original
  frame as ``chexmask segment`` fills them;
- ``landmarks``: the filled expert landmarks (:func:`chexmask.masks.fill.landmarks_to_masks`),
  i.e. what a perfect landmark model could give, a floor for the model's error;
- ``model_heart``: the predicted heart with the SCR lungs, and ``model_lungs``: the SCR
  heart with the predicted lungs, which split the model's CTR error into the part that
  comes from the heart contour and the part that comes from the lungs.

Each is compared with ``scr``: mean absolute error, bias (mean of test - reference),
limits of agreement, Pearson r, and agreement on ``CTR > 0.5`` (the usual cut-off for
cardiomegaly on a PA film): confusion counts and Cohen's kappa.
:func:`chexmask.reports.ctr_report.write_ctr_report` writes the tables and a Bland-Altman
figure of the differences.

References
----------
Gaggion N, et al. CheXmask: a large-scale dataset of anatomical segmentation masks for
multi-center chest x-ray images. Sci Data 2024;11:511. https://doi.org/10.1038/s41597-024-03358-1

Shiraishi J, et al. Development of a digital image database for chest radiographs with
and without a lung nodule. AJR 2000;174:71-74. https://doi.org/10.2214/ajr.174.1.1740071

van Ginneken B, et al. Segmentation of anatomical structures in chest radiographs using
supervised methods (SCR). Med Image Anal 2006;10:19-40. https://doi.org/10.1016/j.media.2005.02.002
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from chexmask._errors import InputError
from chexmask.anatomy import ORGANS
from chexmask.model.default import DEFAULT_MODEL

__all__ = ["SOURCES", "CTR_THRESHOLD", "ctr_agreement", "CTRValidation", "validate_ctr", "ctr_of_segmentations"]

#: Source -> description; every source but ``scr`` is compared with ``scr``.
SOURCES: dict[str, str] = {
    "scr": "SCR expert masks (reference)",
    "model": "model: predicted heart and lungs",
    "landmarks": "filled expert landmarks",
    "model_heart": "predicted heart + SCR lungs",
    "model_lungs": "SCR heart + predicted lungs",
}
#: CTR above which a film reads as an enlarged heart.
CTR_THRESHOLD = 0.5


def ctr_agreement(test, reference, threshold: float = CTR_THRESHOLD) -> dict[str, float]:
    """Agreement of two series of CTRs (or any paired values).

    Parameters
    ----------
    test, reference : array-like of float, shape (n,)
        Paired values; pairs with a NaN are left out.
    threshold : float
        Cut-off of the binary reading (``value > threshold`` is positive).

    Returns
    -------
    dict
        ``n``; ``mae``; ``bias`` (mean of test - reference); ``sd`` (std of the
        differences, ddof=1); ``loa_low``/``loa_high`` (bias -/+ 1.96 sd); ``pearson_r``;
        ``tp``, ``fp``, ``fn``, ``tn`` (test vs reference positives); ``kappa`` (Cohen's,
        NaN when chance agreement is 1).

    Examples
    --------
    >>> a = ctr_agreement([0.45, 0.55, 0.52, 0.40], [0.44, 0.53, 0.49, 0.42])
    >>> a["n"], round(a["bias"], 4), (a["tp"], a["fp"], a["fn"], a["tn"]), a["kappa"]
    (4, 0.01, (1, 1, 0, 2), 0.5)
    """
    from scipy.stats import pearsonr

    t, r = np.asarray(test, float), np.asarray(reference, float)
    if t.shape != r.shape or t.ndim != 1:
        raise ValueError(f"test and reference must be paired 1-D series, got shapes {t.shape} and {r.shape}")
    keep = np.isfinite(t) & np.isfinite(r)
    t, r = t[keep], r[keep]
    d = t - r
    n = int(len(d))
    sd = float(np.std(d, ddof=1)) if n > 1 else np.nan
    bias = float(d.mean()) if n else np.nan
    constant = n < 2 or np.ptp(t) == 0 or np.ptp(r) == 0
    pos_t, pos_r = t > threshold, r > threshold
    tp, fp = int(np.sum(pos_t & pos_r)), int(np.sum(pos_t & ~pos_r))
    fn, tn = int(np.sum(~pos_t & pos_r)), int(np.sum(~pos_t & ~pos_r))
    observed = (tp + tn) / n if n else np.nan
    chance = ((tp + fp) * (tp + fn) + (fn + tn) * (fp + tn)) / n**2 if n else np.nan
    kappa = (observed - chance) / (1 - chance) if n and chance < 1 else np.nan
    return {
        "n": n,
        "mae": float(np.abs(d).mean()) if n else np.nan,
        "bias": bias,
        "sd": sd,
        "loa_low": bias - 1.96 * sd,
        "loa_high": bias + 1.96 * sd,
        "pearson_r": np.nan if constant else float(pearsonr(t, r).statistic),
        "tp": tp, "fp": fp, "fn": fn, "tn": tn,
        "kappa": float(kappa),
    }


@dataclass(frozen=True)
class CTRValidation:
    """What :func:`validate_ctr` measured.

    Attributes
    ----------
    per_image : pandas.DataFrame
        One row per image: ``image_id``, then for each of :data:`SOURCES` its ``ctr_*``,
        and the heart and thorax widths (px) of ``scr``, ``model`` and ``landmarks``.
    summary : pandas.DataFrame
        One row per compared source (``model``, ``landmarks``, ``model_heart``,
        ``model_lungs``): ``source``, ``description`` and the :func:`ctr_agreement` keys;
        then ``heart_width_px`` and ``thorax_width_px`` rows (model vs SCR widths).
    model : dict
        ``name`` and ``sha256`` of the weights.
    split : str
    """

    per_image: pd.DataFrame
    summary: pd.DataFrame
    model: dict
    split: str


def _ctr(heart: np.ndarray, lungs_from: dict[str, np.ndarray]) -> dict[str, float]:
    from chexmask.measures import measure_masks

    return measure_masks({"heart": heart, "right_lung": lungs_from["right_lung"], "left_lung": lungs_from["left_lung"]})


def validate_ctr(
    jsrt_dir: str | os.PathLike[str],
    split: str = "test",
    *,
    weights: str | os.PathLike[str] = DEFAULT_MODEL,
    device: str = "auto",
    limit: int | None = None,
    batch_size: int = 8,
) -> CTRValidation:
    """CTR of a model's masks and of the filled expert landmarks against the SCR masks.

    Parameters
    ----------
    jsrt_dir : str or path-like
        JSRT-layout folder: ``images/<ID>.png``, ``scr_masks/<ID>.npz`` (``right_lung``,
        ``left_lung``, ``heart`` boolean, image size), ``landmarks/<ID>.npz`` and
        ``splits/<split>.txt``.
    split : {"train", "val", "test"}
    weights : str or path-like
        Shipped model name or ``.safetensors`` file (default: the package default).
    device : str
        Torch device.
    limit : int, optional
        Only the first ``limit`` images of the split.
    batch_size : int
        Images per model call.

    Returns
    -------
    CTRValidation

    Raises
    ------
    ChexmaskError
        No such split file, an image without SCR masks, or weights that cannot be loaded.
    ValueError
        ``limit`` below 1.
    """
    from chexmask.inference.segmenter import Segmenter
    from chexmask.model.report import segment_split

    if limit is not None and limit < 1:
        raise ValueError(f"--limit must be >= 1, got {limit}")
    segmenter = Segmenter(weights, device=device, uncertainty=0, batch_size=batch_size)
    return ctr_of_segmentations(jsrt_dir, segment_split(segmenter, Path(jsrt_dir), split, limit), segmenter.info, split)


def ctr_of_segmentations(jsrt_dir: str | os.PathLike[str], segmented, info: dict, split: str) -> CTRValidation:
    """:func:`validate_ctr` of already segmented images: ``(image_id, XrayImage, Segmentation)`` of ``jsrt_dir``.

    ``info`` is the segmenter's (``name``, ``sha256``); ``chexmask validate --ctr-report``
    scores its one segmentation pass this way.
    """
    from chexmask.io.layout import expert_masks, load_landmarks_npz
    from chexmask.masks.fill import landmarks_to_masks

    jsrt_dir = Path(jsrt_dir)
    rows = []
    for _, image, seg in segmented:
        scr = expert_masks(jsrt_dir, image.image_id)
        if not all(o in scr for o in ORGANS):
            raise InputError(jsrt_dir / "scr_masks", f"no SCR masks of both lungs and the heart for {image.image_id}")
        pred = seg.masks()
        points = load_landmarks_npz(jsrt_dir / "landmarks" / f"{image.image_id}.npz")
        expert = landmarks_to_masks(np.rint(points).astype(np.int64), image.height, image.width)
        measured = {
            "scr": _ctr(scr["heart"], scr),
            "model": _ctr(pred["heart"], pred),
            "landmarks": _ctr(expert["heart"], expert),
            "model_heart": _ctr(pred["heart"], scr),
            "model_lungs": _ctr(scr["heart"], pred),
        }
        row = {"image_id": image.image_id}
        row.update({f"ctr_{s}": m["CTR"] for s, m in measured.items()})
        for s in ("scr", "model", "landmarks"):
            row[f"heart_width_{s}"] = measured[s]["Heart Width (px)"]
            row[f"thorax_width_{s}"] = measured[s]["Thorax Width (px)"]
        rows.append(row)
    per_image = pd.DataFrame(rows)
    summary = [{"source": s, "description": SOURCES[s], **ctr_agreement(per_image[f"ctr_{s}"], per_image["ctr_scr"])}
               for s in SOURCES if s != "scr"]
    for part in ("heart", "thorax"):
        agreement = ctr_agreement(per_image[f"{part}_width_model"], per_image[f"{part}_width_scr"], threshold=np.inf)
        summary.append({"source": f"{part}_width_px", "description": f"model {part} width vs SCR (px)",
                        **{k: v for k, v in agreement.items() if k not in ("tp", "fp", "fn", "tn", "kappa")}})
    summary = pd.DataFrame(summary).astype({c: "Int64" for c in ("tp", "fp", "fn", "tn")})  # none for the widths
    model = {"name": str(info["name"]), "sha256": info["sha256"]}
    return CTRValidation(per_image, summary, model, split)
