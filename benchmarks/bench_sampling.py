"""The 50-sample decoder: per-sample skip projections vs one convolution per image.

Usage: python benchmarks/bench_sampling.py [--weights NAME] [--samples 50] [--threads 2]

Decodes one image's latent samples two ways, in one process, for torch and OpenVINO:

- per sample: the image's feature maps copied to every sample (``decode`` with a batch of
  maps): each sample samples ``C x 3 x 3`` features per node and projects them, as the
  decoder did before (and still does for a batch of different images);
- shared: the maps of batch 1 (``decode`` broadcasts them): the skip projection is one
  convolution per image and each sample samples it (``layers.project_roi``), what the
  pipeline runs.

Prints milliseconds per image (all samples), the ratio, and the largest difference of
the node positions (px, 256 frame) and of their standard deviation.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime, timezone

import numpy as np
import torch

from chexmask.model.default import DEFAULT_MODEL
from chexmask.model.weights import load_model


def _ms(fn, seconds: float = 3.0) -> float:
    fn()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds or n == 0:
        fn()
        n += 1
    return (time.perf_counter() - t0) / n * 1000


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=DEFAULT_MODEL)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    model, info = load_model(args.weights)
    s = model.config.input_size
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.random((1, 1, s, s), dtype=np.float32))
    eps = torch.from_numpy(rng.standard_normal((args.samples, model.config.latent_dim), dtype=np.float32))
    print(f"{info['name']}; {args.samples} samples of one image; {platform.machine()} CPU, {args.threads} threads; "
          f"{datetime.now(timezone.utc).isoformat(timespec='minutes')}; load {os.getloadavg()[0]:.2f}; torch {torch.__version__}")
    nets = {"torch": model}
    try:
        from chexmask.inference.openvino_net import OpenVINONet

        nets["openvino"] = OpenVINONet(model, info["sha256"], args.threads)
    except Exception as exc:  # report, do not hide
        print(f"openvino: not measured ({type(exc).__name__}: {str(exc)[:200]})")
    with torch.inference_mode():
        for name, net in nets.items():
            mu, logvar, feats = net.encode(x)
            z = mu[0] + eps * torch.exp(0.5 * logvar[0])
            copied = [f.expand(len(z), -1, -1, -1).contiguous() for f in feats]
            a, b = net.decode(z, copied)[0], net.decode(z, feats)[0]
            per_sample, shared = _ms(lambda: net.decode(z, copied)), _ms(lambda: net.decode(z, feats))
            d_pts = float((a - b).abs().max()) * s
            d_std = float((a.std(0) - b.std(0)).abs().max()) * s
            print(f"{name:<9} per sample {per_sample:7.1f} ms  shared {shared:7.1f} ms  x{per_sample / shared:5.2f}  "
                  f"max |d node| {d_pts:.1e} px  max |d std| {d_std:.1e} px")


if __name__ == "__main__":
    main()
