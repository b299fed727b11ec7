"""The embedded rendezvous store (control/store_server.h) in this process."""
from __future__ import annotations

import ctypes
from typing import Optional

from . import _lib
from .errors import check


class Store:
    """Starts the job's key-value store; every agent of the job connects to ``address`` with
    ``token``. Loopback by default; a random token when none is given. Use as a context manager
    or call ``stop()``; stopping wakes every agent waiting on it with an error."""

    def __init__(self, host: Optional[str] = None, port: int = 0, token: Optional[str] = None):
        lib = _lib.lib()
        handle = ctypes.c_void_p()
        check(lib.ws_store_start(host.encode() if host else None, port,
                                 token.encode() if token else None, ctypes.byref(handle)))
        self._handle = handle
        self.address: str = lib.ws_store_address(handle).decode()
        self.token: str = lib.ws_store_token(handle).decode()

    def stop(self) -> None:
        if getattr(self, "_handle", None):
            _lib.lib().ws_store_stop(self._handle)
            self._handle = None

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def __del__(self):
        self.stop()

    def __repr__(self) -> str:
        return f"Store(address={self.address!r})"
