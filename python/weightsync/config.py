"""The process-wide configuration (the table `weightsync info` prints)."""
from __future__ import annotations

import ctypes

from . import _lib
from .errors import check


def config_set(key: str, value: str) -> None:
    """Sets a configuration option (e.g. "push.transfer_timeout", "30s") for later creates."""
    check(_lib.lib().ws_config_set(key.encode(), str(value).encode()))


def config_get(key: str) -> str:
    lib = _lib.lib()
    needed = ctypes.c_size_t(0)
    lib.ws_config_get(key.encode(), None, 0, ctypes.byref(needed))  # sizes it (or fails below)
    buf = ctypes.create_string_buffer(max(needed.value, 1))
    check(lib.ws_config_get(key.encode(), buf, len(buf), None))
    return buf.value.decode()


def config_reset() -> None:
    """Back to the defaults overlaid with WEIGHTSYNC_* environment variables as they are now."""
    check(_lib.lib().ws_config_reset())
