"""How well the quality signals separate good rows from bad ones on the failure benchmark.

Computes, from out-of-source predictions (:func:`chexmask.quality.estimator_fit.leave_one_source_out`)
and the benchmark's truth: the estimated Dice's Pearson r with the true Dice per organ
group, the AUROC for failed rows of every signal side by side (the estimate, the mean
node uncertainty, the latent sigma), the Node Error Radius's coverage and its Spearman
correlation with the node error, and the flag's recall, precision and flagged fraction.
Every figure is given overall and per held-out source and model.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.stats import pearsonr, spearmanr

from chexmask.flag import DEFAULT_MAX_UNCERTAINTY_PX
from chexmask.preprocess import to_1024_frame
from chexmask.quality.failure_benchmark import FAILURE_CUTS, failed
from chexmask.quality.metrics import auroc, node_rank_figures

__all__ = ["estimate_score", "flag_rows", "mean_uncertainty", "node_spearman", "summary"]


def estimate_score(pred: pd.DataFrame) -> pd.Series:
    """One number per row, higher = more likely failed: the largest shortfall of an estimate under its failure cut."""
    lungs = FAILURE_CUTS["lungs"] - pred["est_lungs"]
    heart = FAILURE_CUTS["heart"] - pred["est_heart"]
    return pd.concat([lungs, heart], axis=1).max(axis=1, skipna=True)


def flag_rows(pred: pd.DataFrame, thresholds: dict[str, float], uncertainty: pd.Series) -> pd.Series:
    """The flag rule (:func:`chexmask.flag.quality_flag` without RCA): ``review`` where an estimated Dice is below its
    threshold or the mean node uncertainty (:func:`mean_uncertainty`) above :data:`~chexmask.flag.DEFAULT_MAX_UNCERTAINTY_PX`."""
    return (pred["est_lungs"] < thresholds["lungs"]) | (pred["est_heart"] < thresholds["heart"]) | (uncertainty > DEFAULT_MAX_UNCERTAINTY_PX)


def mean_uncertainty(bench: pd.DataFrame) -> pd.Series:
    """Mean node uncertainty of each row, 1024 frame."""
    return pd.Series([to_1024_frame(float(np.mean(s)), h, w) for s, h, w in zip(bench["node_std"], bench["height"], bench["width"])],
                     index=bench.index)


def _auroc(score: pd.Series, fail: pd.Series) -> float:
    return auroc(score[~fail], score[fail]) if fail.any() and (~fail).any() else float("nan")


def _pearson(a: pd.Series, b: pd.Series) -> float:
    ok = a.notna() & b.notna()
    return float(pearsonr(a[ok], b[ok])[0]) if ok.sum() > 2 and a[ok].std() > 0 and b[ok].std() > 0 else float("nan")


def _radius_figures(bench: pd.DataFrame, pred: pd.DataFrame) -> dict[str, float]:
    err, rad = [], []
    for r, radius in zip(bench.itertuples(index=False), pred["radius"]):
        e = to_1024_frame(np.asarray(r.node_error, np.float64), r.height, r.width)
        ok = np.isfinite(e) & np.isfinite(radius)
        err.append(e[ok])
        rad.append(np.asarray(radius)[ok])
    e, r = np.concatenate(err), np.concatenate(rad)
    if e.size < 3:
        return {"nodes": int(e.size), "coverage": float("nan"), "spearman": float("nan"), "median_error_px": float("nan"), "median_radius_px": float("nan")}
    return {"nodes": int(e.size), "coverage": float((e <= r).mean()), "spearman": float(spearmanr(r, e)[0]),
            "median_error_px": float(np.median(e)), "median_radius_px": float(np.median(r))}


def _group_figures(bench: pd.DataFrame, pred: pd.DataFrame, thresholds: dict[str, float]) -> dict[str, float]:
    fail = failed(bench)
    unc = mean_uncertainty(bench)
    flag = flag_rows(pred, thresholds, unc)
    out = {"rows": len(bench), "failed": int(fail.sum()), "heart_rows": int(bench["dice_heart"].notna().sum()),
           "r_lungs": _pearson(pred["est_lungs"], bench["dice_lungs"]), "r_heart": _pearson(pred["est_heart"], bench["dice_heart"]),
           "auroc_estimate": _auroc(estimate_score(pred), fail), "auroc_uncertainty": _auroc(unc, fail),
           "auroc_latent_sigma": _auroc(bench["latent_sigma"], fail),
           "flagged": float(flag.mean()), "recall": float(flag[fail].mean()) if fail.any() else float("nan"),
           "precision": float(fail[flag].mean()) if flag.any() else float("nan")}
    out.update({f"radius_{k}": v for k, v in _radius_figures(bench, pred).items()})
    return out


def summary(bench: pd.DataFrame, pred: pd.DataFrame, thresholds: dict[str, float]) -> pd.DataFrame:
    """One row of figures for all rows, per held-out source, per model, and for the clean rows."""
    groups = {"all": bench.index}
    groups |= {f"source={s}": idx for s, idx in bench.groupby("source").groups.items()}
    groups |= {f"model={m}": idx for m, idx in bench.groupby("model").groups.items()}
    groups |= {f"shift={s}": idx for s, idx in bench.groupby("shift").groups.items()}
    groups |= {f"{m} clean {s}": idx for (m, s), idx in bench[bench["shift"] == "clean"].groupby(["model", "source"]).groups.items()}
    return pd.DataFrame({name: _group_figures(bench.loc[idx], pred.loc[idx], thresholds) for name, idx in groups.items()}).T


def node_spearman(bench: pd.DataFrame) -> pd.DataFrame:
    """How well the node spread of the latent samples ranks node errors, per model, source and clean/shifted.

    Columns: ``pooled`` (Spearman over every annotated node of the group, 1024 frame),
    ``per_image`` (median over images of the Spearman inside an image), ``image_level``
    (mean node std vs mean node error over images), ``median_error_px`` and
    ``median_std_px`` (1024 frame).
    """
    rows = {}
    groups = bench.assign(clean=np.where(bench["shift"] == "clean", "clean", "shifted")).groupby(["model", "source", "clean"])
    for key, g in groups:
        err = [to_1024_frame(np.asarray(e, np.float64), h, w) for e, h, w in zip(g["node_error"], g["height"], g["width"])]
        std = [to_1024_frame(np.asarray(s, np.float64), h, w) for s, h, w in zip(g["node_std"], g["height"], g["width"])]
        figures = node_rank_figures(std, err)
        rows[" ".join(key)] = {"images": len(g), **{k: figures[k] for k in ("pooled", "per_image", "image_level", "median_error_px", "median_std_px")}}
    return pd.DataFrame(rows).T
