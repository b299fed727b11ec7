"""Trainer and inference agents (agent/trainer_agent.h, agent/inference_agent.h)."""
from __future__ import annotations

import ctypes
import inspect
import json
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, NamedTuple, Optional

from . import _lib
from ._tensors import Described
from .errors import WeightsyncError, check
from .plan import options_json


@dataclass(frozen=True)
class PushReport:
    """What one rank did in one push."""
    step: int
    bytes: int         # written into inference ranks (trainer) or received (inference)
    writes: int        # one-sided writes posted (trainer)
    gather_bytes: int  # source bytes sent to other trainer ranks
    units: int         # convert units converted (trainer)
    seconds: float
    convert_seconds: float

    @staticmethod
    def _from(c: _lib.WsPushReport) -> "PushReport":
        return PushReport(c.step, c.bytes, c.writes, c.gather_bytes, c.units, c.seconds,
                          c.convert_seconds)


class LauncherRank(NamedTuple):
    rank: int
    world_size: int
    local_rank: int


def launcher_rank() -> Optional[LauncherRank]:
    """This process's rank as its launcher set it (torchrun's RANK/WORLD_SIZE/LOCAL_RANK, Open
    MPI, SLURM or PMI, the first one present); None when no launcher variables are set."""
    rank, world, local = ctypes.c_int32(), ctypes.c_int32(), ctypes.c_int32()
    code = _lib.lib().ws_launcher_rank(ctypes.byref(rank), ctypes.byref(world),
                                       ctypes.byref(local))
    if code == 2:  # WS_NOT_FOUND
        return None
    check(code)
    return LauncherRank(rank.value, world.value, local.value)


def _rank_or_launcher(options: Mapping[str, Any], rank: Optional[int], role: str) -> int:
    """`rank` when given; else the launcher's, checked against the plan's world for `role`."""
    if rank is not None:
        return rank
    from_launcher = launcher_rank()
    if from_launcher is None:
        raise ValueError(f"{role} agent: no rank given and no launcher variables set (RANK and "
                         "WORLD_SIZE from torchrun, OMPI_COMM_WORLD_*, SLURM_PROCID/SLURM_NTASKS "
                         "or PMI_RANK/PMI_SIZE): pass rank=")
    from .plan import JobPlan
    plan = JobPlan(options)
    world = plan.trainer_world if role == "trainer" else plan.inference_world
    if from_launcher.world_size != world:
        raise ValueError(f"{role} agent: the launcher's world size {from_launcher.world_size} "
                         f"(rank {from_launcher.rank}) is not the plan's {role} world {world}; "
                         "pass rank= when trainers and inference ranks share one launch")
    return from_launcher.rank


class TrainerAgent:
    """One trainer rank. `sources` maps the source-format names of this rank's shards
    (JobPlan.trainer_sources) to contiguous CPU arrays holding the weights; the agent reads them
    on every push, so they must stay alive (it keeps references) and hold the step's weights
    while push() runs. Creating joins the job: every rank of the job must be starting.
    `rank` None takes the launcher's (launcher_rank()), whose world size must be the plan's
    trainer world."""

    def __init__(self, options: Mapping[str, Any], rank: Optional[int] = None,
                 sources: Optional[Mapping[str, Any]] = None):
        lib = _lib.lib()
        if sources is None:
            raise TypeError("TrainerAgent: sources= is required")
        rank = _rank_or_launcher(options, rank, "trainer")
        self._sources = Described(sources, allow_cuda=True)
        handle = ctypes.c_void_p()
        check(lib.ws_trainer_create(options_json(options), rank, self._sources.array,
                                    self._sources.count, ctypes.byref(handle)))
        self._handle = handle
        self.rank = rank

    def push(self, step: int) -> PushReport:
        """Pushes what the sources hold now as `step` (strictly increasing across pushes)."""
        report = _lib.WsPushReport()
        check(_lib.lib().ws_trainer_push(self._require(), step, ctypes.byref(report)))
        return PushReport._from(report)

    def describe(self) -> str:
        return _lib.lib().ws_trainer_describe(self._require()).decode()

    def _require(self):
        if not self._handle:
            raise ValueError(f"trainer {self.rank} is closed")
        return self._handle

    def close(self) -> None:
        if getattr(self, "_handle", None):
            _lib.lib().ws_trainer_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> "TrainerAgent":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()


Hook = Callable[[], None]


