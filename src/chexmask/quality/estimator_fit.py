"""Fit the shipped quality estimate on the failure benchmark, and validate it leaving one source out.

:func:`fit_estimator` turns a benchmark table (:mod:`chexmask.quality.failure_benchmark`)
into the parameters of :class:`chexmask.estimate.estimator.Estimator`:

- per organ group and variant, a linear model of ``log(1 - Dice)`` on standardised
  features with non-negative weights (:func:`scipy.optimize.lsq_linear`), so the
  estimate can only fall when a feature says "less trustworthy"; the ``full`` variant
  has one intercept per model (their uncertainties differ in scale), ``shape`` one;
- the Node Error Radius: ``log(node error) ~ a_node + b log(node std) + c log(1 - Dice
  estimate)`` (``b``, ``c`` >= 0), then a split-conformal factor ``q``, the
  :data:`COVERAGE` quantile of ``error / exp(prediction)`` on the fitting rows;
- the flag thresholds (:func:`choose_thresholds`).

:func:`leave_one_source_out` refits everything, the shape model included, without one
source and predicts that source's rows, for every source: the figures of
``docs/quality.md`` are those out-of-source predictions. Only JSRT annotates the heart,
so the heart model cannot be validated on another hospital: its out-of-sample
predictions come from five folds grouped by image inside JSRT.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.optimize import lsq_linear

from chexmask.anatomy import N_NODES, ORGANS
from chexmask.estimate.estimator import Estimator
from chexmask.estimate.features import FEATURES, SAMPLING_FEATURES, image_features
from chexmask.estimate.shape_model import GROUP_NODES, ShapeModel, fit_shape_model
from chexmask.io.layout import landmark_arrays
from chexmask.preprocess import to_1024_frame
from chexmask.quality.estimator_validation import flag_rows, mean_uncertainty
from chexmask.quality.failure_benchmark import FAILURE_CUTS, failed

__all__ = ["COVERAGE", "VARIANT_FEATURES", "features_table", "fit_estimator", "predict", "leave_one_source_out",
           "choose_thresholds", "QualityFit", "fit_quality", "expert_shapes"]

#: Probability that the expert's node lies within its Node Error Radius.
COVERAGE = 0.90
#: Features of each variant (see :mod:`chexmask.estimate.estimator`).
VARIANT_FEATURES: dict[str, tuple[str, ...]] = {
    "full": tuple(FEATURES),
    "shape": tuple(f for f in FEATURES if f not in SAMPLING_FEATURES),
}
_FLOOR = 0.005  # 1 - Dice is floored here before the log: Dice above 0.995 is annotation noise
_SOURCE_NAMES = {"jsrt": "JSRT", "montgomery": "Montgomery", "shenzhen": "Shenzhen"}


def expert_shapes(landmarks_npz: str, leave_out: str | None = None) -> np.ndarray:
    """The expert landmark sets ``(N, 120, 2)`` of ``all_landmarks.npz``, without one source's."""
    shapes, sources = landmark_arrays(landmarks_npz, ORGANS)
    keep = sources != _SOURCE_NAMES.get(leave_out, leave_out) if leave_out else np.ones(len(shapes), bool)
    return shapes[keep]


def features_table(bench: pd.DataFrame, shape_model: ShapeModel) -> pd.DataFrame:
    """The :data:`~chexmask.estimate.features.FEATURES` of every benchmark row."""
    if "weak_lung_edges" not in bench.columns:
        raise ValueError("the benchmark has no weak_lung_edges column (made before the estimate looked at the pixels): "
                         "rerun chexmask experiment failures")
    rows = [image_features(np.asarray(r.landmarks).reshape(-1, 2), r.node_std, r.height, r.width, shape_model, r.weak_lung_edges)
            for r in bench.itertuples(index=False)]  # the benchmark's node_std is the per-node spread already
    return pd.DataFrame(rows, index=bench.index)


def _target(dice: pd.Series) -> np.ndarray:
    return np.log(np.maximum(1.0 - dice.to_numpy(np.float64), _FLOOR))


def _fit_linear(x: pd.DataFrame, y: np.ndarray, groups: pd.Series | None = None) -> dict:
    """Non-negative weights on standardised features; one intercept, or one per value of ``groups`` (the model's SHA256)."""
    mean, scale = x.mean(), x.std().replace(0, 1.0)
    z = ((x - mean) / scale).to_numpy()
    levels = [None] if groups is None else sorted(groups.unique())
    onehot = np.ones((len(z), 1)) if groups is None else np.column_stack([(groups == g).to_numpy(float) for g in levels])
    design = np.column_stack([onehot, z])
    lower = np.r_[np.full(len(levels), -np.inf), np.zeros(z.shape[1])]
    sol = lsq_linear(design, y, bounds=(lower, np.full(len(lower), np.inf))).x
    terms = {n: {"mean": float(mean[n]), "scale": float(scale[n]), "weight": float(w)} for n, w in zip(x.columns, sol[len(levels):])}
    if groups is None:
        return {"intercept": float(sol[0]), "features": terms}
    return {"intercepts": {g: float(v) for g, v in zip(levels, sol)}, "features": terms}


