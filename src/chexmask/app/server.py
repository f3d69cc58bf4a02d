"""The FastAPI application of ``chexmask serve``.

Routes: ``GET /`` the page; ``GET /api/info`` model and limits; ``POST /api/segment``
(multipart field ``file``) segments one upload and returns a JSON summary (quality,
uncertainty, and the measurements of :mod:`chexmask.measures` under ``measures``);
``GET /api/results/{id}/overlay.png`` and ``GET /api/results/{id}/download.zip``.

Every failure caused by an upload is answered with ``{"error": message}`` and a 4xx
code; an unexpected failure is logged and answered 500. Neither stops the server.
Results are kept in memory for the last ``keep`` uploads only.
"""

from __future__ import annotations

import dataclasses
import logging
import secrets
import tempfile
import threading
import time
from collections import OrderedDict
from importlib import resources
from pathlib import Path

import numpy as np
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles

from chexmask._errors import InputError
from chexmask.flag import DEFAULT_MIN_DICE
from chexmask.reports.overlay import VMAX_PX, overlay_png
from chexmask.app.render import bundle
from chexmask.app.upload import Limits, UploadRejected, check_upload, safe_name

__all__ = ["create_app", "quality_flag"]

log = logging.getLogger(__name__)

#: Multipart framing allowed on top of the file itself before a request is refused
#: from its Content-Length alone.
_MULTIPART_SLACK = 64 * 1024


def quality_flag(estimate, rca=None) -> dict:
    """The shared quality flag (:func:`chexmask.flag.quality_flag`) as the page's JSON.

    Parameters
    ----------
    estimate : chexmask.estimate.estimator.QualityEstimate
        ``segmentation.quality_estimate()``.
    rca : optional
        An RCA score with ``.mean`` (the demo's ``--atlas``).

    Returns
    -------
    dict
        ``{"flag": "good" | "review" | "unknown", "estimated_dice": {"lungs", "heart"},
        "rca": float | None, "reason": str}``.
    """
    q = estimate.flag(None if rca is None else float(rca.mean))
    return {"flag": q.flag, "estimated_dice": q.estimate, "rca": q.rca, "reason": q.reason}


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(
    segmenter,
    limits: Limits | None = None,
    *,
    keep: int = 32,
    rca=None,
) -> FastAPI:
    """Build the web demo around a loaded :class:`~chexmask.inference.segmenter.Segmenter`.

    Parameters
    ----------
    segmenter : Segmenter
        Used for every upload (one at a time: a lock serialises the model).
    limits : Limits, optional
        Upload limits (bytes, pixels); default :class:`~chexmask.app.upload.Limits`.
    keep : int, optional
        How many recent results stay downloadable.
    rca : chexmask.quality.rca.RCAScorer, optional
        Scores each result by RCA (``.score(image, masks, latent=...)`` with ``.mean`` and
        ``.max``); the quality flag then also uses it.

    Returns
    -------
    fastapi.FastAPI
    """
    limits = limits or Limits()
    if keep < 1:
        raise ValueError(f"keep must be >= 1, got {keep}")
    app = FastAPI(title="chexmask", docs_url=None, redoc_url=None, openapi_url=None)
    static = resources.files("chexmask.app") / "static"
    app.mount("/static", StaticFiles(directory=str(static)), name="static")
    results: OrderedDict[str, dict] = OrderedDict()
    model_lock, results_lock = threading.Lock(), threading.Lock()
    info = {
        "model": Path(str(segmenter.info.get("name") or segmenter.info.get("path", ""))).name,
        "uncertainty_samples": segmenter.uncertainty,
        "limits": dataclasses.asdict(limits),
        "flag_min_dice": DEFAULT_MIN_DICE,
        "overlay_vmax_px": VMAX_PX,  # the overlay's fixed node colour scale, 0 to this (1024 frame)
        "rca": rca is not None,
    }

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > limits.max_bytes + _MULTIPART_SLACK:
            return _error(413, f"the upload is {int(length) / 2**20:.1f} MiB;"
                               f" the limit is {limits.max_bytes / 2**20:.0f} MiB")
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return (static / "index.html").read_text(encoding="utf-8")

    @app.get("/api/info")
    def get_info() -> dict:
        return info

    @app.post("/api/segment")
    def segment(file: UploadFile = File(...)) -> Response:
        name = safe_name(file.filename)
        try:
            data = file.file.read(limits.max_bytes + 1)
            kind = check_upload(data, name, limits)
            summary = _run(data, name, kind)
        except UploadRejected as exc:
            return _error(exc.status, str(exc))
        except InputError as exc:
            return _error(422, f"{name}: {exc.reason}")
        except Exception:
            log.exception("segmenting %s failed", name)
            return _error(500, f"{name}: internal error while segmenting; see the server log")
        return JSONResponse(summary)

    def _run(data: bytes, name: str, kind: str) -> dict:
        from chexmask.io.read import read_image
        from chexmask.measures import measure_masks, measure_record

        with tempfile.TemporaryDirectory(prefix="chexmask-upload-") as tmp:
            path = Path(tmp) / name
            path.write_bytes(data)
            image = read_image(path)
        image = dataclasses.replace(image, path=name, image_id=name)  # the id segment gives a lone file
        start = time.perf_counter()
        with model_lock:
            seg = segmenter.segment(image)
            masks = seg.masks()
            scores = None if rca is None else rca.score(image, masks, latent=seg.latent_mu)
        estimate = seg.quality_estimate()
        rid = secrets.token_urlsafe(12)
        organ_u = seg.organ_uncertainty()
        summary = {
            "id": rid,
            "image_id": seg.image_id,
            "kind": kind,
            "height": seg.height,
            "width": seg.width,
            "uncertainty": seg.uncertainty,
            "organ_uncertainty": organ_u,
            "node_uncertainty_max": None if seg.node_uncertainty is None else float(seg.node_uncertainty.max()),
            "quality": quality_flag(estimate, scores),
            "node_error_radius_median": None if estimate.node_radius is None else float(np.median(estimate.node_radius)),
            "rca": None if scores is None else {"mean": float(scores.mean), "max": float(scores.max)},
            "measures": measure_record(measure_masks(masks, image.pixel_spacing)),  # mm only with a DICOM pixel spacing
            "seconds": round(time.perf_counter() - start, 3),
            "overlay": f"/api/results/{rid}/overlay.png",
            "download": f"/api/results/{rid}/download.zip",
        }
        png = overlay_png(image, seg, masks=masks, legend=False, error_radius=estimate.node_radius)  # the page shows the legend
        stored = {"overlay": png, "zip": bundle(seg, masks, summary, png, None if scores is None else scores.columns()),
                  "image_id": seg.image_id}
        with results_lock:
            results[rid] = stored
            while len(results) > keep:
                results.popitem(last=False)
        return summary

    def _result(rid: str) -> dict | None:
        with results_lock:
            return results.get(rid)

    @app.get("/api/results/{rid}/overlay.png")
    def get_overlay(rid: str) -> Response:
        stored = _result(rid)
        if stored is None:
            return _error(404, f"no result {rid!r} (results are kept for the last {keep} uploads)")
        return Response(stored["overlay"], media_type="image/png")

    @app.get("/api/results/{rid}/download.zip")
    def get_zip(rid: str) -> Response:
        stored = _result(rid)
        if stored is None:
            return _error(404, f"no result {rid!r} (results are kept for the last {keep} uploads)")
        filename = f"{safe_name(Path(stored['image_id']).stem)}_chexmask.zip"
        return Response(stored["zip"], media_type="application/zip",
                        headers={"Content-Disposition": f'attachment; filename="{filename}"'})

    return app
