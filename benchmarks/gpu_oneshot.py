"""One run on a lent GPU: model throughput at 256 and 1024 px, end-to-end vs model-only, 512-px training speed.

Usage (on the GPU machine, from the repository root)::

    python benchmarks/gpu_oneshot.py /path/to/jsrt --device cuda --out gpu.json
    python benchmarks/gpu_oneshot.py /path/to/jsrt --device cpu --quick     # the CPU check before

Everything is measured in one process and printed with the device's name, the date and
the torch version, so each figure names its hardware. Sections:

1. Model-only images/s (deterministic and 50 latent samples) at 256 px (the shipped
   weights) and 1024 px (same architecture, random weights: speed only), for several
   batch sizes, with and without float16 autocast (CUDA only).
2. ``chexmask segment`` end-to-end images/s on the JSRT images vs model-only in the
   same process (the ratio is the figure that matters).
3. Training speed at 512 px: seconds per step and per epoch-equivalent (546 images,
   batch 4) for a few steps of ``chexmask.model.train``'s loss on JSRT images.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_segment import end_to_end, model_only  # noqa: E402  (benchmarks are scripts, not a package)

from chexmask.inference.pipeline import MICRO_BATCH, plan_items  # noqa: E402
from chexmask.inference.predictor import predict_batch  # noqa: E402
from chexmask.inference.segmenter import Segmenter  # noqa: E402
from chexmask.model.default import DEFAULT_MODEL  # noqa: E402
from chexmask.model.hybridgnet import HybridGNet, ModelConfig  # noqa: E402


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


@torch.inference_mode()
def throughput(model: HybridGNet, batch: int, samples: int, amp: bool, device: torch.device, seconds: float) -> float:
    """Model-only images/s on random inputs for about ``seconds``."""
    s = model.config.input_size
    x = torch.rand(batch, 1, s, s, device=device)
    seeds = list(range(batch))
    with torch.autocast(device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
        predict_batch(model, x, seeds, samples)  # warm-up
        _sync(device)
        n, t0 = 0, time.perf_counter()
        while time.perf_counter() - t0 < seconds or n == 0:
            predict_batch(model, x, seeds, samples)
            n += batch
        _sync(device)
    return n / (time.perf_counter() - t0)


def train_speed(jsrt: Path, size: int, steps: int, device: torch.device, amp: bool) -> dict:
    """Seconds per training step (batch 4) at ``size`` px, data already in memory."""
    from chexmask.model.data import load_source
    from chexmask.model.train import training_loss

    data = load_source(jsrt, "train", size, limit=16)
    model = HybridGNet(ModelConfig(input_size=size), mean_shape=np.nanmean(data.targets, 0)).to(device).train()
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    scaler = torch.amp.GradScaler(enabled=amp and device.type == "cuda")
    x = torch.from_numpy(data.images[:4]).float().div(255)[:, None].to(device)
    y = torch.from_numpy(np.nan_to_num(data.targets[:4])).to(device)
    valid = torch.ones(y.shape[:2], device=device)
    times = []
    for step in range(steps + 1):
        t0 = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.float16, enabled=amp and device.type == "cuda"):
            out = model(x, sample=True)
            loss = training_loss(out, y, valid, 1e-5)[0].float()
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        _sync(device)
        if step:  # step 0 is the warm-up
            times.append(time.perf_counter() - t0)
    per_step = float(np.median(times))
    return {"size": size, "amp": amp, "seconds_per_step": per_step, "seconds_per_546_image_epoch": per_step * 546 / 4}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("jsrt", type=Path, help="JSRT folder (images/, landmarks/, splits/).")
    p.add_argument("--device", default="cuda")
    p.add_argument("--weights", default=DEFAULT_MODEL)
    p.add_argument("--quick", action="store_true", help="Tiny settings, to check the script on a CPU first.")
    p.add_argument("--out", type=Path, help="Also write the results as JSON.")
    args = p.parse_args()
    device = torch.device(args.device)
    quick = args.quick
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or platform.machine()
    header = {"device": f"{device} ({name})", "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "torch": torch.__version__, "threads": torch.get_num_threads()}
    print(json.dumps(header))
    results: dict = {"header": header, "model": [], "end_to_end": [], "train": []}

    batches = [1, 8] if quick else [1, 8, 32, 128, 256]
    amps = [False, True] if device.type == "cuda" else [False]
    shipped = Segmenter(args.weights, device=args.device).model
    for size in (256, 1024):
        model = shipped if size == shipped.config.input_size else HybridGNet(ModelConfig(input_size=size)).to(device).eval()
        for samples in (0, 50):
            for batch in batches if size == 256 or device.type == "cuda" else [1]:
                for amp in amps:
                    ips = throughput(model, batch, samples if not quick else min(samples, 4), amp, device, 0.5 if quick else 5.0)
                    row = {"size": size, "samples": samples, "batch": batch, "amp": amp, "images_per_second": round(ips, 1)}
                    results["model"].append(row)
                    print(json.dumps(row), flush=True)

    items = plan_items([args.jsrt / "images"])[: 16 if quick else 1024]
    with tempfile.TemporaryDirectory() as tmp:
        for u in (0, 50):
            subset = items[: 8 if quick else (1024 if u == 0 else 256)]
            seg = Segmenter(args.weights, device=args.device, uncertainty=u if not quick else min(u, 4),
                            batch_size=8 if quick else 128, amp=True)
            seg.micro_batch = MICRO_BATCH.get(seg.device.type, 8)
            limit = model_only(seg, subset, len(subset))
            bench = argparse.Namespace(workers=1 if quick else 8, chunk_size=1000)
            e2e = end_to_end(seg, bench, subset, Path(tmp))
            row = {"samples": seg.uncertainty, "images": len(subset), "model_only": round(limit, 1), "end_to_end": round(e2e, 1),
                   "ratio": round(e2e / limit, 3)}
            results["end_to_end"].append(row)
            print(json.dumps(row), flush=True)

    for amp in amps:
        row = train_speed(args.jsrt, 64 if quick else 512, 2 if quick else 20, device, amp)
        results["train"].append(row)
        print(json.dumps(row), flush=True)
    if args.out:
        args.out.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
