"""Overlay images: organ contours and node uncertainty drawn over the X-ray.

The one renderer of chexmask: ``chexmask segment --overlays DIR`` writes one PNG per
image with it and the web demo (:mod:`chexmask.app`) shows it. Colours
(:data:`ORGAN_COLOURS`): right lung blue, left lung green, heart red, and with a model
that predicts them right clavicle amber, left clavicle magenta; every organ the result
has (``Segmentation.organs``) is outlined, and filled lightly when its masks are given.

Each node is a dot coloured (turbo colour map) by its predictive uncertainty on ONE
FIXED scale: pixels of the 1024 frame (``std * 1024 / max(H, W)``,
:func:`chexmask.preprocess.to_1024_frame`), from 0 to :data:`VMAX_PX` = 5 px (the 95th
percentile of clean val images of the default model is about 2.2 px, so in-distribution
nodes sit in the lower half), so overlays of different images and sizes compare by eye;
larger values saturate. Each node also gets its error bar: the circle of its Node Error
Radius (the radius within which the expert's node lies with 90 % probability,
:mod:`chexmask.estimate`) when the result has one, else its 2-sigma ellipse,
axis-aligned with semi-axes ``2 * std_x`` and ``2 * std_y``. With ``legend=True`` a
colour bar on the right gives the scale and a caption strip on top the image id, the
mean uncertainty, the Estimated Dice and the quality flag (the demo page shows its own
legend instead).
"""

from __future__ import annotations

import os
from pathlib import Path

import cv2
import numpy as np

from chexmask._errors import ChexmaskError, InputError
from chexmask.anatomy import organ_slices
from chexmask.formats.landmarks import node_uncertainty
from chexmask.io.lookup import output_stem
from chexmask.io.read import XrayImage
from chexmask.preprocess import to_1024_frame
from chexmask.flag import QualityFlag

__all__ = ["ORGAN_COLOURS", "VMAX_PX", "draw_overlay", "render_overlay", "overlay_png", "overlay_path"]

#: Organ -> BGR colour of its contour and fill.
ORGAN_COLOURS: dict[str, tuple[int, int, int]] = {
    "right_lung": (180, 119, 31),
    "left_lung": (44, 160, 44),
    "heart": (40, 39, 214),
    "right_clavicle": (0, 200, 255),
    "left_clavicle": (200, 0, 200),
}
#: Top of the node colour scale: node uncertainty in pixels of the 1024 frame.
VMAX_PX: float = 5.0
_FILL_ALPHA = 0.25  # weight of the organ colour in a filled organ
_BAR_WIDTH = 90  # right-hand panel with the colour bar, pixels
_CAPTION_HEIGHT = 28
_SHIFT = 4  # fractional bits for sub-pixel drawing in OpenCV


