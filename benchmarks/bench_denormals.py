"""Denormal floats: a training step and a batch prediction with and without flushing them to zero.

Usage: python benchmarks/bench_denormals.py [--weights NAME ...] [--threads 2] [--repeats 5]

For each shipped model: how many of its weights are denormal (below float32's smallest
normal number), then seconds per training step (batch 8, sampled latent, loss and
backward, as ``chexmask train``) and per prediction (batch 8, z = mu) with the CPU's
default handling and inside ``chexmask.model.hybridgnet.flush_denormals``, in the same
process; the ratio is the figure to quote. Run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import time

import torch

from chexmask.model.hybridgnet import flush_denormals
from chexmask.model.train import _loss
from chexmask.model.weights import load_model


def _seconds(step, repeats: int) -> float:
    step()  # warm-up
    t = time.perf_counter()
    for _ in range(repeats):
        step()
    return (time.perf_counter() - t) / repeats


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", nargs="+", default=["hybridgnet-jsrt-256", "hybridgnet-multi-256"])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    gen = torch.Generator().manual_seed(0)
    for name in args.weights:
        model = load_model(name)[0]
        denormal = sum(int(((v != 0) & (v.abs() < torch.finfo(torch.float32).tiny)).sum())
                       for v in model.state_dict().values() if v.is_floating_point())
        total = sum(v.numel() for v in model.state_dict().values() if v.is_floating_point())
        x = torch.rand(8, 1, model.config.input_size, model.config.input_size, generator=gen)
        y = torch.rand(8, model.n_nodes, 2, generator=gen)
        valid = torch.ones(8, model.n_nodes)
        opt = torch.optim.SGD(model.parameters(), lr=0.0)  # lr 0: every repeat sees the same weights

        def train_step():
            model.train()
            loss = _loss(model(x, sample=True, generator=torch.Generator().manual_seed(0)), y, valid, 1e-5)
            opt.zero_grad()
            loss.backward()
            opt.step()

        def predict():
            model.eval()
            with torch.inference_mode():
                model(x)

        print(f"{name}: {denormal} of {total} weights denormal ({100 * denormal / total:.1f} %), {args.threads} threads")
        for label, step in (("train step", train_step), ("prediction", predict)):
            slow = _seconds(step, args.repeats)
            with flush_denormals():
                fast = _seconds(step, args.repeats)
            print(f"  {label}: {slow:.3f} s default, {fast:.3f} s flushed, ratio {slow / fast:.1f}x")


if __name__ == "__main__":
    main()
