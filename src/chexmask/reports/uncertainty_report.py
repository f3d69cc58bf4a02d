"""The reports of the uncertainty experiments: tables, figures and summaries.

:func:`write_corruption_report` writes what :func:`chexmask.quality.corruption.run_corruption`
measured (uncertainty and landmark error under noise and occlusion, Spearman
correlations); :func:`write_ood_report` and :func:`save_ood_images` what
:func:`chexmask.quality.ood.run_ood` scored (AUROC of each uncertainty score for
out-of-distribution inputs). Quality computes, reports draws and writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from chexmask.anatomy import ORGANS
from chexmask.quality.corruption import CorruptionResult
from chexmask.quality.image_corruptions import KINDS, OCCLUSION_POSITIONS
from chexmask.quality.ood import OODResult
from chexmask.quality.ood_scoring import SCORES

__all__ = ["corruption_figures", "write_corruption_report", "ood_figure", "write_ood_report", "save_ood_images"]


def corruption_figures(result: CorruptionResult, out_dir: Path) -> list[Path]:
    """``uncertainty_vs_level.png`` (and, with reference landmarks, ``uncertainty_vs_error.png``) in `out_dir`."""
    pi = result.per_image
    clean = pi[pi["kind"] == "clean"]
    fig = Figure(figsize=(10, 7), layout="constrained")
    axes = fig.subplots(2, 2, sharey="row")
    has_error = pi["error_px"].notna().any()
    for row, (metric, label) in enumerate((("uncertainty", "mean node std (px, 1024 frame)"),
                                           ("error", "mean landmark error (px, 1024 frame)"))):
        ax = axes[row, 0]
        noise = pd.concat([clean, pi[pi["kind"] == "noise"]])
        for col in [f"{metric}_px"] + [f"{metric}_{o}" for o in ORGANS]:
            m = noise.groupby("level")[col].agg(["mean", "sem"])
            ax.errorbar(m.index, m["mean"], m["sem"], marker="o", capsize=2,
                        label="all nodes" if col.endswith("_px") else col.split("_", 1)[1])
        ax.set(xlabel="Gaussian noise std (grey levels)", ylabel=label)
        ax.legend(fontsize=7)
        ax = axes[row, 1]
        occ = pi[pi["kind"] == "occlusion"]
        for pos in OCCLUSION_POSITIONS:
            sel = pd.concat([clean, occ[occ["position"] == pos]])
            m = sel.groupby("level")[f"{metric}_px"].agg(["mean", "sem"])
            ax.errorbar(m.index, m["mean"], m["sem"], marker="o", capsize=2, label=f"block at {pos}")
        ax.set(xlabel="occluding block side (fraction of image)")
        ax.legend(fontsize=7)
        if not has_error:
            break
    paths = [out_dir / "uncertainty_vs_level.png"]
    fig.savefig(paths[0], dpi=90)
    if has_error:
        fig = Figure(figsize=(10, 4.5), layout="constrained")
        ax1, ax2 = fig.subplots(1, 2)
        for kind, colour in zip(KINDS, ("black", "tab:blue", "tab:orange")):
            sel = pi[pi["kind"] == kind]
            ax1.scatter(sel["error_px"], sel["uncertainty_px"], s=10, alpha=0.6, c=colour, label=kind)
        rho = result.correlations["per_image"]["all"]["rho"]
        ax1.set(xscale="log", yscale="log", xlabel="mean landmark error (px)", ylabel="mean node std (px)",
                title=f"per image and corruption (Spearman {rho:.2f})" if rho is not None else "per image")
        ax1.legend(fontsize=7)
        pn = result.per_node
        ax2.hexbin(pn["error_px"].clip(lower=0.1), pn["uncertainty_px"].clip(lower=0.1), gridsize=40,
                   xscale="log", yscale="log", bins="log", mincnt=1, cmap="viridis")
        rho = result.correlations["per_node_pooled"]["rho"]
        ax2.set(xlabel="node error (px)", ylabel="node std (px)",
                title=f"per node, pooled (Spearman {rho:.2f})" if rho is not None else "per node")
        paths.append(out_dir / "uncertainty_vs_error.png")
        fig.savefig(paths[1], dpi=90)
    return paths


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def write_corruption_report(result: CorruptionResult, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``per_node.csv``, ``per_image.csv``, ``summary.csv``, ``summary.md``,
    ``correlations.json`` and the figures to `out_dir`; returns the summary.md path.

    ``result.meta`` heads ``correlations.json`` and ``summary.md``.
    """
    meta = result.meta
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.per_node.to_csv(out / "per_node.csv", index=False, float_format="%.4f")
    result.per_image.to_csv(out / "per_image.csv", index=False, float_format="%.4f")
    result.summary.to_csv(out / "summary.csv", index=False, float_format="%.4f")
    (out / "correlations.json").write_text(json.dumps({**meta, **result.correlations}, indent=2))
    figures = corruption_figures(result, out)
    cols = ["corruption", "n_images", "uncertainty_px"] + [f"uncertainty_{o}" for o in ORGANS] + ["latent_sigma", "error_px", "mse_px2"]
    c = result.correlations
    lines = ["# Corruption experiment", ""]
    lines += [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", "Lengths in pixels of a 1024 frame; means over images.", "", "```",
              result.summary[cols].to_string(index=False, float_format=lambda v: f"{v:.2f}"), "```", "",
              "Spearman rho, uncertainty vs landmark error:", ""]
    lines += [f"- per image, {k}: {_fmt(v['rho'])} (n={v['n']})" for k, v in c["per_image"].items()]
    lines += [f"- per image, latent sigma instead: {_fmt(c['per_image_latent_sigma']['rho'])}",
              f"- per node, pooled: {_fmt(c['per_node_pooled']['rho'])} (n={c['per_node_pooled']['n']})"]
    for key, text in (("per_node_by_index", "each node across rows"), ("per_node_within_image", "within each row across nodes")):
        v = c[key]
        lines.append(f"- per node, {text}: median {_fmt(v['median'])} [IQR {_fmt(v.get('q25'))}, {_fmt(v.get('q75'))}] (n={v['n']})")
    lines.append("")
    lines += [f"![{p.stem}]({p.name})" for p in figures]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def _roc(scores: np.ndarray, positive: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    ok = np.isfinite(scores)
    scores, positive = scores[ok], positive[ok]
    order = np.argsort(-scores, kind="stable")
    tp = np.concatenate([[0], np.cumsum(positive[order])])
    fp = np.concatenate([[0], np.cumsum(~positive[order])])
    return fp / max(fp[-1], 1), tp / max(tp[-1], 1)


def ood_figure(result: OODResult, path: Path) -> Path:
    """Box plots of every score per set and their ROC curves over all OOD sets."""
    sets = list(dict.fromkeys(result.scores["set"]))
    fig = Figure(figsize=(15, 6.5), layout="constrained")
    axes = fig.subplots(2, 4).ravel()
    axes[len(SCORES)].set_visible(False)
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


def write_ood_report(result: OODResult, out_dir: str | os.PathLike[str]) -> Path:
    """Write ``scores.csv``, ``auroc.csv``, ``auroc.json``, ``summary.md`` and ``ood_scores.png``.

    ``summary.md`` also gives the fraction of each set the Quality Flag sends to review;
    ``result.meta`` heads ``auroc.json`` and ``summary.md``.
    """
    meta = result.meta
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.scores.to_csv(out / "scores.csv", index=False, float_format="%.5f")
    result.aurocs.to_csv(out / "auroc.csv", index=False, float_format="%.4f")
    figure = ood_figure(result, out / "ood_scores.png")
    scores = result.scores
    (out / "auroc.json").write_text(json.dumps({**meta, "auroc": result.aurocs.set_index("score").to_dict()}, indent=2))
    counts = scores.groupby("set", sort=False).agg(n=("image_id", "size"), flagged=("flagged", "mean"),
                                                   predictive_px=("predictive_px", "median"), dice_shortfall=("dice_shortfall", "median"))
    lines = ["# Out-of-distribution experiment", ""] + [f"- {k}: {v}" for k, v in meta.items()]
    lines += ["", "AUROC (OOD = positive; higher score = more OOD):", "", "```",
              result.aurocs.to_string(index=False, float_format=lambda v: f"{v:.3f}"), "```", "",
              "Images per set; fraction the Quality Flag sends to review (Estimated Dice under its thresholds); "
              "median predictive uncertainty (px) and median 1 - min(Estimated Dice):",
              "", "```", counts.to_string(float_format=lambda v: f"{v:.2f}"), "```", "", f"![ood scores]({figure.name})"]
    path = out / "summary.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def save_ood_images(result: OODResult, out_dir: str | os.PathLike[str]) -> None:
    """Write every OOD image of ``result.sets`` to ``out_dir/images/<set>/<id without its image extension>.png``."""
    import cv2

    from chexmask.io.lookup import image_stem

    for name, images in result.sets.items():
        folder = Path(out_dir) / "images" / name
        folder.mkdir(parents=True, exist_ok=True)
        for img in images:
            cv2.imwrite(str(folder / f"{image_stem(img.image_id.split('/')[-1])}.png"), img.pixels)
