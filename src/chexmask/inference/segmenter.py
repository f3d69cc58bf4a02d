"""The engine: :class:`Segmenter` loads a model once and segments images.

Data flows one way: read -> preprocess (pad, resize) -> predict (batched, with
optional latent sampling) -> postprocess (landmarks back to the original frame,
filled into masks) -> a :class:`Segmentation` per image.

Masks are filled directly in the original frame from the landmarks rounded to whole
pixels, the same landmarks written to the table, so filling a written row's
``Landmarks`` reproduces its masks exactly.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from chexmask._errors import ChexmaskError, InputError
from chexmask.anatomy import ALL_ORGANS, N_NODES, ORGANS, organ_slices
from chexmask.estimate.contour_contrast import weak_lung_edges
from chexmask.formats.landmarks import node_uncertainty
from chexmask.inference.plan import image_row_id, row_ids
from chexmask.inference.predictor import BatchPrediction, image_seed, predict_batch
from chexmask.io.model_frame import model_frame, read_model_frame
from chexmask.io.read import XrayImage
from chexmask.model.default import DEFAULT_DEVICE, DEFAULT_UNCERTAINTY
from chexmask.model.weights import DEFAULT_MODEL, load_model
from chexmask.preprocess import Geometry, to_original

__all__ = ["Segmenter", "Segmentation", "Failure"]

log = logging.getLogger(__name__)


@dataclass
class Segmentation:
    """The result for one image, in the ORIGINAL image frame.

    Attributes
    ----------
    image_id, path : str
    height, width : int
        Original image size.
    landmarks : (120, 2) or (166, 2) float ndarray
        (x, y) = (col, row) of the right lung (44), left lung (50) and heart (26) nodes,
        then, with ``Segmenter(clavicles=True)``, the right and left clavicle (23 each).
    latent_mu, latent_sigma : (latent_dim,) ndarray
        The encoder's posterior.
    node_mean, node_std : (n_nodes, 2) ndarray or None
        Mean and standard deviation (x, y) of the decoded latent samples, in original
        pixels (None without uncertainty sampling).
    model_sha256 : str or None
        SHA256 of the weights that made it (chooses the quality estimate's variant).
    weak_lung_edges : float or None
        Fraction of the lung contour nodes with no edge across the contour in the model
        frame the network saw (:func:`chexmask.estimate.contour_contrast.weak_lung_edges`),
        a feature of the quality estimate; None for results made without those pixels.
    """

    image_id: str
    path: str | None
    height: int
    width: int
    landmarks: np.ndarray
    latent_mu: np.ndarray
    latent_sigma: np.ndarray
    node_mean: np.ndarray | None = None
    node_std: np.ndarray | None = None
    model_sha256: str | None = None
    weak_lung_edges: float | None = None

    @property
    def landmarks_int(self) -> np.ndarray:
        """Landmarks rounded to whole pixels: what tables store and masks are filled from."""
        return np.rint(self.landmarks).astype(np.int64)

    @property
    def organs(self) -> tuple[str, ...]:
        """The organs of :attr:`landmarks`, in node order."""
        return ALL_ORGANS if len(self.landmarks) > N_NODES else ORGANS

    def masks(self) -> dict[str, np.ndarray]:
        """Filled organ masks ``{organ: (H, W) uint8 {0, 255}}`` at the original size (clavicles too when predicted)."""
        from chexmask.masks.fill import landmarks_to_masks

        return landmarks_to_masks(self.landmarks_int, self.height, self.width)

    @property
    def node_uncertainty(self) -> np.ndarray | None:
        """Per-node predictive std ``sqrt(std_x^2 + std_y^2)`` in original pixels, (n_nodes,).

        :func:`chexmask.formats.landmarks.node_uncertainty` of :attr:`node_std` (how it relates
        to CheXmask-U's ``(std_x + std_y) / 2`` is said there).
        """
        return None if self.node_std is None else node_uncertainty(self.node_std)

    @property
    def uncertainty(self) -> float | None:
        """Mean over the 120 CheXmask nodes of :attr:`node_uncertainty` (pixels).

        The clavicles are left out, so the value is the same with and without them.
        """
        u = self.node_uncertainty
        return None if u is None else float(u[:N_NODES].mean())

    def organ_uncertainty(self) -> dict[str, float] | None:
        """Mean node uncertainty of each organ (pixels)."""
        u = self.node_uncertainty
        return None if u is None else {o: float(u[s].mean()) for o, s in organ_slices(organs=self.organs).items()}

    def quality_estimate(self):
        """Estimated Dice per organ group and Node Error Radius, without ground truth.

        Returns
        -------
        chexmask.estimate.estimator.QualityEstimate
            ``.dice`` ``{"lungs", "heart"}`` (the ``Estimated Dice ...`` columns),
            ``.node_radius`` (120,) original pixels or None (without sampling, or for
            weights the estimator was not fitted on), ``.variant``.
        """
        from chexmask.estimate.estimator import estimate_quality

        return estimate_quality(self, self.model_sha256)

    def measures(self, pixel_spacing: tuple[float, float] | None = None) -> dict[str, float]:
        """Cardiothoracic ratio, organ areas, widths and heights of :meth:`masks`.

        Parameters
        ----------
        pixel_spacing : (float, float), optional
            ``(row, column)`` mm of the image, e.g. ``read_image(path).pixel_spacing``
            (DICOM PixelSpacing, else ImagerPixelSpacing). Without it the mm and mm2
            values are NaN.

        Returns
        -------
        dict of str to float
            :data:`chexmask.measures.MEASURE_COLUMNS` -> value, the numbers of the
            ``chexmask segment`` columns (unrounded); see
            :func:`chexmask.measures.measure_masks`.
        """
        from chexmask.measures import measure_masks

        return measure_masks(self.masks(), pixel_spacing)


@dataclass
class Failure:
    """An input that could not be segmented: which, and why."""

    path: str
    error: str
    message: str


class Segmenter:
    """Segment chest X-rays into lungs and heart with a shipped HybridGNet.

    Parameters
    ----------
    weights : str or Path
        A shipped model name (see ``chexmask.model.weights.registry()``) or a
        ``.safetensors`` file written by ``chexmask train``.
    device : str
        ``"auto"`` (the default, as in every command: CUDA when available, else the CPU),
        ``"cpu"``, ``"cuda"``, ``"cuda:1"``...
    uncertainty : int
        Latent samples per image for predictive uncertainty, the Node Error Radius and the
        full quality estimate (0 = off); 50, as every command.
    seed : int
        Run seed of the latent samples (each image's noise is also seeded by a hash of
        its pixels, so results never depend on the file's name or place).
    batch_size : int
        Images per forward pass.
    micro_batch : int, optional
        Run the model on fixed-size chunks of this many images (zero-padded), so every
        image's result is bitwise independent of the batch it came in (see
        :func:`~chexmask.inference.predictor.predict_batch`). The dataset pipeline
        sets it; ``None`` (default) runs each batch as it is.
    amp : bool
        Mixed precision (float16 autocast) on CUDA; ignored on the CPU.
    clavicles : bool
        Also return the clavicle landmarks (and masks); the model must predict them.
        The 120 CheXmask nodes and the uncertainty are the same either way.
    backend : {"auto", "openvino", "torch"}
        What runs the network. ``"auto"`` (default): OpenVINO on the CPU when it is
        installed (about 2x torch there, the same results within 2e-5 px:
        :mod:`chexmask.inference.openvino_net`), torch otherwise and on CUDA. The choice
        is :attr:`backend`, recorded in ``run.json``.

    Examples
    --------
    >>> seg = Segmenter(uncertainty=0)                      # doctest: +SKIP
    >>> result = seg.segment("chest.png")                   # doctest: +SKIP
    >>> result.masks()["heart"].shape == (result.height, result.width)  # doctest: +SKIP
    True
    """

    def __init__(
        self,
        weights: str | Path = DEFAULT_MODEL,
        device: str = DEFAULT_DEVICE,
        uncertainty: int = DEFAULT_UNCERTAINTY,
        seed: int = 0,
        batch_size: int = 8,
        micro_batch: int | None = None,
        amp: bool = False,
        clavicles: bool = False,
        backend: str = "auto",
    ) -> None:
        if uncertainty < 0:
            raise ValueError(f"uncertainty must be >= 0 samples, got {uncertainty}")
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.device = _resolve_device(device)
        self.model, self.info = load_model(weights, self.device)
        self.net, self.backend = _network(self.model, self.info["sha256"], self.device, backend)
        self.uncertainty = uncertainty
        self.seed = seed
        self.batch_size = batch_size
        self.micro_batch = micro_batch
        self.amp = bool(amp) and self.device.type == "cuda"
        if clavicles and self.model.n_nodes <= N_NODES:
            raise ChexmaskError(f"model {weights!s} does not predict the clavicles; use a model trained with --clavicles")
        self.clavicles = bool(clavicles)

    @property
    def input_size(self) -> int:
        """Side of the square model frame, in pixels."""
        return self.model.config.input_size

    def preprocess(self, image: XrayImage) -> tuple[np.ndarray, Geometry]:
        """The image's model frame (:mod:`chexmask.io.model_frame`) as float32 [0, 1] pixels, and its geometry."""
        square, geometry = model_frame(image, self.input_size)
        return square.astype(np.float32) / 255.0, geometry

    def predict(self, inputs: np.ndarray) -> BatchPrediction:
        """Run the model on preprocessed ``(B, S, S)`` images.

        ``inputs`` are float32 in [0, 1] (:meth:`preprocess`), or the padded and resized
        uint8 pixels, which are divided by 255 on the device (the same float32 values,
        a quarter of the transfer). On CUDA the batch goes through pinned memory. Each
        image's latent samples are seeded by its pixels and :attr:`seed`. The clavicle
        nodes are dropped unless :attr:`clavicles` is set.
        """
        seeds = [image_seed(im, self.seed) for im in inputs] if self.uncertainty else [0] * len(inputs)
        x = torch.from_numpy(np.ascontiguousarray(inputs))
        if self.device.type == "cuda":
            x = x.pin_memory().to(self.device, non_blocking=True)
        else:
            x = x.to(self.device)
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        x = x[:, None].contiguous(memory_format=torch.channels_last)
        with torch.autocast(self.device.type, dtype=torch.float16, enabled=self.amp):
            pred = predict_batch(self.net, x, seeds, self.uncertainty, micro_batch=self.micro_batch)
        if not self.clavicles:
            for name in ("points", "sample_mean", "sample_std"):
                if getattr(pred, name) is not None:
                    setattr(pred, name, getattr(pred, name)[:, :N_NODES])
        return pred

    def postprocess(self, pred: BatchPrediction, index: int, image: XrayImage, geometry: Geometry, pixels: np.ndarray) -> Segmentation:
        """Map one image's prediction back to its original frame; measure its contours' edges on the model-frame ``pixels``."""
        size = self.input_size
        node_mean = node_std = None
        if pred.sample_mean is not None:
            node_mean = to_original(pred.sample_mean[index] * size, geometry)
            node_std = pred.sample_std[index] * size / geometry.scale
        return Segmentation(
            image_id=image.image_id,
            path=image.path,
            height=image.height,
            width=image.width,
            landmarks=to_original(pred.points[index] * size, geometry),
            latent_mu=pred.mu[index],
            latent_sigma=pred.sigma[index],
            node_mean=node_mean,
            node_std=node_std,
            model_sha256=self.info["sha256"],
            weak_lung_edges=weak_lung_edges(pixels, pred.points[index] * size),
        )

    def segment_images(self, images: Sequence[XrayImage]) -> list[Segmentation]:
        """Segment already-read images, ``batch_size`` at a time."""
        out: list[Segmentation] = []
        for start in range(0, len(images), self.batch_size):
            out.extend(self.segment_frames([(_meta(im), *self.preprocess(im)) for im in images[start : start + self.batch_size]]))
        return out

    def segment(self, image: np.ndarray | XrayImage | str | os.PathLike, image_id: str | None = None) -> Segmentation:
        """Segment one image: a path, an :class:`XrayImage`, or a 2-D uint8 array.

        The result's ``image_id``: a file's name with its extension, the id ``chexmask
        segment`` gives it (:func:`chexmask.inference.plan.row_ids`), whether it is given
        as a path or as the :class:`XrayImage` :func:`~chexmask.io.read.read_image` made of
        it; an :class:`XrayImage` whose ``image_id`` was set otherwise keeps it; for an
        array, ``image_id`` (default ``"array"``).

        Raises
        ------
        UnreadableImageError
            The file cannot be read as an image.
        """
        if isinstance(image, (str, os.PathLike)):
            return self.segment_frames([self._read_frame(image)])[0]
        if isinstance(image, np.ndarray):
            image = _array_image(image, image_id or "array")
        return self.segment_images([image])[0]

    def segment_files(self, paths: Iterable[str | os.PathLike]) -> Iterator[Segmentation | Failure]:
        """Read and segment files one batch at a time; unreadable files yield a :class:`Failure`.

        The order of the results is the order of ``paths``; each is named by its file name
        (a stream has no common folder to name paths from, so files of several folders
        with one name share an id, which ``chexmask segment`` tells apart). Files are read
        straight into their model frames (:func:`chexmask.io.model_frame.read_model_frame`),
        as the dataset pipeline reads them.
        """
        pending: list[tuple | Failure] = []  # in input order; failures wait for their batch

        def flush() -> Iterator[Segmentation | Failure]:
            segs = iter(self.segment_frames([p for p in pending if not isinstance(p, Failure)]))
            for p in pending:
                yield p if isinstance(p, Failure) else next(segs)
            pending.clear()

        n_images = 0
        for path in paths:
            try:
                pending.append(self._read_frame(path))
                n_images += 1
            except InputError as exc:
                log.warning("%s", exc)
                pending.append(Failure(str(path), type(exc).__name__, exc.reason))
            if n_images == self.batch_size:
                yield from flush()
                n_images = 0
        yield from flush()

    def _read_frame(self, path: str | os.PathLike) -> tuple:
        """``(FrameMeta, model-frame uint8 pixels, Geometry)`` of a file, never decoding a large JPEG in full."""
        square, geometry, _ = read_model_frame(path, self.input_size)
        return FrameMeta(row_ids([Path(path)])[0], os.fspath(path), geometry.height, geometry.width), square, geometry

    def segment_frames(self, frames: list[tuple]) -> list[Segmentation]:
        """Segment one batch of ``(XrayImage or FrameMeta, model-frame pixels, Geometry)`` triples.

        The pixels are :meth:`preprocess`'s float32 or the model frame's uint8 (the same
        values); every way into the model (the API, the dataset pipeline, Ray) ends here.
        """
        if not frames:
            return []
        pred = self.predict(np.stack([f[1] for f in frames]))
        return [self.postprocess(pred, i, meta, g, pixels) for i, (meta, pixels, g) in enumerate(frames)]


class FrameMeta(NamedTuple):
    """What :meth:`Segmenter.postprocess` needs of an image besides its model frame."""

    image_id: str
    path: str
    height: int
    width: int


def _meta(image: XrayImage) -> FrameMeta:
    """An image's :class:`FrameMeta`: read from a file and not renamed, it is named as the file (the row id rule)."""
    return FrameMeta(image_row_id(image), image.path, image.height, image.width)


def _array_image(pixels: np.ndarray, image_id: str) -> XrayImage:
    if pixels.ndim != 2 or pixels.dtype != np.uint8:
        raise InputError(image_id, f"array images must be 2-D uint8 grayscale, got {pixels.dtype} {pixels.shape}")
    return XrayImage(pixels, "", image_id, pixels.shape[0], pixels.shape[1], "MONOCHROME2", None, 8)


BACKENDS = ("auto", "openvino", "torch")


def _network(model, sha256: str, device: torch.device, backend: str):
    """What runs the network, and its description: ``(net, "openvino 2026.4.1 f32")``."""
    from chexmask.inference.openvino_net import OpenVINONet, openvino_version

    if backend not in BACKENDS:
        raise ChexmaskError(f"--backend {backend!r}: expected one of {list(BACKENDS)}")
    version = openvino_version()
    if backend == "openvino" and version is None:
        raise ChexmaskError("--backend openvino runs on the CPU only, with OpenVINO installed (pip install openvino)")
    if backend == "openvino" and device.type != "cpu":
        raise ChexmaskError("--backend openvino runs on the CPU only; use --backend torch on CUDA")
    if backend != "torch" and device.type == "cpu" and version is not None:
        try:
            return OpenVINONet(model, sha256), f"openvino {version} f32"
        except (OSError, RuntimeError) as exc:  # e.g. an unwritable cache, a CPU OpenVINO does not support
            if backend == "openvino":
                raise ChexmaskError(f"--backend openvino: {exc}") from exc
            log.warning("OpenVINO could not load the network (%s); using torch", str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    # torch on the CPU: channels-last convolutions under inference_mode, faster than torch's
    # default with the same landmarks (measured: docs/segment.md, benchmarks/bench_backends.py).
    model.to(memory_format=torch.channels_last)
    return model, f"torch {torch.__version__} channels_last inference_mode"


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        raise ChexmaskError(f"--device {device!r} is not a torch device (use cpu, cuda, cuda:N or auto)") from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ChexmaskError(f"--device {device!r}: CUDA is not available on this machine; use --device cpu")
    return dev