def render_overlay(
    image: XrayImage | np.ndarray,
    segmentation,
    *,
    vmax_px: float = VMAX_PX,
    ellipses: bool = True,
    flag: QualityFlag | None = None,
    max_side: int = 1024,
    masks: dict[str, np.ndarray] | None = None,
    legend: bool = True,
    error_radius: np.ndarray | None = None,
) -> np.ndarray:
    """Draw the overlay of one segmentation and return it as a BGR image.

    Parameters
    ----------
    image : XrayImage or (H, W) uint8 ndarray
        The image that was segmented, in its original frame.
    segmentation : chexmask.inference.segmenter.Segmentation or chexmask.dataset.Record
        Its result: ``landmarks`` (N, 2) (x, y) = (col, row) in original pixels for the
        nodes of ``segmentation.organs`` (:data:`chexmask.anatomy.N_NODES`, or
        :data:`~chexmask.anatomy.N_NODES_ALL` with the clavicles), and ``node_std``
        (N, 2) or None when uncertainty sampling was off. A table row read as a
        :class:`~chexmask.dataset.Record` draws too: its ``Landmarks (Std)`` (CheXmask-U's,
        or ours) colours the nodes.
    vmax_px : float, optional
        Node uncertainty (1024 frame) drawn in the top colour; larger values saturate.
        Keep the default (:data:`VMAX_PX`) for overlays that compare.
    ellipses : bool, optional
        Draw each node's error bar: its `error_radius` circle, else its 2-sigma ellipse.
    flag : QualityFlag, optional
        Printed in the caption.
    max_side : int, optional
        The image is drawn at most this large (longest side, pixels).
    masks : dict of str to (H, W) uint8 ndarray, optional
        ``segmentation.masks()``: the organs are also filled lightly.
    legend : bool, optional
        Add the caption strip and the colour bar panel.
    error_radius : (120,) ndarray, optional
        Node Error Radius in original pixels (``segmentation.quality_estimate().node_radius``),
        drawn as a circle around each CheXmask node.

    Returns
    -------
    (h + 28, w + 90, 3) uint8 ndarray
        BGR image (OpenCV order), scaled to fit `max_side`, under a caption strip and
        beside the colour bar panel; ``(h, w, 3)`` without the legend.

    Raises
    ------
    InputError
        If the image is not 2-D uint8 or its size differs from the segmentation's.
    ValueError
        If `vmax_px` or `max_side` is not positive.
    """
    if not vmax_px > 0:
        raise ValueError(f"vmax_px must be > 0, got {vmax_px}")
    if max_side < 16:
        raise ValueError(f"max_side must be >= 16 pixels, got {max_side}")
    pixels = image.pixels if isinstance(image, XrayImage) else np.asarray(image)
    name = getattr(segmentation, "image_id", "image")
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise InputError(name, f"overlay needs a 2-D uint8 image, got {pixels.dtype} {pixels.shape}")
    if pixels.shape != (segmentation.height, segmentation.width):
        raise InputError(name, f"image is {pixels.shape[0]}x{pixels.shape[1]} but the segmentation is "
                               f"{segmentation.height}x{segmentation.width}")
    scale = min(1.0, max_side / max(pixels.shape))
    size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
    canvas = cv2.cvtColor(cv2.resize(pixels, size, interpolation=cv2.INTER_AREA), cv2.COLOR_GRAY2BGR)
    organs = organ_slices(organs=segmentation.organs)
    if masks is not None:
        fill = canvas.copy()
        for organ in organs:
            fill[cv2.resize(masks[organ], size, interpolation=cv2.INTER_NEAREST) > 0] = ORGAN_COLOURS[organ]
        canvas = cv2.addWeighted(canvas, 1.0 - _FILL_ALPHA, fill, _FILL_ALPHA, 0)
    thick = max(1, round(max(size) / 500))
    points = np.asarray(segmentation.landmarks, np.float64) * scale
    for organ, part in organs.items():
        ring = np.rint(points[part] * 2**_SHIFT).astype(np.int32)
        cv2.polylines(canvas, [ring], True, ORGAN_COLOURS[organ], thick, cv2.LINE_AA, shift=_SHIFT)
    std = segmentation.node_std
    radius = max(2, round(max(size) / 250))
    if std is None:
        colours = np.full((len(points), 3), 255, np.uint8)
    else:
        node_u = to_1024_frame(node_uncertainty(std), segmentation.height, segmentation.width)
        colours = _colours(node_u / vmax_px)
        if ellipses and error_radius is not None:
            for (x, y), r, c in zip(points, np.asarray(error_radius, np.float64) * scale, colours):
                if np.isfinite(r):
                    cv2.circle(canvas, (int(round(x * 2**_SHIFT)), int(round(y * 2**_SHIFT))), max(1, int(round(r * 2**_SHIFT))),
                               _bgr(c), 1, cv2.LINE_AA, shift=_SHIFT)
        elif ellipses:
            axes = np.asarray(std, np.float64) * 2.0 * scale
            for (x, y), (ax, ay), c in zip(points, axes, colours):
                centre = (int(round(x * 2**_SHIFT)), int(round(y * 2**_SHIFT)))
                half = (max(1, int(round(ax * 2**_SHIFT))), max(1, int(round(ay * 2**_SHIFT))))
                cv2.ellipse(canvas, centre, half, 0, 0, 360, _bgr(c), 1, cv2.LINE_AA, shift=_SHIFT)
    for (x, y), c in zip(points, colours):
        cv2.circle(canvas, (int(round(x * 2**_SHIFT)), int(round(y * 2**_SHIFT))), radius * 2**_SHIFT, _bgr(c), -1,
                   cv2.LINE_AA, shift=_SHIFT)
        cv2.circle(canvas, (int(round(x * 2**_SHIFT)), int(round(y * 2**_SHIFT))), radius * 2**_SHIFT, (0, 0, 0), 1,
                   cv2.LINE_AA, shift=_SHIFT)
    if not legend:
        return canvas
    body = np.concatenate([canvas, _colour_bar(size[1], vmax_px, std is not None)], axis=1)
    return np.concatenate([_caption(body.shape[1], segmentation, flag), body], axis=0)


def overlay_png(image: XrayImage | np.ndarray, segmentation, **options) -> bytes:
    """PNG bytes of :func:`render_overlay` (``options`` are its keywords); the demo's overlay."""
    ok, png = cv2.imencode(".png", render_overlay(image, segmentation, **options))
    if not ok:  # pragma: no cover - encoding a valid uint8 image does not fail
        raise ChexmaskError("PNG encoding of the overlay failed")
    return png.tobytes()


