"""The name of the default shipped model (a module of its own so the CLI can name it without importing torch)."""

#: The model ``chexmask segment``, ``chexmask.Segmenter()`` and every other command use by default.
DEFAULT_MODEL = "hybridgnet-multi-256"
