"""Model inference throughput: images/s at batch 1 and 16, parameters and weight size.

Usage: python benchmarks/bench_model.py [--weights NAME_OR_FILE] [--device cpu] [--repeats 5]

Absolute times on shared machines are noisy; the ratio batch-16 / batch-1 is measured
in the same process and is the stable figure.
"""

from __future__ import annotations

import argparse
import os
import time

import torch

from chexmask.model.weights import load_model
from chexmask.model.default import DEFAULT_MODEL


def images_per_second(model, batch: int, size: int, repeats: int, device: torch.device) -> float:
    x = torch.rand(batch, 1, size, size, device=device)
    with torch.inference_mode():
        model(x)  # warm-up
        if device.type == "cuda":
            torch.cuda.synchronize()
        t = time.perf_counter()
        for _ in range(repeats):
            model(x)
        if device.type == "cuda":
            torch.cuda.synchronize()
    return batch * repeats / (time.perf_counter() - t)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", default=DEFAULT_MODEL)
    p.add_argument("--device", default="cpu")
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    device = torch.device(args.device)
    model, info = load_model(args.weights, device)
    size = model.config.input_size
    print(f"model {info['name']}  input {size} px  device {device}  threads {torch.get_num_threads()}")
    print(f"parameters {model.n_parameters():,}  weights file {os.path.getsize(info['path']) / 2**20:.1f} MiB")
    one = images_per_second(model, 1, size, args.repeats * 4, device)
    sixteen = images_per_second(model, 16, size, args.repeats, device)
    print(f"batch 1:  {one:8.1f} images/s")
    print(f"batch 16: {sixteen:8.1f} images/s  (x{sixteen / one:.2f} of batch 1)")


if __name__ == "__main__":
    main()
