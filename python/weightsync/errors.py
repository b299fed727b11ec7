"""The exception every weightsync call raises on failure, carrying the library's error text."""
from __future__ import annotations

from . import _lib


class WeightsyncError(RuntimeError):
    """A weightsync call failed.

    Attributes: ``code`` (the C API's ws_status, e.g. 1), ``status`` (its name, e.g.
    "INVALID_ARGUMENT") and ``message`` (the library's text: it names the tensor, rank, peer or
    option).
    """

    def __init__(self, code: int, message: str):
        self.code = code
        self.status = _lib.lib().ws_status_name(code).decode()
        self.message = message
        super().__init__(f"{self.status}: {message}")


def check(code: int) -> None:
    """Raises WeightsyncError for a non-zero ws_status, with the calling thread's last error
    (ctypes runs the call on this thread, so the thread-local message is this call's)."""
    if code != 0:
        raise WeightsyncError(code, _lib.lib().ws_last_error().decode("utf-8", "replace"))
