"""Process settings a command applies before its library call (never at import)."""

from __future__ import annotations


def set_threads(threads: int | None) -> None:
    """Set torch's CPU threads when ``threads`` is given; otherwise leave torch's choice."""
    if threads:
        import torch

        torch.set_num_threads(threads)