def _node_table(bench: pd.DataFrame, log_err: pd.DataFrame) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per annotated node: node index, log std (1024), organ log(1 - Dice) estimate, log error (1024)."""
    idx, std, organ, err = [], [], [], []
    group_of = np.empty(N_NODES, object)
    for g, nodes in GROUP_NODES.items():
        group_of[nodes] = g
    for (i, r), (_, le) in zip(bench.iterrows(), log_err.iterrows()):
        e = to_1024_frame(np.asarray(r.node_error, np.float64), r.height, r.width)
        s = to_1024_frame(np.asarray(r.node_std, np.float64), r.height, r.width)
        ok = np.isfinite(e)
        idx.append(np.flatnonzero(ok))
        std.append(np.log(np.maximum(s[ok], 1e-3)))
        organ.append(np.array([le[g] for g in group_of[ok]]))
        err.append(np.log(np.maximum(e[ok], 0.25)))
    return np.concatenate(idx), np.concatenate(std), np.concatenate(organ), np.concatenate(err)


def _fit_radius(bench: pd.DataFrame, log_err: pd.DataFrame) -> dict:
    idx, std, organ, err = _node_table(bench, log_err)
    ok = np.isfinite(organ)  # nodes of an organ group without a Dice model are not fitted
    idx, std, organ, err = idx[ok], std[ok], organ[ok], err[ok]
    n = len(idx)
    design = sparse.hstack([sparse.csr_matrix((np.ones(n), (np.arange(n), idx)), shape=(n, N_NODES)),
                            sparse.csr_matrix(np.column_stack([std, organ]))]).tocsr()
    lower = np.r_[np.full(N_NODES, -np.inf), 0.0, 0.0]
    sol = lsq_linear(design, err, bounds=(lower, np.full(N_NODES + 2, np.inf)), lsmr_tol="auto").x
    ratio = np.exp(err - design @ sol)
    intercept = np.where(np.isin(np.arange(N_NODES), idx), sol[:N_NODES], np.nan)
    return {"node_intercept": intercept.tolist(), "weight_std": float(sol[N_NODES]), "weight_organ": float(sol[N_NODES + 1]),
            "quantile": float(np.quantile(ratio, COVERAGE)), "coverage": COVERAGE}


def fit_estimator(bench: pd.DataFrame, shape_model: ShapeModel, full_models: list[str]) -> dict:
    """Fit every part of the estimator on ``bench``; returns the JSON-able parameters (flag thresholds not included).

    An organ group no row annotates gets no model (``None``); nodes no row annotates get
    a NaN radius intercept.
    """
    feats = features_table(bench, shape_model)
    params = {"full_models": sorted(full_models), "variants": {}}
    shas = _model_shas(bench)
    for variant, names in VARIANT_FEATURES.items():
        params["variants"][variant] = {}
        for group in ("lungs", "heart"):
            have = bench[f"dice_{group}"].notna()
            params["variants"][variant][group] = (_fit_linear(feats.loc[have, list(names)], _target(bench.loc[have, f"dice_{group}"]),
                                                              shas[have] if variant == "full" else None)
                                                  if have.any() else None)
    log_err = _log_err(params, shape_model, feats, "full", shas)
    params["radius"] = _fit_radius(bench, log_err)
    return params


def _model_shas(bench: pd.DataFrame) -> pd.Series:
    """The SHA256 of each row's model (shipped registry)."""
    from chexmask.model.weights import registry

    return bench["model"].map(lambda name: registry()[name]["sha256"])


def _log_err(params: dict, shape_model: ShapeModel, feats: pd.DataFrame, variant: str, shas: pd.Series) -> pd.DataFrame:
    """``log(1 - Dice)`` estimates per row and group (NaN for a group without a model)."""
    est = Estimator(params, shape_model)
    out = {}
    for group in ("lungs", "heart"):
        if params["variants"][variant][group] is None:
            out[group] = np.full(len(feats), np.nan)
        else:
            out[group] = [est.log_one_minus_group(f, variant, group, sha) for f, sha in zip(feats.to_dict("records"), shas)]
    return pd.DataFrame(out, index=feats.index)


def predict(bench: pd.DataFrame, params: dict, shape_model: ShapeModel, variant: str = "full") -> pd.DataFrame:
    """Estimated Dice per group (``est_lungs``, ``est_heart``) and Node Error Radius (``radius``, 1024 frame) of every row."""
    est = Estimator(params, shape_model)
    feats = features_table(bench, shape_model)
    shas = _model_shas(bench)
    log_err = _log_err(params, shape_model, feats, variant, shas)
    full = log_err if variant == "full" else _log_err(params, shape_model, feats, "full", shas)
    radius = [est.node_radius(to_1024_frame(np.asarray(r.node_std, np.float64), r.height, r.width), le)
              for r, le in zip(bench.itertuples(index=False), full.to_dict("records"))]
    return pd.DataFrame({"est_lungs": 1 - np.exp(log_err["lungs"]), "est_heart": 1 - np.exp(log_err["heart"]), "radius": radius},
                        index=bench.index)


