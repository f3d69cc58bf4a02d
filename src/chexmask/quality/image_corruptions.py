"""The image corruptions of the corruption experiment: Gaussian noise and occluding blocks.

A :class:`Corruption` changes an 8-bit grayscale image: ``clean`` copies it, ``noise``
adds Gaussian noise of a std in grey levels, ``occlusion`` blacks out a square block
whose side is a fraction of the image's shorter side at one of
:data:`OCCLUSION_POSITIONS`. :func:`default_corruptions` makes the experiment's set
(default levels :data:`NOISE_SIGMAS` and :data:`OCCLUSION_SIZES`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "NOISE_SIGMAS",
    "OCCLUSION_SIZES",
    "OCCLUSION_POSITIONS",
    "Corruption",
    "default_corruptions",
]

#: Gaussian noise std, grey levels of the 8-bit image (the model sees it after
#: downsampling, which averages it down: 1024 -> 256 px divides it by about 4).
NOISE_SIGMAS: tuple[float, ...] = (15.0, 30.0, 60.0, 120.0)
#: Side of the square occluding block, as a fraction of the image's shorter side.
OCCLUSION_SIZES: tuple[float, ...] = (0.15, 0.3, 0.45)
#: Block centres (x, y) as fractions of the width and height. The patient's right lung
#: is on the image's left in a PA view.
OCCLUSION_POSITIONS: dict[str, tuple[float, float]] = {
    "right_lung": (0.3, 0.4),
    "left_lung": (0.7, 0.4),
    "centre": (0.5, 0.55),
}
#: The kinds of :class:`Corruption`.
KINDS = ("clean", "noise", "occlusion")


@dataclass(frozen=True)
class Corruption:
    """One corruption of an 8-bit grayscale image.

    Attributes
    ----------
    kind : {"clean", "noise", "occlusion"}
    level : float
        Noise std in grey levels, or the occluding block's side as a fraction of the
        image's shorter side; 0 for ``"clean"``.
    position : str or None
        Key of :data:`OCCLUSION_POSITIONS` (occlusion only).
    """

    kind: str
    level: float = 0.0
    position: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown corruption kind {self.kind!r}; expected one of {list(KINDS)}")
        if self.level < 0 or (self.kind == "occlusion" and not 0 < self.level <= 1):
            raise ValueError(f"corruption level out of range for {self.kind}: {self.level}")
        if self.kind == "occlusion" and self.position not in OCCLUSION_POSITIONS:
            raise ValueError(f"unknown occlusion position {self.position!r}; expected one of {list(OCCLUSION_POSITIONS)}")

    @property
    def name(self) -> str:
        """``clean``, ``noise-30`` or ``occlusion-0.3-centre``."""
        if self.kind == "clean":
            return "clean"
        if self.kind == "noise":
            return f"noise-{self.level:g}"
        return f"occlusion-{self.level:g}-{self.position}"

    def apply(self, pixels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Corrupt a ``(H, W)`` uint8 image; returns a new ``(H, W)`` uint8 array.

        Examples
        --------
        >>> img = np.full((10, 10), 200, np.uint8)
        >>> out = Corruption("occlusion", 0.4, "centre").apply(img, np.random.default_rng(0))
        >>> int((out == 0).sum())
        16
        """
        if self.kind == "clean":
            return pixels.copy()
        if self.kind == "noise":
            noisy = pixels.astype(np.float32) + rng.normal(0.0, self.level, pixels.shape).astype(np.float32)
            return np.clip(np.rint(noisy), 0, 255).astype(np.uint8)
        h, w = pixels.shape
        side = max(1, round(self.level * min(h, w)))
        fx, fy = OCCLUSION_POSITIONS[self.position]
        x0 = int(np.clip(round(fx * w - side / 2), 0, w - side))
        y0 = int(np.clip(round(fy * h - side / 2), 0, h - side))
        out = pixels.copy()
        out[y0 : y0 + side, x0 : x0 + side] = 0
        return out


def default_corruptions(
    noise: Sequence[float] = NOISE_SIGMAS,
    sizes: Sequence[float] = OCCLUSION_SIZES,
    positions: Sequence[str] = tuple(OCCLUSION_POSITIONS),
) -> list[Corruption]:
    """Clean, then every noise level, then every occlusion size at every position."""
    out = [Corruption("clean")]
    out += [Corruption("noise", float(s)) for s in noise]
    out += [Corruption("occlusion", float(s), p) for s in sizes for p in positions]
    return out
