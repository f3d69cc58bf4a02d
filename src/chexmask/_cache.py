"""Where chexmask keeps what it derives once and reuses (RCA atlases, converted networks)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["cache_dir"]


def cache_dir() -> Path:
    """Folder of cached files: ``$CHEXMASK_CACHE``, else ``$XDG_CACHE_HOME/chexmask``, else ``~/.cache/chexmask``."""
    if os.environ.get("CHEXMASK_CACHE"):
        return Path(os.environ["CHEXMASK_CACHE"])
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base / "chexmask"
