"""Out-of-distribution experiment: which uncertainty score separates OOD inputs?

In-distribution images (e.g. the JSRT test split) and out-of-distribution sets are
segmented with latent sampling, and each image gets these scores (higher = more
suspicious; the direction is fixed in advance, so an AUROC below 0.5 means the score
moves the wrong way):

- ``latent_sigma``: mean of the encoder's posterior std over the latent dimensions;
- ``predictive_px``: mean node std of the decoded samples (1024 frame), CheXmask-U's
  image-level uncertainty;
- ``mahalanobis_mu``: Mahalanobis distance of the posterior mean from the Gaussian
  fitted to reference (training) images' posterior means;
- ``mahalanobis_logsigma``: the same for the log posterior std vector;
- ``shape``: Mahalanobis distance of the predicted landmarks (in units of the image's
  longer side) from the reference images' predicted landmarks.

The reference Gaussians use a covariance shrunk towards its mean variance (there are
fewer reference images than landmark coordinates). AUROC is the probability that an
OOD image scores higher than an in-distribution one (ties count half).

Synthetic OOD sets made from the in-distribution images: horizontal and vertical
flips, 90-degree rotation, heavy crops (a random window of 35 % of each side) and
inverted contrast. Non-chest images: scikit-image's bundled sample photographs and
micrographs, and pydicom's bundled example CT and MR slices.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import rankdata

from chexmask._errors import ChexmaskError
from chexmask.io.read import XrayImage
from chexmask.flag import DEFAULT_THRESHOLD_PX
from chexmask.quality.flag_calibration import calibrate_threshold
from chexmask.model.default import DEFAULT_MODEL
from chexmask.preprocess import to_1024_frame

__all__ = [
    "SCORES",
    "TRANSFORMS",
    "auroc",
    "synthetic_ood",
    "non_chest_images",
    "Reference",
    "fit_reference",
    "ood_scores",
    "OODResult",
    "run_ood",
    "write_ood_report",
    "ood_experiment",
]

log = logging.getLogger(__name__)

SCORES = ("latent_sigma", "predictive_px", "mahalanobis_mu", "mahalanobis_logsigma", "shape")
_CROP = 0.35
_SKIMAGE_SAMPLES = ("astronaut", "brick", "camera", "cell", "chelsea", "clock", "coffee", "coins", "grass",
                    "gravel", "horse", "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina",
                    "rocket", "shepp_logan_phantom", "text")
_PYDICOM_SAMPLES = ("ct", "mr", "overlay")


def _crop(pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    h, w = pixels.shape
    ch, cw = max(1, round(_CROP * h)), max(1, round(_CROP * w))
    y, x = int(rng.integers(0, h - ch + 1)), int(rng.integers(0, w - cw + 1))
    return pixels[y : y + ch, x : x + cw].copy()


#: Name -> function ``(pixels, rng) -> pixels`` making an OOD image from a chest X-ray.
TRANSFORMS: dict[str, Callable[[np.ndarray, np.random.Generator], np.ndarray]] = {
    "hflip": lambda p, rng: p[:, ::-1].copy(),
    "vflip": lambda p, rng: p[::-1].copy(),
    "rot90": lambda p, rng: np.rot90(p).copy(),
    "crop": _crop,
    "invert": lambda p, rng: 255 - p,
}


def auroc(scores_in: Sequence[float], scores_out: Sequence[float]) -> float:
    """Area under the ROC curve for telling OOD (positive) from in-distribution.

    Parameters
    ----------
    scores_in, scores_out : (N,), (M,) array_like
        Scores of in-distribution and OOD images; higher means "more OOD". NaNs are
        dropped.

    Returns
    -------
    float
        ``P(out > in) + P(out == in) / 2`` (the Mann-Whitney U statistic / (N M)); NaN
        if either side is empty.

    Examples
    --------
    >>> auroc([1, 2, 3], [4, 5])
    1.0
    >>> auroc([1, 2], [2, 0])
    0.375
    """
    a = np.asarray(scores_in, np.float64)
    b = np.asarray(scores_out, np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if a.size == 0 or b.size == 0:
        return float("nan")
    ranks = rankdata(np.concatenate([a, b]))
    u = ranks[a.size :].sum() - b.size * (b.size + 1) / 2
    return float(u / (a.size * b.size))


def synthetic_ood(
    images: Sequence[XrayImage],
    transforms: Sequence[str] = tuple(TRANSFORMS),
    seed: int = 0,
) -> dict[str, list[XrayImage]]:
    """OOD sets made from chest X-rays: ``{transform: images}``, ids ``"<transform>/<id>"``.

    Raises
    ------
    ValueError
        For an unknown transform name.
    """
    unknown = [t for t in transforms if t not in TRANSFORMS]
    if unknown:
        raise ValueError(f"unknown OOD transform(s) {unknown}; expected some of {list(TRANSFORMS)}")
    out: dict[str, list[XrayImage]] = {}
    for ti, name in enumerate(transforms):
        made = []
        for i, img in enumerate(images):
            px = TRANSFORMS[name](img.pixels, np.random.default_rng([seed, ti, i]))
            made.append(dataclasses.replace(img, pixels=px, image_id=f"{name}/{img.image_id}",
                                            height=px.shape[0], width=px.shape[1]))
        out[name] = made
    return out


def _gray_uint8(arr: np.ndarray) -> np.ndarray:
    from skimage.color import rgb2gray
    from skimage.util import img_as_ubyte

    if arr.ndim == 3:
        arr = rgb2gray(arr[..., :3])
    arr = np.asarray(arr, np.float64)
    lo, hi = float(arr.min()), float(arr.max())
    return img_as_ubyte((arr - lo) / (hi - lo) if hi > lo else np.zeros_like(arr))


def non_chest_images() -> dict[str, list[XrayImage]]:
    """Bundled non-chest images: ``{"skimage": [...], "ct_mr": [...]}`` (ids ``"skimage/camera"``...).

    scikit-image's sample images (photographs, textures, micrographs, a Shepp-Logan
    phantom) converted to 8-bit gray; pydicom's example CT and MR slices read with
    chexmask's DICOM reader. Images that need a download are skipped; nothing is
    fetched.
    """
    import skimage.data

    from chexmask.io.read import read_image

    sets: dict[str, list[XrayImage]] = {"skimage": [], "ct_mr": []}
    for name in _SKIMAGE_SAMPLES:
        try:
            px = _gray_uint8(getattr(skimage.data, name)())
        except (ImportError, OSError, AttributeError) as exc:  # some samples need pooch and the network
            log.warning("skipping skimage sample %s: %s", name, exc)
            continue
        sets["skimage"].append(XrayImage(px, "", f"skimage/{name}", px.shape[0], px.shape[1], "MONOCHROME2", None, 8))
    try:
        import pydicom.examples as examples
    except ImportError:
        log.warning("pydicom.examples is unavailable: no CT/MR OOD set")
        return sets
    for name in _PYDICOM_SAMPLES:
        try:
            img = read_image(getattr(examples, name).filename)
        except (ChexmaskError, AttributeError) as exc:
            log.warning("skipping pydicom example %s: %s", name, exc)
            continue
        sets["ct_mr"].append(dataclasses.replace(img, image_id=f"pydicom/{name}"))
    return sets


@dataclass
class Reference:
    """Gaussians of in-distribution latents and shapes (means and precision matrices)."""

    mu_mean: np.ndarray
    mu_precision: np.ndarray
    logsigma_mean: np.ndarray
    logsigma_precision: np.ndarray
    shape_mean: np.ndarray
    shape_precision: np.ndarray
    n: int


def _gaussian(x: np.ndarray, shrink: float) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(0)
    cov = np.cov(x, rowvar=False) if len(x) > 1 else np.zeros((x.shape[1], x.shape[1]))
    target = max(float(np.trace(cov)) / cov.shape[0], 1e-12)
    cov = (1 - shrink) * cov + shrink * target * np.eye(cov.shape[0])
    return mean, np.linalg.inv(cov)


def _shape_vector(seg) -> np.ndarray:
    return (np.asarray(seg.landmarks, np.float64) / max(seg.height, seg.width)).ravel()


def fit_reference(segmentations: Sequence, shrink: float = 0.1) -> Reference:
    """Fit the reference Gaussians to in-distribution (training) segmentations.

    Raises
    ------
    ChexmaskError
        With fewer than 2 segmentations.
    """
    if len(segmentations) < 2:
        raise ChexmaskError(f"the OOD reference needs at least 2 images, got {len(segmentations)}")
    mu = np.stack([s.latent_mu for s in segmentations]).astype(np.float64)
    ls = np.log(np.stack([s.latent_sigma for s in segmentations]).astype(np.float64))
    shapes = np.stack([_shape_vector(s) for s in segmentations])
    return Reference(*_gaussian(mu, shrink), *_gaussian(ls, shrink), *_gaussian(shapes, shrink), n=len(segmentations))


def _mahalanobis(x: np.ndarray, mean: np.ndarray, precision: np.ndarray) -> float:
    d = x - mean
    return float(np.sqrt(max(d @ precision @ d, 0.0)))


def ood_scores(segmentations: Sequence, reference: Reference | None = None) -> pd.DataFrame:
    """One row of :data:`SCORES` per segmentation (``image_id`` first); Mahalanobis scores NaN without a reference."""
    rows = []
    for s in segmentations:
        row = {"image_id": s.image_id, "latent_sigma": float(np.mean(s.latent_sigma)),
               "predictive_px": np.nan if s.uncertainty is None else to_1024_frame(s.uncertainty, s.height, s.width)}
        if reference is None:
            row.update(mahalanobis_mu=np.nan, mahalanobis_logsigma=np.nan, shape=np.nan)
        else:
            row["mahalanobis_mu"] = _mahalanobis(np.asarray(s.latent_mu, np.float64), reference.mu_mean, reference.mu_precision)
            row["mahalanobis_logsigma"] = _mahalanobis(np.log(np.asarray(s.latent_sigma, np.float64)),
                                                       reference.logsigma_mean, reference.logsigma_precision)
            row["shape"] = _mahalanobis(_shape_vector(s), reference.shape_mean, reference.shape_precision)
        rows.append(row)
    return pd.DataFrame(rows, columns=["image_id", *SCORES])


@dataclass
class OODResult:
    """``scores``: one row per image with its ``set`` (``"in"`` or an OOD set name) and
    :data:`SCORES`; ``aurocs``: one row per score, one column per OOD set plus ``all``."""

    scores: pd.DataFrame
    aurocs: pd.DataFrame


def run_ood(
    in_images: Sequence[XrayImage],
    ood_sets: Mapping[str, Sequence[XrayImage]],
    segmenter,
    reference_images: Sequence[XrayImage] | None = None,
) -> OODResult:
    """Score in-distribution and OOD images and compute the AUROC of every score.

    Parameters
    ----------
    in_images : sequence of XrayImage
    ood_sets : mapping of set name to sequence of XrayImage
    segmenter : chexmask.Segmenter
        With ``uncertainty >= 2`` for the predictive score.
    reference_images : sequence of XrayImage, optional
        In-distribution images NOT in `in_images` (the training split) for the
        Mahalanobis and shape scores; segmented without sampling.

    Raises
    ------
    ChexmaskError
        If `in_images` or every OOD set is empty.
    """
    import copy

    if not in_images:
        raise ChexmaskError("the OOD experiment needs in-distribution images")
    if not any(len(v) for v in ood_sets.values()):
        raise ChexmaskError("the OOD experiment needs at least one out-of-distribution image")
    reference = None
    if reference_images:
        deterministic = copy.copy(segmenter)  # shares the model; no sampling needed for mu and sigma
        deterministic.uncertainty = 0
        reference = fit_reference(deterministic.segment_images(list(reference_images)))
    frames = [ood_scores(segmenter.segment_images(list(in_images)), reference).assign(set="in")]
    for name, images in ood_sets.items():
        if images:
            frames.append(ood_scores(segmenter.segment_images(list(images)), reference).assign(set=name))
            log.info("OOD set %s: %d images", name, len(images))
    scores = pd.concat(frames, ignore_index=True)
    scores["flagged"] = scores["predictive_px"] > DEFAULT_THRESHOLD_PX
    inside = scores[scores["set"] == "in"]
    outside = scores[scores["set"] != "in"]
    table = {name: {s: auroc(inside[s], g[s]) for s in SCORES} for name, g in outside.groupby("set", sort=False)}
    table["all"] = {s: auroc(inside[s], outside[s]) for s in SCORES}
    return OODResult(scores, pd.DataFrame(table).rename_axis("score").reset_index())


def _roc(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(scores)
    scores, positive = scores[ok], positive[ok]
    order = np.argsort(-scores, kind="stable")
    tp = np.concatenate([[0], np.cumsum(positive[order])])
    fp = np.concatenate([[0], np.cumsum(~positive[order])])
    return fp / max(fp[-1], 1), tp / max(tp[-1], 1)


def _figure(result: OODResult, path: Path) -> Path:
    from matplotlib.figure import Figure

    sets = list(dict.fromkeys(result.scores["set"]))
    fig = Figure(figsize=(12, 6.5), layout="constrained")
    axes = fig.subplots(2, 3).ravel()
    is_out = (result.scores["set"] != "in").to_numpy()
    for score in SCORES:
        fpr, tpr = _roc(result.scores[score].to_numpy(float), is_out)
        axes[-1].plot(fpr, tpr, label=score)
    axes[-1].plot([0, 1], [0, 1], "k:", lw=0.8)
    axes[-1].set(xlabel="false positive rate (in-distribution)", ylabel="true positive rate (OOD)", title="ROC, all OOD sets")
    axes[-1].legend(fontsize=7)
    for ax, score in zip(axes, SCORES):
        data = [result.scores.loc[result.scores["set"] == s, score].dropna() for s in sets]
        ax.boxplot(data, showfliers=False)
        for i, d in enumerate(data):
            ax.scatter(np.full(len(d), i + 1) + np.random.default_rng(i).uniform(-0.15, 0.15, len(d)), d, s=6, alpha=0.6)
        ax.set_xticks(range(1, len(sets) + 1), sets, rotation=45, fontsize=8)
        ax.set_yscale("log")
        ax.set_title(f"{score} (AUROC all {float(result.aurocs.set_index('score').loc[score, 'all']):.2f})", fontsize=9)
    fig.savefig(path, dpi=80)
    return path


def write_ood_report(result: OODResult, out_dir: str | os.PathLike[str], meta: dict | None = None) -> Path:
    """Write ``scores.csv``, ``auroc.csv``, ``auroc.json``, ``summary.md`` and ``ood_scores.png``.

    ``auroc.json`` and ``summary.md`` also give ``suggested_threshold_px``, the flag
    threshold :func:`chexmask.quality.flag_calibration.calibrate_threshold` derives from the
    in-distribution images' predictive uncertainty.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.scores.to_csv(out / "scores.csv", index=False, float_format="%.5f")
    result.aurocs.to_csv(out / "auroc.csv", index=False, float_format="%.4f")
    figure = _figure(result, out / "ood_scores.png")
    scores = result.scores
    inside = scores.loc[scores["set"] == "in", "predictive_px"]
    suggested = calibrate_threshold(inside) if inside.notna().any() else float("nan")
    meta = {**(meta or {}), "suggested_threshold_px": suggested}
    (out / "auroc.json").write_text(json.dumps({**meta, "auroc": result.aurocs.set_index("score").to_dict()}, indent=2))
    counts = scores.assign(flagged_suggested=scores["predictive_px"] > suggested).groupby("set", sort=False).agg(
        n=("image_id", "size"), flagged=("flagged", "mean"), flagged_suggested=("flagged_suggested", "mean"),
        predictive_px=("predictive_px", "median"))
    lines = ["# Out-of-distribution experiment", ""] + [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", "AUROC (OOD = positive; higher score = more OOD):", "", "```",
              result.aurocs.to_string(index=False, float_format=lambda v: f"{v:.3f}"), "```", "",
              f"Images per set; fraction flagged at the default threshold ({DEFAULT_THRESHOLD_PX:g} px) and at the "
              f"suggested one ({suggested:g} px: 95th percentile of the in-distribution images, rounded up); "
              "median predictive uncertainty (px):",
              "", "```", counts.to_string(float_format=lambda v: f"{v:.2f}"), "```", "", f"![ood scores]({figure.name})"]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _reference_paths(source: Path) -> list[Path]:
    from chexmask.io.discover import find_images
    from chexmask.model.data import read_split

    if (source / "splits" / "train.txt").is_file():  # JSRT layout: the training split only
        return [source / "images" / f"{i}.png" for i in read_split(source, "train")]
    return find_images(source)


