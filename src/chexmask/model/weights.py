"""Model weights: safetensors files shipped in the package, with a checked hash.

A weights file holds the network's tensors and, in its metadata, the
:class:`~chexmask.model.hybridgnet.ModelConfig` (input resolution included) and
training provenance. ``weights/registry.json`` maps a model name to its file and
SHA256; the hash is verified on load. Nothing is downloaded and nothing unpickled.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path

import torch

from chexmask._errors import ChexmaskError
from chexmask.model.default import DEFAULT_MODEL
from chexmask.model.hybridgnet import HybridGNet, ModelConfig

__all__ = ["save_weights", "load_model", "registry", "resolve_weights", "sha256_file", "DEFAULT_MODEL"]



def sha256_file(path: Path) -> str:
    """Hex SHA256 of a file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _weights_dir() -> Path:
    return Path(str(resources.files("chexmask") / "weights"))


def registry() -> dict[str, dict]:
    """The shipped models: name -> {file, sha256, input_size, ...}."""
    path = _weights_dir() / "registry.json"
    if not path.exists():
        return {}
    return json.loads(path.read_text())


def resolve_weights(name_or_path: str | Path) -> tuple[Path, str | None]:
    """Find a weights file by registry name or path; return (path, expected sha256 or None)."""
    reg = registry()
    key = str(name_or_path)
    if key in reg:
        return _weights_dir() / reg[key]["file"], reg[key]["sha256"]
    path = Path(name_or_path)
    if path.suffix == ".safetensors" and path.exists():
        return path, None
    import difflib

    close = difflib.get_close_matches(key, list(reg), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else f"; shipped models: {sorted(reg) or 'none'}"
    raise ChexmaskError(f"weights {key!r}: not a shipped model name nor an existing .safetensors file{hint}")


def save_weights(model: HybridGNet, path: Path, metadata: dict | None = None) -> str:
    """Write a model to ``path`` (safetensors) with its config in the metadata; return the SHA256."""
    from safetensors.torch import save_file

    meta = {"config": json.dumps(model.config.to_dict()), "format": "chexmask-hybridgnet-1"}
    meta.update({k: json.dumps(v) for k, v in (metadata or {}).items()})
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(path), metadata=meta)
    return sha256_file(Path(path))


def load_model(name_or_path: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu") -> tuple[HybridGNet, dict]:
    """Load a shipped or local model in eval mode.

    Returns
    -------
    model : HybridGNet
    info : dict
        ``name``, ``path``, ``sha256``, ``config`` and the file's training metadata.

    Raises
    ------
    ChexmaskError
        Unknown name, missing file, or a hash that does not match the registry.
    """
    from safetensors import safe_open
    from safetensors.torch import load_file

    path, expected = resolve_weights(name_or_path)
    if not path.exists():
        raise ChexmaskError(f"weights file {path} is missing from the installation; reinstall chexmask")
    digest = sha256_file(path)
    if expected is not None and digest != expected:
        raise ChexmaskError(f"weights file {path}: SHA256 {digest} does not match the registry ({expected}); the file is corrupt")
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    if "config" not in meta:
        raise ChexmaskError(f"weights file {path}: no chexmask model config in its metadata")
    config = ModelConfig.from_dict(json.loads(meta["config"]))
    model = HybridGNet(config)
    model.load_state_dict(load_file(str(path)))
    model.to(device).eval()
    info = {k: json.loads(v) for k, v in meta.items() if k not in ("config", "format")}
    info.update(name=str(name_or_path), path=str(path), sha256=digest, config=config.to_dict())
    return model, info
