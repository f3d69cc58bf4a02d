"""CPU backends for the model: torch eager, inference_mode + channels_last, torch.compile, ONNX Runtime, OpenVINO.

Usage: python benchmarks/bench_backends.py [--weights NAME] [--batch 8] [--samples 50] [--threads 2]

Measures, in one process on the same random-free inputs (JSRT-like images are not needed
for speed; the accuracy check uses the shipped weights on JSRT images when given
``--images``), model-only images/s of the deterministic path (encoder + z = mu decoder)
and of the 50-sample decoder, and the largest landmark difference (px, 256 frame) and
uncertainty difference against torch eager. torch.compile compiles ``encode`` and
``decode`` with the default (inductor) backend; its compile time is printed, not timed. Last,
the 50-sample decoder of one image two ways, for torch and OpenVINO: with the image's maps
copied to every sample (each sample samples and projects its own skip features, as the
decoder did before) and shared (the skip projection is one convolution per image,
``layers.project_roi``, what the pipeline runs). ONNX Runtime runs the encoder and the decoder
exported with ``torch.onnx.export`` (opset 17); OpenVINO is chexmask's own backend
(:class:`chexmask.inference.openvino_net.OpenVINONet`, float32). A backend becomes the default only if
landmarks stay within 0.05 px and uncertainty within 1e-3 px of torch.
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

from chexmask.inference.openvino_net import _Decoder, _Encoder, map_names  # the wrappers the backend converts
from chexmask.model.default import DEFAULT_MODEL
from chexmask.model.weights import load_model


def _time(fn, seconds: float = 3.0) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n == 0:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=DEFAULT_MODEL)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, info = load_model(args.weights)
    s = model.config.input_size
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((args.batch, 1, s, s), dtype=np.float32))
    eps = torch.from_numpy(rng.standard_normal((args.samples, model.config.latent_dim), dtype=np.float32))
    print(f"{info['name']} {s} px; batch {args.batch}; {args.samples} samples; {platform.machine()} CPU, {args.threads} threads; "
          f"{datetime.now(timezone.utc).isoformat(timespec='minutes')}; torch {torch.__version__}")

    def torch_run(x, net=model):
        mu, logvar, feats = net.encode(x)
        points, _ = net.decode(mu, feats)
        sigma = torch.exp(0.5 * logvar)
        own = [f[:1] for f in feats]
        samples = net.decode(mu[0] + eps * sigma[0], own)[0]
        return points.numpy(), samples.std(0).numpy()

    results = {}
    with torch.no_grad():
        ref = torch_run(x)
        results["torch eager (no_grad)"] = (_time(lambda: torch_run(x)), ref)
    with torch.inference_mode():
        model_cl = model.to(memory_format=torch.channels_last)
        xc = x.contiguous(memory_format=torch.channels_last)
        out = torch_run(xc)
        results["torch inference_mode + channels_last"] = (_time(lambda: torch_run(xc)), out)
        model.to(memory_format=torch.contiguous_format)
        del model_cl

    try:
        from types import SimpleNamespace

        compiled = SimpleNamespace(encode=torch.compile(model.encode), decode=torch.compile(model.decode))
        with torch.inference_mode():
            t0 = time.perf_counter()
            out = torch_run(x, compiled)
            print(f"torch.compile: first call (compilation) {time.perf_counter() - t0:.1f} s")
            results["torch.compile (inductor)"] = (_time(lambda: torch_run(x, compiled)), out)
    except Exception as exc:  # report, do not hide: inductor needs a C++ compiler
        print(f"torch.compile: not measured ({type(exc).__name__}: {str(exc)[:200]})")

    try:
        import onnxruntime as ort

        with tempfile.TemporaryDirectory() as tmp, torch.no_grad():
            enc_path, dec_path = Path(tmp) / "enc.onnx", Path(tmp) / "dec.onnx"
            mu, logvar, feats = model.encode(x)
            names = map_names(model)
            torch.onnx.export(_Encoder(model).eval(), (x,), str(enc_path), opset_version=17, dynamo=False,
                              input_names=["x"], output_names=["mu", "logvar", *names],
                              dynamic_axes=dict.fromkeys(["x", "mu", "logvar", *names], {0: "b"}))
            torch.onnx.export(_Decoder(model).eval(), (mu, *feats), str(dec_path), opset_version=17, dynamo=False,
                              input_names=["z", *names], output_names=["points"],
                              dynamic_axes={"z": {0: "n"}, **dict.fromkeys(names, {0: "m"}), "points": {0: "n"}})
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = args.threads
            enc = ort.InferenceSession(str(enc_path), opts, providers=["CPUExecutionProvider"])
            dec = ort.InferenceSession(str(dec_path), opts, providers=["CPUExecutionProvider"])
            xn, epsn = x.numpy(), eps.numpy()

            def ort_run():
                mu, logvar, *maps = enc.run(None, {"x": xn})
                points = dec.run(None, {"z": mu, **dict(zip(names, maps))})[0]
                z = mu[0] + epsn * np.exp(0.5 * logvar[0])
                n = len(z)  # the exported graph does not broadcast one image's features over the samples
                samples = dec.run(None, {"z": z, **{k: np.repeat(m[:1], n, 0) for k, m in zip(names, maps)}})[0]
                return points, samples.std(0, ddof=1)

            out = ort_run()
            results[f"onnxruntime {ort.__version__}"] = (_time(ort_run), out)
    except Exception as exc:  # report, do not hide: the comparison says why a backend is missing
        print(f"onnxruntime: not measured ({type(exc).__name__}: {str(exc)[:200]})")

    nets = {"torch": model}
    try:
        from chexmask.inference.openvino_net import OpenVINONet

        net = nets["openvino"] = OpenVINONet(model, info["sha256"], args.threads)  # the shipped backend, from its cache
        with torch.no_grad():
            out = torch_run(x, net)
            results[f"openvino {net.version}"] = (_time(lambda: torch_run(x, net)), out)
    except Exception as exc:  # report, do not hide
        print(f"openvino: not measured ({type(exc).__name__}: {str(exc)[:200]})")

    base = results["torch eager (no_grad)"][0]
    for name, (sec, (points, std)) in results.items():
        dpts = float(np.abs(points - ref[0]).max() * s)
        dstd = float(np.abs(std - ref[1]).max() * s)
        print(f"{name:<40} {args.batch / sec:8.1f} img/s (batch + 1 image's {args.samples} samples)  x{base / sec:5.2f}  "
              f"max |d landmark| {dpts:.2e} px  max |d std| {dstd:.2e} px")
    _sample_decoder(nets, x[:1], eps, s)


def _sample_decoder(nets: dict, x: torch.Tensor, eps: torch.Tensor, size: int) -> None:
    """One image's samples decoded with its maps copied to every sample (each sample projects its
    own skip features, the old decoder) vs shared (one convolution per image, ``layers.project_roi``)."""
    print(f"{len(eps)} samples of one image: per-sample projection vs one convolution per image")
    with torch.inference_mode():
        for name, net in nets.items():
            mu, logvar, feats = net.encode(x)
            z = mu[0] + eps * torch.exp(0.5 * logvar[0])
            copied = [f.expand(len(z), -1, -1, -1).contiguous() for f in feats]
            a, b = net.decode(z, copied)[0], net.decode(z, feats)[0]
            per_sample, shared = _time(lambda: net.decode(z, copied)) * 1000, _time(lambda: net.decode(z, feats)) * 1000
            d_pts, d_std = float((a - b).abs().max()) * size, float((a.std(0) - b.std(0)).abs().max()) * size
            print(f"{name:<9} per sample {per_sample:7.1f} ms  shared {shared:7.1f} ms  x{per_sample / shared:5.2f}  "
                  f"max |d node| {d_pts:.1e} px  max |d std| {d_std:.1e} px")


if __name__ == "__main__":
    main()
