"""The report of the CTR validation (``chexmask validate --ctr-report``): tables and a Bland-Altman figure.

:func:`write_ctr_report` writes what :func:`chexmask.quality.ctr_validation.validate_ctr`
measured. Quality computes, reports draws and writes.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from matplotlib.figure import Figure

from chexmask.quality.ctr_validation import CTR_THRESHOLD, SOURCES, CTRValidation

__all__ = ["bland_altman", "write_ctr_report"]


def bland_altman(result: CTRValidation, path: Path) -> Path:
    """Bland-Altman plots of every compared source's CTR against the SCR masks' (bias and 95% limits of agreement)."""
    sources = [s for s in SOURCES if s != "scr"]
    fig = Figure(figsize=(10, 8))
    axes = fig.subplots(2, 2, sharex=True, sharey=True).ravel()
    ref = result.per_image["ctr_scr"].to_numpy()
    for ax, source in zip(axes, sources):
        test = result.per_image[f"ctr_{source}"].to_numpy()
        row = result.summary.set_index("source").loc[source]
        ax.scatter((test + ref) / 2, test - ref, s=14, alpha=0.8)
        ax.axhline(row["bias"], color="k", lw=1)
        for loa in (row["loa_low"], row["loa_high"]):
            ax.axhline(loa, color="k", lw=0.8, ls="--")
        ax.axhline(0, color="0.6", lw=0.6)
        ax.axvline(CTR_THRESHOLD, color="tab:red", lw=0.6, ls=":")
        ax.set_title(f"{SOURCES[source]}\nMAE {row['mae']:.4f}, bias {row['bias']:+.4f}, r {row['pearson_r']:.3f}, "
                     f"kappa (CTR > {CTR_THRESHOLD}) {row['kappa']:.2f}", fontsize=9)
    for ax in axes[2:]:
        ax.set_xlabel("mean CTR (test, SCR)")
    for ax in axes[::2]:
        ax.set_ylabel("CTR test - SCR")
    fig.suptitle(f"CTR vs SCR expert masks, JSRT {result.split} (n={len(ref)}); "
                 f"model {result.model['name']} ({result.model['sha256'][:12]}); solid: bias, dashed: 95% limits of agreement", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120, bbox_inches="tight")
    return path


def write_ctr_report(result: CTRValidation, out_dir: str | os.PathLike[str], figure: str | os.PathLike[str] | None = None) -> list[Path]:
    """Write ``per_image.csv``, ``summary.csv``, ``summary.json`` and the Bland-Altman PNG.

    The figure goes to ``figure`` when given, else ``OUT/ctr_bland_altman.png``. Returns
    the files written.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    result.per_image.to_csv(out / "per_image.csv", index=False, lineterminator="\n")
    result.summary.to_csv(out / "summary.csv", index=False, lineterminator="\n")
    record = {"split": result.split, "model": result.model, "images": len(result.per_image),
              "summary": json.loads(result.summary.to_json(orient="records"))}
    (out / "summary.json").write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
    png = bland_altman(result, Path(figure) if figure is not None else out / "ctr_bland_altman.png")
    return [out / "per_image.csv", out / "summary.csv", out / "summary.json", png]