def ood_experiment(
    in_inputs: Sequence[str | os.PathLike[str]],
    out_inputs: Sequence[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    *,
    weights: str = DEFAULT_MODEL,
    split: str | None = None,
    limit: int | None = None,
    synthetic: bool = True,
    non_chest: bool = True,
    max_synthetic: int = 20,
    reference: str | os.PathLike[str] | None = None,
    samples: int = 20,
    seed: int = 0,
    device: str = "cpu",
    batch_size: int = 8,
    save_images: bool = False,
) -> OODResult:
    """The ``chexmask experiment ood`` command: read, generate, score, write the report.

    Parameters
    ----------
    in_inputs, out_inputs : sequence of path
        In-distribution and OOD images: files, folders or path lists. `out_inputs`
        may be empty when synthetic or non-chest sets are made. JSRT-layout folders
        with `split`: see :func:`chexmask.quality.corruption.resolve_images`.
    out_dir : path
        Report folder.
    split : str, optional
        Split of JSRT-layout in-distribution inputs to use.
    limit : int, optional
        Use the first `limit` in-distribution images only.
    synthetic : bool, optional
        Make :data:`TRANSFORMS` sets from the first `max_synthetic` in-distribution images.
    non_chest : bool, optional
        Add :func:`non_chest_images`.
    reference : path, optional
        Training images for the Mahalanobis and shape scores: a JSRT-layout folder
        (its train split is used) or any folder/list of images.
    samples, seed, device, batch_size
        See :class:`chexmask.Segmenter`.
    save_images : bool, optional
        Also write every generated OOD image to ``out_dir/images/<set>/`` as PNG.

    Raises
    ------
    ChexmaskError
        On unreadable inputs, no OOD images, or too few samples.
    """
    import cv2

    from chexmask.inference.segmenter import Segmenter
    from chexmask.io.read import read_image
    from chexmask.quality.corruption import resolve_images

    if samples < 2:
        raise ChexmaskError(f"--uncertainty must be >= 2 to estimate a spread, got {samples}")
    in_images = [read_image(p) for p in resolve_images(in_inputs, split, limit)]
    sets: dict[str, list[XrayImage]] = {}
    if out_inputs:
        sets["given"] = [read_image(p) for p in resolve_images(out_inputs)]
    if synthetic:
        sets.update(synthetic_ood(in_images[:max_synthetic], seed=seed))
    if non_chest:
        sets.update(non_chest_images())
    ref_images = None
    if reference is not None:
        ref_paths = _reference_paths(Path(reference))
        if not ref_paths:
            raise ChexmaskError(f"--reference {reference}: no images found")
        ref_images = [read_image(p) for p in ref_paths]
    segmenter = Segmenter(weights, device=device, uncertainty=samples, seed=seed, batch_size=batch_size)
    result = run_ood(in_images, sets, segmenter, ref_images)
    info = getattr(segmenter, "info", {}) or {}
    meta = {"weights": str(weights), "weights_sha256": info.get("sha256", ""), "samples": samples, "seed": seed,
            "in_images": len(in_images), "reference_images": 0 if ref_images is None else len(ref_images),
            "ood_sets": {k: len(v) for k, v in sets.items()}}
    write_ood_report(result, out_dir, meta)
    if save_images:
        for name, images in sets.items():
            folder = Path(out_dir) / "images" / name
            folder.mkdir(parents=True, exist_ok=True)
            for img in images:
                cv2.imwrite(str(folder / f"{img.image_id.split('/')[-1]}.png"), img.pixels)
    return result
