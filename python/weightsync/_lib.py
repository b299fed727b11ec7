"""Loading libweightsync.so and declaring the C API's signatures (include/weightsync/weightsync.h).

Every foreign function gets argtypes/restype here, so a wrong Python argument fails in ctypes
instead of reaching C as garbage. ctypes releases the GIL around each call, so a blocking call
(joining a job, serving a push) does not stall other Python threads.
"""
from __future__ import annotations

import ctypes
import os
from ctypes import (CFUNCTYPE, POINTER, Structure, c_char_p, c_double, c_int32, c_int64, c_size_t,
                    c_uint16, c_uint32, c_uint64, c_void_p)
from pathlib import Path
from typing import Optional

_LIB_NAME = "libweightsync.so"


class WsTensor(Structure):
    _fields_ = [("name", c_char_p), ("data", c_void_p), ("dtype", c_int32), ("ndim", c_int32),
                ("shape", POINTER(c_int64)), ("strides", POINTER(c_int64)),
                ("device_type", c_int32), ("device_index", c_int32)]


class WsPushReport(Structure):
    _fields_ = [("step", c_uint64), ("bytes", c_int64), ("writes", c_int64),
                ("gather_bytes", c_int64), ("units", c_int64), ("seconds", c_double),
                ("convert_seconds", c_double)]


HOOK = CFUNCTYPE(c_int32, c_void_p)


class WsInferenceHooks(Structure):
    _fields_ = [("pause", HOOK), ("post_update", HOOK), ("resume", HOOK), ("user_data", c_void_p)]


def _candidates() -> list[Path]:
    """Where the library may be: an explicit path, inside the installed package (pip install .),
    or a CMake build tree of a source checkout (python/weightsync -> build/src/capi)."""
    out = []
    if os.environ.get("WEIGHTSYNC_LIBRARY"):
        out.append(Path(os.environ["WEIGHTSYNC_LIBRARY"]))
    here = Path(__file__).resolve().parent
    out.append(here / _LIB_NAME)
    out.append(here.parent.parent / "build" / "src" / "capi" / _LIB_NAME)
    return out


def _load() -> ctypes.CDLL:
    tried = []
    for path in _candidates():
        if path.is_file():
            return ctypes.CDLL(str(path))
        tried.append(str(path))
    raise ImportError(f"weightsync: {_LIB_NAME} not found (looked at: {', '.join(tried)}); "
                      "set WEIGHTSYNC_LIBRARY or install the package with `pip install .`")


_SIGNATURES = {
    # name: (restype, argtypes)
    "ws_version": (c_char_p, []),
    "ws_api_version": (c_int32, []),
    "ws_status_name": (c_char_p, [c_int32]),
    "ws_last_error": (c_char_p, []),
    "ws_dtype_size": (c_size_t, [c_int32]),
    "ws_launcher_rank": (c_int32, [POINTER(c_int32), POINTER(c_int32), POINTER(c_int32)]),
    "ws_config_set": (c_int32, [c_char_p, c_char_p]),
    "ws_config_get": (c_int32, [c_char_p, c_char_p, c_size_t, POINTER(c_size_t)]),
    "ws_config_reset": (c_int32, []),
    "ws_store_start": (c_int32, [c_char_p, c_uint16, c_char_p, POINTER(c_void_p)]),
    "ws_store_address": (c_char_p, [c_void_p]),
    "ws_store_token": (c_char_p, [c_void_p]),
    "ws_store_last_error": (c_char_p, [c_void_p]),
    "ws_store_stop": (None, [c_void_p]),
    "ws_tensor_list_size": (c_size_t, [c_void_p]),
    "ws_tensor_list_get": (c_int32, [c_void_p, c_size_t, POINTER(WsTensor)]),
    "ws_tensor_list_destroy": (None, [c_void_p]),
    "ws_job_plan_create": (c_int32, [c_char_p, POINTER(c_void_p)]),
    "ws_job_plan_hash": (c_char_p, [c_void_p]),
    "ws_job_plan_trainer_world": (c_int32, [c_void_p]),
    "ws_job_plan_inference_world": (c_int32, [c_void_p]),
    "ws_job_plan_trainer_sources": (c_int32, [c_void_p, c_int32, POINTER(c_void_p)]),
    "ws_job_plan_trainer_source_rows": (c_int32, [c_void_p, c_int32, POINTER(c_int64),
                                                  POINTER(c_int64), c_size_t]),
    "ws_job_plan_inference_destinations": (c_int32, [c_void_p, c_int32, POINTER(c_void_p)]),
    "ws_job_plan_last_error": (c_char_p, [c_void_p]),
    "ws_job_plan_destroy": (None, [c_void_p]),
    "ws_convert_plan_create": (c_int32, [c_char_p, c_char_p, c_char_p, POINTER(WsTensor), c_size_t,
                                         c_uint32, POINTER(c_void_p)]),
    "ws_convert_plan_destinations": (c_int32, [c_void_p, POINTER(c_void_p)]),
    "ws_convert_tensors": (c_int32, [c_void_p, POINTER(WsTensor), c_size_t, POINTER(WsTensor),
                                     c_size_t, c_int32]),
    "ws_convert_plan_last_error": (c_char_p, [c_void_p]),
    "ws_convert_plan_destroy": (None, [c_void_p]),
    "ws_trainer_create": (c_int32, [c_char_p, c_int32, POINTER(WsTensor), c_size_t,
                                    POINTER(c_void_p)]),
    "ws_trainer_push": (c_int32, [c_void_p, c_uint64, POINTER(WsPushReport)]),
    "ws_trainer_describe": (c_char_p, [c_void_p]),
    "ws_trainer_last_error": (c_char_p, [c_void_p]),
    "ws_trainer_destroy": (None, [c_void_p]),
    "ws_hook_fail": (None, [c_char_p]),
    "ws_inference_create": (c_int32, [c_char_p, c_int32, POINTER(WsTensor), c_size_t,
                                      POINTER(WsInferenceHooks), POINTER(c_void_p)]),
    "ws_inference_serve_one_push": (c_int32, [c_void_p, c_double, POINTER(WsPushReport),
                                              POINTER(c_int32)]),
    "ws_inference_pause": (c_int32, [c_void_p]),
    "ws_inference_resume": (c_int32, [c_void_p, c_int32]),
    "ws_inference_status_json": (c_int32, [c_void_p, c_char_p, c_size_t, POINTER(c_size_t)]),
    "ws_inference_admin_address": (c_char_p, [c_void_p]),
    "ws_inference_last_error": (c_char_p, [c_void_p]),
    "ws_inference_destroy": (None, [c_void_p]),
}

_lib: Optional[ctypes.CDLL] = None

API_VERSION = 1  # the WS_API_VERSION these declarations match


def lib() -> ctypes.CDLL:
    """The loaded library, with every signature declared (loaded on first use)."""
    global _lib
    if _lib is None:
        loaded = _load()
        for name, (restype, argtypes) in _SIGNATURES.items():
            fn = getattr(loaded, name)
            fn.restype = restype
            fn.argtypes = argtypes
        if loaded.ws_api_version() != API_VERSION:
            raise ImportError(f"weightsync: the library has C API version "
                              f"{loaded.ws_api_version()}, this package needs {API_VERSION}")
        _lib = loaded
    return _lib