def leave_one_source_out(bench: pd.DataFrame, landmarks_npz: str, variant: str = "full", heart_folds: int = 5) -> pd.DataFrame:
    """Out-of-source predictions of every row (:func:`predict`'s columns).

    Lungs (estimate and lung-node radii): every source predicted by a fit on the others,
    shape model included. Heart (estimate and heart-node radii): only JSRT annotates it,
    so its rows are predicted in ``heart_folds`` folds grouped by image, from a fit on
    the other folds and the other sources, with a shape model without JSRT's shapes.
    """
    pred = pd.DataFrame(index=bench.index, columns=["est_lungs", "est_heart", "radius"], dtype=object)
    lung_nodes, heart_nodes = GROUP_NODES["lungs"], GROUP_NODES["heart"]
    for source in sorted(bench["source"].unique()):
        test = bench["source"] == source
        ssm = fit_shape_model(expert_shapes(landmarks_npz, leave_out=source))
        part = predict(bench[test], fit_estimator(bench[~test], ssm, []), ssm, variant)
        pred.loc[test, "est_lungs"] = part["est_lungs"]
        pred.loc[test, "radius"] = [np.where(np.isin(np.arange(N_NODES), lung_nodes), r, np.nan) for r in part["radius"]]
    hearts = bench["dice_heart"].notna()
    for source in sorted(bench.loc[hearts, "source"].unique()):
        inside = bench["source"] == source
        fold = _folds(bench.loc[inside, "image_id"], heart_folds).reindex(bench.index)
        ssm = fit_shape_model(expert_shapes(landmarks_npz, leave_out=source))
        for k in range(heart_folds):
            test = inside & (fold == k)
            part = predict(bench[test], fit_estimator(bench[~test], ssm, []), ssm, variant)
            pred.loc[test, "est_heart"] = part["est_heart"]
            pred.loc[test, "radius"] = [np.where(np.isin(np.arange(N_NODES), heart_nodes), new, old)
                                        for new, old in zip(part["radius"], pred.loc[test, "radius"])]
    return pred.astype({"est_lungs": float, "est_heart": float})


def _folds(ids: pd.Series, k: int) -> pd.Series:
    """Fold of each row, grouped by image (deterministic: by the image's rank in sorted order)."""
    order = {i: n % k for n, i in enumerate(sorted(ids.unique()))}
    return ids.map(order)


def choose_thresholds(bench: pd.DataFrame, pred: pd.DataFrame, recall: float = 0.85,
                      grid: np.ndarray = np.round(np.arange(0.80, 0.985, 0.0025), 4)) -> dict[str, float]:
    """Flag thresholds ``{"lungs": tL, "heart": tH}``: the pair that flags fewest rows among those reaching ``recall``
    of the failures of every model of the benchmark, each on its own rows (under the whole flag rule, the uncertainty
    guard included).

    Each model separately, not only pooled: the rows users get come from one model (the default), whose failures
    are few on the benchmark (29 of 612) and would otherwise be outvoted by the other model's (412 of 1356).
    """
    fail = failed(bench).to_numpy()
    if not fail.any():
        raise ValueError("the benchmark has no failed rows: the flag thresholds cannot be chosen")
    uncertainty = mean_uncertainty(bench)
    groups = [(bench["model"] == m).to_numpy() & fail for m in bench["model"].unique()]
    groups = [g for g in groups if g.any()]
    best = None
    for t_lungs in grid:
        for t_heart in grid - (FAILURE_CUTS["lungs"] - FAILURE_CUTS["heart"]):
            flag = flag_rows(pred, {"lungs": t_lungs, "heart": t_heart}, uncertainty).to_numpy()
            if all(flag[g].mean() >= recall for g in groups) and (best is None or flag.mean() < best[0]):
                best = (flag.mean(), float(t_lungs), float(t_heart))
    if best is None:
        raise ValueError(f"no thresholds reach recall {recall} for every model")
    return {"lungs": best[1], "heart": best[2]}


@dataclass
class QualityFit:
    """Everything ``chexmask experiment quality-fit`` makes from a benchmark."""

    params: dict  # the shipped estimator's parameters (fitted on every row)
    shape_model: ShapeModel  # fitted on every expert landmark set
    out_of_source: dict[str, pd.DataFrame]  # variant -> out-of-source predictions of every row
    thresholds: dict[str, float]  # flag thresholds chosen on the full variant's out-of-source predictions


def fit_quality(bench: pd.DataFrame, landmarks_npz: str, recall: float = 0.85) -> QualityFit:
    """Validate out of source (both variants), choose the flag thresholds, then fit on everything.

    The full variant is fitted for the models that made the benchmark's rows (their
    SHA256, from the shipped registry).
    """
    shas = sorted(_model_shas(bench).unique())
    held_out = {variant: leave_one_source_out(bench, landmarks_npz, variant) for variant in VARIANT_FEATURES}
    thresholds = choose_thresholds(bench, held_out["full"], recall)
    shape_model = fit_shape_model(expert_shapes(landmarks_npz))
    return QualityFit(fit_estimator(bench, shape_model, shas), shape_model, held_out, thresholds)
