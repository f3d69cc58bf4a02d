"""Classical 2-D registration of one chest X-ray onto another (OpenCV): affine, then deformable.

Used by RCA (:mod:`chexmask.quality.rca`) to carry a query image's masks onto a
reference image. The result of :func:`register` is a dense sampling map: for every
pixel of the *fixed* (reference) image, the (x, y) position in the *moving* (query)
image it comes from, so that ``cv2.remap(moving, map_x, map_y)`` resamples the query
in the reference frame with a single interpolation.

Steps
-----
1. **Intensity normalisation** (:func:`prepare`): a linear stretch of the 1st-99th
   percentiles to the full range (washed-out films, with nearly all pixels in a few
   grey levels, otherwise defeat the flow), CLAHE, then a light Gaussian blur, so
   images from different scanners and windowings become comparable.
2. **Affine** (:func:`register_affine`): :func:`cv2.findTransformECC` (enhanced
   correlation coefficient, invariant to global brightness and contrast) on a
   coarse-to-fine pyramid of 32 and 64 px (for a 256-px frame), starting from the
   identity. A level that does not converge keeps the previous level's estimate.
3. **Deformable** (:func:`register_deformable`): DIS optical flow
   (:class:`cv2.DISOpticalFlow`, fast preset) between the fixed image and the affinely
   warped moving image, smoothed with a Gaussian (sigma = S / 64) so the field stays
   anatomical (lung and heart outlines move together; ribs do not drive it).
4. **Quality** (:attr:`Warp.ncc`): the normalised cross-correlation of the fixed image
   and the warped moving image; a failed registration scores near 0 (RCA drops it).

Images are ``(S, S)`` uint8 arrays, row-major; coordinates are (x, y) = (column, row).
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

__all__ = ["Warp", "METHODS", "prepare", "register_affine", "register_deformable", "register", "warp_mask"]

#: Registration methods: affine only, or affine followed by a deformable refinement.
METHODS: tuple[str, ...] = ("affine", "affine+dis", "affine+farneback")

_CLAHE_CLIP = 2.0
#: Percentiles stretched to 0 and 255 before CLAHE.
_STRETCH = (1.0, 99.0)
#: ECC pyramid: two levels, the finest at most 64 px. Finer levels (128, 256 px) cost 4x
#: and 16x and do not change RCA (measured on JSRT val): the DIS flow does the fine work.
_ECC_FINEST = 64
_ECC_LEVELS = 2


@dataclass(frozen=True)
class Warp:
    """A dense map from fixed-image pixels to moving-image positions.

    Attributes
    ----------
    map_x, map_y : (S, S) float32 ndarray
        Column and row in the moving image of each fixed-image pixel.
    affine : (2, 3) float64 ndarray
        The affine part (fixed (x, y, 1) -> moving (x, y)).
    ncc : float
        Normalised cross-correlation (-1 to 1) of the prepared fixed image and the
        prepared moving image resampled by the map: near 1 for a good registration,
        near 0 for a failed one. NaN when not computed.
    """

    map_x: np.ndarray
    map_y: np.ndarray
    affine: np.ndarray
    ncc: float = float("nan")


def prepare(image: np.ndarray, stretch: bool = True) -> np.ndarray:
    """Normalise an image's intensities for registration.

    Parameters
    ----------
    image : (S, S) uint8 ndarray
    stretch : bool
        Stretch the percentiles first; False gives the CLAHE-only normalisation of
        earlier versions (for comparisons: it fails on washed-out films).

    Returns
    -------
    (S, S) uint8 ndarray
        The 1st-99th percentile range stretched to 0-255, CLAHE-equalised (tiles of
        about 32 px) and blurred with sigma = S / 256.
    """
    image = np.asarray(image)
    if image.ndim != 2 or image.dtype != np.uint8:
        raise ValueError(f"image must be a 2-D uint8 array, got {image.dtype} {image.shape}")
    lo, hi = np.percentile(image, _STRETCH) if stretch else (0, 0)
    if hi > lo:
        image = cv2.LUT(image, np.clip((np.arange(256) - lo) * (255.0 / (hi - lo)), 0, 255).astype(np.uint8))
    tiles = max(2, image.shape[0] // 32)
    out = cv2.createCLAHE(clipLimit=_CLAHE_CLIP, tileGridSize=(tiles, tiles)).apply(image)
    sigma = max(image.shape) / 256
    return cv2.GaussianBlur(out, (0, 0), sigma)


def register_affine(
    fixed: np.ndarray, moving: np.ndarray, levels: int = _ECC_LEVELS, iterations: int = 50, finest: int = _ECC_FINEST
) -> np.ndarray:
    """Affine transform that maps fixed-image (x, y) to moving-image (x, y), by ECC.

    Parameters
    ----------
    fixed, moving : (S, S) uint8 ndarray
        Prepared images (see :func:`prepare`) of the same size.
    levels : int
        Pyramid levels, each half the size of the next.
    iterations : int
        ECC iterations per level.
    finest : int
        Largest side of the finest level, pixels (the images are halved until they
        fit); the coarsest is that divided by ``2**(levels - 1)``.

    Returns
    -------
    (2, 3) float64 ndarray
        ``moving_xy = A[:, :2] @ fixed_xy + A[:, 2]``; the identity if no level converged.
    """
    if fixed.shape != moving.shape:
        raise ValueError(f"fixed and moving images differ in size: {fixed.shape} vs {moving.shape}")
    warp = np.eye(2, 3, dtype=np.float32)
    criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, iterations, 1e-4)
    skip = 0
    while max(fixed.shape) // 2**skip > finest:
        skip += 1
    for level in range(skip + levels - 1, skip - 1, -1):
        f = 2**level
        size = (fixed.shape[1] // f, fixed.shape[0] // f)
        fix = cv2.resize(fixed, size, interpolation=cv2.INTER_AREA) if f > 1 else fixed
        mov = cv2.resize(moving, size, interpolation=cv2.INTER_AREA) if f > 1 else moving
        guess = warp.copy()
        guess[:, 2] /= f
        try:
            _, found = cv2.findTransformECC(fix, mov, guess, cv2.MOTION_AFFINE, criteria, None, 1)
        except cv2.error:  # no convergence at this level: keep the coarser estimate
            continue
        found[:, 2] *= f
        warp = found
    return warp.astype(np.float64)


def _affine_grid(affine: np.ndarray, shape: tuple[int, int], flow: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    ys, xs = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    if flow is not None:
        xs = xs + flow[..., 0]
        ys = ys + flow[..., 1]
    a = affine.astype(np.float32)
    return a[0, 0] * xs + a[0, 1] * ys + a[0, 2], a[1, 0] * xs + a[1, 1] * ys + a[1, 2]


def register_deformable(fixed: np.ndarray, moved: np.ndarray, method: str = "dis", smooth: float | None = None) -> np.ndarray:
    """Dense displacement from the fixed image into an already affinely aligned moving image.

    Parameters
    ----------
    fixed, moved : (S, S) uint8 ndarray
        Prepared fixed image and the moving image resampled by the affine part.
    method : {"dis", "farneback"}
        OpenCV optical flow algorithm (DIS with its fast preset: as accurate for RCA as
        the medium one at a fifth of the time).
    smooth : float, optional
        Sigma (pixels) of the Gaussian that regularises the field; default ``S / 64``.

    Returns
    -------
    (S, S, 2) float32 ndarray
        ``flow[y, x] = (dx, dy)``: fixed pixel (x, y) matches moved position (x + dx, y + dy).
    """
    if method == "dis":
        dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_FAST)
        flow = dis.calc(fixed, moved, None)
    elif method == "farneback":
        flow = cv2.calcOpticalFlowFarneback(fixed, moved, None, 0.5, 4, 21, 5, 7, 1.5, cv2.OPTFLOW_FARNEBACK_GAUSSIAN)
    else:
        raise ValueError(f"unknown deformable method {method!r}; expected 'dis' or 'farneback'")
    sigma = fixed.shape[0] / 64 if smooth is None else smooth
    if sigma > 0:
        flow = cv2.GaussianBlur(flow, (0, 0), sigma)
    return flow.astype(np.float32)


def register(fixed: np.ndarray, moving: np.ndarray, method: str = "affine+dis", prepared: bool = False) -> Warp:
    """Register a moving image onto a fixed image.

    Parameters
    ----------
    fixed, moving : (S, S) uint8 ndarray
        Images of the same size (e.g. both :func:`chexmask.preprocess.pad_resize`-d to 256).
    method : str
        One of :data:`METHODS`.
    prepared : bool
        True if both images already went through :func:`prepare`.

    Returns
    -------
    Warp
        Pass it to :func:`warp_mask` to carry a moving-image mask into the fixed frame.

    Raises
    ------
    ValueError
        Unknown method, or images of different sizes or types.

    Examples
    --------
    >>> img = np.zeros((64, 64), np.uint8); img[20:44, 16:40] = 200
    >>> moved = np.roll(img, 3, axis=1)
    >>> w = register(img, moved, "affine")
    >>> round(float(w.affine[0, 2]))
    3
    """
    if method not in METHODS:
        raise ValueError(f"unknown registration method {method!r}; expected one of {list(METHODS)}")
    if not prepared:
        fixed, moving = prepare(fixed), prepare(moving)
    if fixed.shape != moving.shape:
        raise ValueError(f"fixed and moving images differ in size: {fixed.shape} vs {moving.shape}")
    affine = register_affine(fixed, moving)
    flow = None
    if method != "affine":
        moved = cv2.warpAffine(moving, affine, fixed.shape[::-1], flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP)
        flow = register_deformable(fixed, moved, method.split("+")[1])
    map_x, map_y = _affine_grid(affine, fixed.shape, flow)
    warped = cv2.remap(moving, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return Warp(map_x, map_y, affine, _ncc(fixed, warped))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float32).ravel()
    b = b.astype(np.float32).ravel()
    a -= a.mean()
    b -= b.mean()
    norm = float(np.sqrt(np.dot(a, a) * np.dot(b, b)))
    return float(np.dot(a, b) / norm) if norm > 0 else 0.0


def warp_mask(mask: np.ndarray, warp: Warp) -> np.ndarray:
    """Resample a moving-image mask into the fixed frame.

    Parameters
    ----------
    mask : (S, S) array_like
        Nonzero is foreground.
    warp : Warp

    Returns
    -------
    (S, S) bool ndarray
        Linear interpolation of the mask, thresholded at one half; outside the moving
        image is background.
    """
    m = (np.asarray(mask) != 0).astype(np.float32)
    out = cv2.remap(m, warp.map_x, warp.map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    return out >= 0.5
