"""The trainer side of vLLM's weight-transfer API (TrainerWeightTransferEngine, vLLM 0.34.0) as
weightsync trainer agents: ``send_weights()`` on every trainer rank runs one weightsync push, while
trainer rank 0 (vLLM's sender) drives the engines' start / update / finish calls around it.

Every trainer rank converts and writes its own shard (no gather to rank 0), so the source must
hand out the trainer's parameter memory itself: a vLLM ``ModuleSource`` (or a torch module),
whose parameters (plain or FSDP2 DTensors) weightsync reads at every push.
"""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, ClassVar, Dict, List, Optional, Sequence

import torch
from vllm.distributed.weight_transfer.base import (ModuleSource, TrainerInitInfo,
                                                   TrainerWeightTransferEngine)

from ..agents import TrainerAgent
from ..plan import JobPlan
from ..torch import _plan_options, trainer_agent
from . import BACKEND


@dataclass
class WeightsyncTrainerInitInfo(TrainerInitInfo):
    """`options`: the job's WS_OPTIONS (store address and token included), the same on every
    trainer rank; they are sent to the engines, whose workers join as inference ranks
    rank_offset + worker rank. With several engines (one client each, in replica order) engine i's
    offset is i * ranks_per_engine (default: the plan's inference ranks / engines)."""
    backend: ClassVar[str] = BACKEND
    options: Dict[str, Any] = field(default_factory=dict)
    ranks_per_engine: Optional[int] = None
    ignore: List[str] = field(default_factory=list)  # vLLM parameters the trainers do not push
    timeout: float = 600.0   # seconds each engine call may take (joining, one push)
    first_step: int = 1      # steps then count up by one per send_weights


def _module_of(source: Any) -> torch.nn.Module:
    if isinstance(source, torch.nn.Module):
        return source
    if isinstance(source, ModuleSource):
        return source._module  # vLLM keeps the module it was given; no public accessor
    raise TypeError(f"weightsync sends from the trainer's parameter memory: pass a ModuleSource "
                    f"or a torch module, not {type(source).__name__}")


def _concurrently(calls: Sequence[Callable[[], None]], main: Callable[[], Any], timeout: float,
                  what: str) -> Any:
    """Runs `calls` on threads while `main` runs here; raises main's error, else the first of
    theirs, or a timeout naming `what` when a call has not returned `timeout` s after main."""
    errors: List[BaseException] = []

    def run(call):
        try:
            call()
        except BaseException as e:  # reported below, on the caller's thread
            errors.append(e)
    threads = [threading.Thread(target=run, args=(c,), daemon=True) for c in calls]
    for t in threads:
        t.start()
    result = main()
    for t in threads:
        t.join(timeout)
        if t.is_alive():
            raise TimeoutError(f"weightsync trainer: {what} did not return within {timeout} s")
    if errors:
        raise errors[0]
    return result


class WeightsyncTrainerWeightTransferEngine(
        TrainerWeightTransferEngine[WeightsyncTrainerInitInfo]):
    """vLLM's trainer engine "weightsync". `client` is one engine's VLLMWeightSyncClient, or a
    list of them (one per engine replica)."""

    init_info_cls = WeightsyncTrainerInitInfo

    def __init__(self, *, client: Any, source: Any, is_sender: bool, rank: int,
                 agent: TrainerAgent, info: WeightsyncTrainerInitInfo):
        super().__init__(client=client, source=source, is_sender=is_sender, rank=rank)
        self.clients = list(client) if isinstance(client, (list, tuple)) else [client]
        self.agent = agent
        self.timeout = info.timeout
        self.next_step = info.first_step

    @classmethod
    def trainer_init(cls, init_info: WeightsyncTrainerInitInfo, *, client: Any,
                     source: Any = None) -> "WeightsyncTrainerWeightTransferEngine":
        if source is None:
            raise ValueError("weightsync trainer engine: a source (ModuleSource) is required")
        module = _module_of(source)
        clients = list(client) if isinstance(client, (list, tuple)) else [client]
        with JobPlan(_plan_options(init_info.options)) as plan:
            per_engine = init_info.ranks_per_engine or plan.inference_world // len(clients)
        if per_engine * len(clients) != plan.inference_world:
            raise ValueError(f"weightsync trainer: {len(clients)} engine(s) of {per_engine} "
                             f"ranks do not make the plan's {plan.inference_world} inference ranks")
        joins = [lambda c=c, i=i: c.init_weight_transfer_engine(
                     {"options": init_info.options, "rank_offset": i * per_engine,
                      "ignore": init_info.ignore})
                 for i, c in enumerate(clients)] if init_info.is_sender else []
        # Creating an agent waits for every rank of the job, the engines' workers included.
        agent = _concurrently(joins, lambda: trainer_agent(module, init_info.options,
                                                           init_info.rank),
                              init_info.timeout, "init_weight_transfer_engine")
        return cls(client=client, source=source, is_sender=init_info.is_sender,
                   rank=init_info.rank, agent=agent, info=init_info)

    def send_weights(self) -> None:
        """One push of what the parameters hold now, as the next step. A failed push raises on
        every rank (the engines' update_weights raised too, so vLLM reports their weights
        incomplete); the next send_weights pushes the following step and repairs them."""
        step, self.next_step = self.next_step, self.next_step + 1
        if self.is_sender:
            for c in self.clients:
                c.start_weight_update()
        serves = [lambda c=c: c.update_weights({"step": step, "timeout": self.timeout})
                  for c in self.clients] if self.is_sender else []
        _concurrently(serves, lambda: self.agent.push(step), self.timeout, "update_weights")
        if self.is_sender:
            for c in self.clients:
                c.finish_weight_update(weight_version=str(step))

    def shutdown(self) -> None:
        self.agent.close()


__all__ = ["WeightsyncTrainerInitInfo", "WeightsyncTrainerWeightTransferEngine"]