def overlay_path(folder: str | os.PathLike[str], image_id: str) -> Path:
    """Where an image's overlay goes: ``folder/<id without its image suffix>.png``
    (:func:`chexmask.io.lookup.output_stem`, which rejects ids that would leave `folder`).
    ``segment --overlays`` and ``chexmask overlays`` both name files this way.

    Examples
    --------
    >>> overlay_path("out", "train/patient1/view1_frontal.jpg").as_posix()
    'out/train/patient1/view1_frontal.png'
    """
    return Path(folder) / f"{output_stem(image_id)}.png"


def draw_overlay(
    image: XrayImage | np.ndarray,
    segmentation,
    path: str | os.PathLike[str],
    **options,
) -> Path:
    """Write the overlay of one segmentation as a PNG (the ``segment --overlays`` hook).

    Parameters
    ----------
    image : XrayImage or (H, W) uint8 ndarray
        The image that was segmented.
    segmentation : chexmask.inference.segmenter.Segmentation
    path : str or path-like
        Output file; parent folders are created.
    **options
        Passed to :func:`render_overlay` (``vmax_px``, ``ellipses``, ``flag``, ``max_side``, ``masks``, ``legend``, ``error_radius``).

    Returns
    -------
    Path
        `path`.

    Raises
    ------
    InputError
        See :func:`render_overlay`.
    ChexmaskError
        If the file cannot be written.

    Examples
    --------
    >>> seg = Segmenter(uncertainty=20).segment(image)              # doctest: +SKIP
    >>> est = seg.quality_estimate()                                # doctest: +SKIP
    >>> draw_overlay(image, seg, "overlays/JPCLN001.png", flag=est.flag(),
    ...              error_radius=est.node_radius)                   # doctest: +SKIP
    PosixPath('overlays/JPCLN001.png')
    """
    out = Path(path)
    png = overlay_png(image, segmentation, **options)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(png)
    except OSError as exc:
        raise ChexmaskError(f"cannot write overlay {out}: {exc}") from exc
    return out


def _colours(levels: np.ndarray) -> np.ndarray:
    """(N,) levels in [0, 1] (clipped) -> (N, 3) uint8 BGR of the turbo colour map."""
    idx = np.clip(np.nan_to_num(levels) * 255.0, 0, 255).astype(np.uint8)
    return cv2.applyColorMap(idx[:, None], cv2.COLORMAP_TURBO)[:, 0]


def _bgr(colour: np.ndarray) -> tuple[int, int, int]:
    return int(colour[0]), int(colour[1]), int(colour[2])


def _text(canvas: np.ndarray, text: str, org: tuple[int, int], scale: float = 0.45) -> None:
    cv2.putText(canvas, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1, cv2.LINE_AA)


def _caption(width: int, segmentation, flag: QualityFlag | None) -> np.ndarray:
    strip = np.full((_CAPTION_HEIGHT, width, 3), 32, np.uint8)
    parts = [str(getattr(segmentation, "image_id", ""))]
    if segmentation.uncertainty is not None:
        u = to_1024_frame(segmentation.uncertainty, segmentation.height, segmentation.width)
        parts.append(f"mean node std {u:.1f} px (1024 frame)")
    if flag is not None and flag.estimate is not None:
        parts.append(f"est. Dice lungs {flag.estimate['lungs']:.3f} heart {flag.estimate['heart']:.3f}")
    if flag is not None and flag.rca is not None:
        parts.append(f"Dice RCA {flag.rca:.3f}")
    if flag is not None:
        parts.append(f"flag: {flag.flag}")
    _text(strip, "  |  ".join(p for p in parts if p), (8, _CAPTION_HEIGHT - 9), 0.5)
    return strip


def _colour_bar(height: int, vmax_px: float, active: bool) -> np.ndarray:
    panel = np.full((height, _BAR_WIDTH, 3), 32, np.uint8)
    if not active:
        _text(panel, "no", (8, height // 2 - 8))
        _text(panel, "sampling", (8, height // 2 + 10))
        return panel
    top, bottom = 24, height - 24
    if bottom - top < 8:
        return panel
    levels = np.linspace(1.0, 0.0, bottom - top)
    panel[top:bottom, 10:30] = _colours(levels)[:, None, :]
    _text(panel, f"{vmax_px:g}", (34, top + 5))
    _text(panel, "0 px", (34, bottom))
    _text(panel, "node", (34, (top + bottom) // 2 - 8))
    _text(panel, "std", (34, (top + bottom) // 2 + 10))
    return panel