def _check_hook(name: str, hook: Optional[Hook]) -> None:
    """Refuses, at creation rather than at the first push, a hook that is not callable without
    arguments."""
    if hook is None:
        return
    if not callable(hook):
        raise TypeError(f"InferenceAgent: the {name} hook is not callable: {hook!r}")
    try:
        signature = inspect.signature(hook)
    except (TypeError, ValueError):
        return  # a builtin without a signature: it will tell at the first call
    try:
        signature.bind()
    except TypeError as e:
        raise TypeError(f"InferenceAgent: the {name} hook must be callable with no arguments; "
                        f"{getattr(hook, '__qualname__', hook)!r}{signature}: {e}") from None


class InferenceAgent:
    """One inference rank. `destinations` maps this rank's destination names
    (JobPlan.inference_destinations) to the engine's parameter memory (contiguous, writable);
    trainers write into it directly, so it must outlive the agent. Hooks are Python callables
    run around each push (pause, post_update, resume); one that raises fails the push (this
    rank is then torn until a later push commits): its type and message become the push's error
    on every rank and in status(), and the exception itself is kept in ``hook_error``. A hook
    that cannot be called without arguments is refused here. `rank` None takes the launcher's,
    as for TrainerAgent.

    Threads: serve_one_push from one thread; pause, resume and status from any thread."""

    def __init__(self, options: Mapping[str, Any], rank: Optional[int] = None,
                 destinations: Optional[Mapping[str, Any]] = None,
                 pause: Optional[Hook] = None, post_update: Optional[Hook] = None,
                 resume: Optional[Hook] = None):
        lib = _lib.lib()
        if destinations is None:
            raise TypeError("InferenceAgent: destinations= is required")
        for name, hook in (("pause", pause), ("post_update", post_update), ("resume", resume)):
            _check_hook(name, hook)
        rank = _rank_or_launcher(options, rank, "inference")
        self.rank = rank
        self.hook_error: Optional[BaseException] = None
        self._destinations = Described(destinations, allow_cuda=True, writable=True)
        # The ctypes callbacks must live as long as the agent may call them.
        self._hooks_c = _lib.WsInferenceHooks(self._wrap(pause), self._wrap(post_update),
                                              self._wrap(resume), None)
        handle = ctypes.c_void_p()
        check(lib.ws_inference_create(options_json(options), rank, self._destinations.array,
                                      self._destinations.count, ctypes.byref(self._hooks_c),
                                      ctypes.byref(handle)))
        self._handle = handle
        self.admin_address: str = lib.ws_inference_admin_address(handle).decode()

    def _wrap(self, fn: Optional[Hook]):
        if fn is None:
            return _lib.HOOK()  # NULL

        def call(_user_data):
            try:
                fn()
                return 0
            except BaseException as e:  # must not unwind through C
                self.hook_error = e
                message = f"{type(e).__name__}: {e}" if str(e) else type(e).__name__
                _lib.lib().ws_hook_fail(message.encode("utf-8", "backslashreplace"))
                return 1
        return _lib.HOOK(call)

    def serve_one_push(self, timeout: float) -> Optional[PushReport]:
        """Waits up to `timeout` seconds for a push and serves it; None when none came."""
        report = _lib.WsPushReport()
        served = ctypes.c_int32(0)
        check(_lib.lib().ws_inference_serve_one_push(self._require(), timeout,
                                                     ctypes.byref(report), ctypes.byref(served)))
        return PushReport._from(report) if served.value else None

    def pause(self) -> None:
        check(_lib.lib().ws_inference_pause(self._require()))

    def resume(self, force: bool = False) -> None:
        check(_lib.lib().ws_inference_resume(self._require(), 1 if force else 0))

    def status(self) -> Dict[str, Any]:
        """The admin endpoint's /status document: state, steps, torn step, last error."""
        lib = _lib.lib()
        size = 4096
        while True:
            buf = ctypes.create_string_buffer(size)
            needed = ctypes.c_size_t(0)
            code = lib.ws_inference_status_json(self._require(), buf, size, ctypes.byref(needed))
            if code == 4 and needed.value > size:  # WS_OUT_OF_RANGE: grow and ask again
                size = needed.value
                continue
            check(code)
            return json.loads(buf.value.decode("utf-8"))

    def _require(self):
        if not self._handle:
            raise ValueError(f"inference {self.rank} is closed")
        return self._handle

    def close(self) -> None:
        if getattr(self, "_handle", None):
            _lib.lib().ws_inference_destroy(self._handle)
            self._handle = None

    def __enter__(self) -> "InferenceAgent":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        self.close()
