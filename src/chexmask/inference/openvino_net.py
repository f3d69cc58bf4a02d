"""The HybridGNet network run by OpenVINO on the CPU (the default CPU backend).

OpenVINO runs the same float32 network about twice as fast as torch on the CPU, with
landmarks within 2e-5 px and node standard deviations within 2e-5 px of torch
(``benchmarks/bench_backends.py``; the bar is 0.05 px and 1e-3 px). :class:`OpenVINONet`
has the two methods the predictor calls on a torch model, ``encode`` and ``decode``,
so :func:`chexmask.inference.predictor.predict_batch` runs either unchanged.

Three networks are exported from the torch model to ONNX: the encoder, the decoder of a
batch of latents with their own feature maps, and the decoder of many latent samples of
one image sharing its feature maps (no copy per sample). Exporting traces the model
(about ten seconds), so the networks are saved under
``cache_dir()/openvino/<weights sha256>-<code digest>-torch<version>/`` and read back in about a second
by later runs (``CHEXMASK_CACHE`` moves the cache; deleting it is always safe).
"""

from __future__ import annotations

import logging
import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from chexmask._cache import cache_dir

__all__ = ["OpenVINONet", "openvino_version", "map_names"]

log = logging.getLogger(__name__)

_PARTS = ("encoder", "decoder", "sample_decoder")


def openvino_version() -> str | None:
    """The installed OpenVINO release (``"2026.4.1"``), or None when it cannot be imported."""
    try:
        import openvino
    except ImportError:
        return None
    return openvino.__version__.split("-")[0]


def map_names(model) -> list[str]:
    """Names of the feature maps passed from the exported encoder to the decoders, in
    :meth:`HybridGNet.encode`'s order: ``deep``, ``upper``, then ``level<N>`` per refine stage."""
    return ["deep", "upper", *(f"level{level}" for level in model.config.refine_levels)]


class _Encoder(torch.nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, x):
        mu, logvar, feats = self.model.encode(x)
        return mu, logvar, *feats


class _Decoder(torch.nn.Module):
    def __init__(self, model) -> None:
        super().__init__()
        self.model = model

    def forward(self, z, *feats):
        return self.model.decode(z, list(feats))[0]


class OpenVINONet:
    """A HybridGNet compiled for the CPU by OpenVINO, called like the torch model.

    Parameters
    ----------
    model : chexmask.model.hybridgnet.HybridGNet
        The torch model, in eval mode (its weights are what is converted).
    sha256 : str
        SHA256 of the weights file: the cache key.
    threads : int, optional
        Inference threads (default: torch's current number).
    """

    def __init__(self, model, sha256: str, threads: int | None = None) -> None:
        import openvino as ov

        self.version = openvino_version()
        self.threads = int(threads or torch.get_num_threads())
        folder = cache_dir() / "openvino" / f"{sha256}-{_code_digest()}-torch{torch.__version__.split('+')[0]}"
        core = ov.Core()
        if not _complete(folder):
            _convert(model, folder)
        config = {"INFERENCE_NUM_THREADS": self.threads, "INFERENCE_PRECISION_HINT": "f32"}
        self._encoder, self._decoder, self._sample_decoder = (
            core.compile_model(core.read_model(folder / f"{p}.onnx"), "CPU", config) for p in _PARTS
        )

    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
        """``(B, 1, S, S)`` images -> (mu, logvar, the decoder's feature maps), as the torch model."""
        mu, logvar, *feats = _run(self._encoder, [images])
        return mu, logvar, feats

    def decode(self, z: torch.Tensor, feats: list[torch.Tensor]) -> tuple[torch.Tensor, None]:
        """Decode latents with their feature maps (batch-1 maps are shared by every latent)."""
        batch = feats[0].shape[0]
        if batch == z.shape[0]:
            return _run(self._decoder, [z, *feats])[0], None
        if batch != 1:
            raise ValueError(f"decode: {z.shape[0]} latents but feature maps of batch {batch}")
        return _run(self._sample_decoder, [z, *feats])[0], None


def _code_digest() -> str:
    """A digest of the code that defines the exported networks: a changed model or
    wrapper never reuses an export made by other code for the same weights."""
    import hashlib

    from chexmask.model import hybridgnet, layers

    h = hashlib.sha256()
    for module in (hybridgnet, layers, sys.modules[__name__]):
        h.update(Path(module.__file__).read_bytes())
    return h.hexdigest()[:12]


def _run(compiled, inputs: list[torch.Tensor]) -> list[torch.Tensor]:
    # The arrays OpenVINO returns are views of its output buffers, overwritten by the
    # next call: copy them out.
    arrays = [np.ascontiguousarray(t.detach().float().cpu().numpy()) for t in inputs]
    return [torch.from_numpy(np.array(v, copy=True)) for v in compiled(arrays).values()]


def _convert(model, folder: Path) -> None:
    """Export the torch model as the three ONNX networks, atomically, into `folder`.

    The export is torch's own (``torch.onnx.export``), which OpenVINO's runtime reads
    directly; OpenVINO's conversion API is not used because it sends usage telemetry by
    default, which has no place on a hospital's machine.
    """
    log.info("exporting the network for OpenVINO (once per weights; cached in %s)", folder)
    s = model.config.input_size
    x = torch.zeros(2, 1, s, s)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on shape checks, which do not apply here
            mu, _, feats = model.encode(x)
            names, batch = map_names(model), {0: "batch"}
            exports = {
                "encoder": (_Encoder(model), (x,), ["x"], ["mu", "logvar", *names],
                            dict.fromkeys(["x", "mu", "logvar", *names], batch)),
                "decoder": (_Decoder(model), (mu, *feats), ["z", *names], ["points"],
                            dict.fromkeys(["z", *names, "points"], batch)),
                "sample_decoder": (_Decoder(model), (mu, *(f[:1] for f in feats)), ["z", *names], ["points"],
                                   {"z": batch, "points": batch}),
            }
            for name, (net, args, inputs, outputs, axes) in exports.items():
                # eval(): the exporter restores the wrapper's mode afterwards, and a wrapper
                # in training mode would switch the model's BatchNorm with it
                torch.onnx.export(net.eval(), args, str(tmp / f"{name}.onnx"), input_names=inputs, output_names=outputs,
                                  dynamic_axes=axes, opset_version=17, dynamo=False)
        if folder.exists() and not _complete(folder):
            shutil.rmtree(folder)  # left by a run killed while saving
        try:
            os.replace(tmp, folder)
        except OSError:  # another process saved its copy first: keep that one
            if not _complete(folder):
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _complete(folder: Path) -> bool:
    return all((folder / f"{p}.onnx").exists() for p in _PARTS)
