"""The defaults the CLI and the ``Segmenter`` API share (a module of its own so the CLI can name them without importing torch)."""

#: The model ``chexmask segment``, ``chexmask.Segmenter()`` and every other command use by default.
DEFAULT_MODEL = "hybridgnet-multi-256"
#: Latent samples per image for node uncertainty: ``--uncertainty`` and ``Segmenter(uncertainty=...)``.
DEFAULT_UNCERTAINTY = 50
#: Where the network runs: ``--device`` and ``Segmenter(device=...)`` (CUDA when available).
DEFAULT_DEVICE = "auto"
