"""Exception types of chexmask.

Every error caused by a user's input (a file, a table row, an RLE string) is an
:class:`InputError` whose message names the offending file or row and the problem,
so a batch can record it and move on.
"""

from __future__ import annotations

__all__ = ["ChexmaskError", "InputError", "UnreadableImageError", "RLEError"]


class ChexmaskError(Exception):
    """Base class of all chexmask errors."""


class InputError(ChexmaskError, ValueError):
    """A user input (file, row, string) is invalid.

    Parameters
    ----------
    source : str
        What was being read: a file path, a table row (``"table.csv row 12"``) or a
        short description of the value.
    reason : str
        What is wrong with it, in words a user can act on.
    """

    def __init__(self, source: object, reason: str) -> None:
        self.source = str(source)
        self.reason = reason
        super().__init__(f"{self.source}: {reason}")

    def __reduce__(self):  # keep picklable across worker processes
        return (type(self), (self.source, self.reason))


class UnreadableImageError(InputError):
    """An image file is missing, empty, truncated or not an image."""


class RLEError(InputError):
    """An RLE mask string is malformed (odd length, bad or overlapping runs)."""
