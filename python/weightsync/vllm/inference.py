"""The worker side of vLLM's weight-transfer API (vllm/distributed/weight_transfer/base.py,
vLLM 0.34.0) as a weightsync inference agent over the worker's own parameter tensors.

vLLM's lifecycle maps onto the push protocol (docs/contract.md):
- init_transfer_engine: the agent joins the job, registering the parameters the kernels read;
- start_weight_update: the agent is held paused (vLLM's pause_generation has stopped requests);
- update_weights {"step": N}: serves weightsync push N: the trainers write converted bytes straight
  into the parameters, derived weights (MLA's absorbed matrices) are recomputed, then the commit;
- finish_weight_update: releases the hold, refused while the weights are torn (a failed push),
  unless update_weights {"force_resume": true} accepted them.
A failed push raises from update_weights, which is vLLM's error path: the worker ends the update
and reports its weights incomplete until a later update finishes.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional

import torch
from vllm.distributed.weight_transfer.base import (WeightTransferEngine,
                                                   WeightTransferInitInfo,
                                                   WeightTransferUpdateInfo)

from ..agents import InferenceAgent
from ..plan import JobPlan
from ..torch import _plan_options
from .model import destinations_from_vllm_model, expert_map_of, worker_rank


@dataclass
class WeightsyncInitInfo(WeightTransferInitInfo):
    """What the trainer side sends to every worker once (vLLM's init_weight_transfer_engine)."""
    options: Dict[str, Any]     # WS_OPTIONS of the job, the store's address and token included
    rank_offset: int = 0        # the global inference rank of this engine's first worker
    ignore: List[str] = field(default_factory=list)  # vLLM parameters trainers do not push

    def __post_init__(self):
        if not isinstance(self.options, dict) or not self.options:
            raise ValueError("weightsync init_info: \"options\" must be the job's options object")
        if not isinstance(self.rank_offset, int) or self.rank_offset < 0:
            raise ValueError(f"weightsync init_info: rank_offset {self.rank_offset!r} is not a "
                             "non-negative integer")


@dataclass
class WeightsyncUpdateInfo(WeightTransferUpdateInfo):
    """One update_weights call: serve push `step`, or accept torn weights (`force_resume`)."""
    step: Optional[int] = None
    timeout: float = 600.0      # seconds to wait for the trainers' push
    force_resume: bool = False

    def __post_init__(self):
        if self.force_resume == (self.step is not None):
            raise ValueError("weightsync update_info: give either \"step\" (the push to serve) or "
                             "\"force_resume\": true, not both or neither")
        if self.step is not None and (not isinstance(self.step, int) or self.step <= 0):
            raise ValueError(f"weightsync update_info: step {self.step!r} is not a positive "
                             "integer")
        if not self.timeout > 0:
            raise ValueError(f"weightsync update_info: timeout {self.timeout!r} is not positive")


class WeightsyncWeightTransferEngine(
        WeightTransferEngine[WeightsyncInitInfo, WeightsyncUpdateInfo]):
    """vLLM's weight-transfer engine "weightsync". ``derived_weight_hooks`` run after every push's
    writes and before its commit; a kernel backend that repacks weights after loading can add its
    repacking there. A hook that raises fails the push (the weights are then torn)."""

    init_info_cls = WeightsyncInitInfo
    update_info_cls = WeightsyncUpdateInfo
    supports_draft_weight_update = False

    def __init__(self, config, vllm_config, device: torch.device, model: torch.nn.Module):
        super().__init__(config, vllm_config, device, model)
        self.agent: Optional[InferenceAgent] = None
        self.destinations: Dict[str, torch.Tensor] = {}
        self.derived_weight_hooks: List[Callable[[], None]] = _mla_absorbed_weight_hooks(model)
        self.rank: Optional[int] = None
        self._active = False
        self._committed: Optional[int] = None  # the step this update committed
        self._forced = False

    def init_transfer_engine(self, init_info: WeightsyncInitInfo) -> None:
        if self.agent is not None:
            raise RuntimeError(f"weightsync inference rank {self.rank}: already initialised; "
                               "shut the transfer engine down first")
        rank = init_info.rank_offset + worker_rank(self.vllm_config)
        options = dict(init_info.options)
        with JobPlan(_plan_options(options)) as plan:
            destinations = destinations_from_vllm_model(self.model, plan, rank, init_info.ignore)
        expert_map = expert_map_of(self.model)
        if expert_map is not None:
            options["expert_map"] = expert_map
        self.agent = InferenceAgent(options, rank, destinations, post_update=self._derive)
        self.destinations, self.rank = destinations, rank

    def start_weight_update(self) -> None:
        agent = self._agent("start_weight_update")
        if self._active:
            raise RuntimeError(f"weightsync inference rank {self.rank}: start_weight_update "
                               "called while a weight update is active; finish it first")
        agent.pause()  # held: a committed push does not resume the rank, finish does
        self._active, self._committed, self._forced = True, None, False

    def update_weights(self, update_info: Dict[str, Any]) -> None:
        # vLLM's base class synchronizes the accelerator here; a weightsync commit already means
        # every write landed, and a CPU-only host has no accelerator to synchronize.
        self.receive_weights(self.parse_update_info(update_info))
        if self.device.type != "cpu":
            torch.accelerator.synchronize()

    def receive_weights(self, update_info: WeightsyncUpdateInfo) -> None:
        agent = self._agent("update_weights")
        if not self._active:
            raise RuntimeError(f"weightsync inference rank {self.rank}: update_weights outside "
                               "a weight update; call start_weight_update first")
        if update_info.force_resume:
            agent.resume(force=True)
            self._forced = True
            return
        try:
            self._committed = self._serve(agent, update_info)
        except BaseException:
            self._active = False  # vLLM's worker ends the update when update_weights raises
            raise

    def _serve(self, agent: InferenceAgent, update_info: WeightsyncUpdateInfo) -> int:
        report = agent.serve_one_push(update_info.timeout)
        if report is None:
            raise TimeoutError(f"weightsync inference rank {self.rank}: no push of step "
                               f"{update_info.step} came within {update_info.timeout} s")
        if report.step != update_info.step:
            raise RuntimeError(f"weightsync inference rank {self.rank}: committed step "
                               f"{report.step}, but update_weights asked for {update_info.step}")
        return report.step

    def finish_weight_update(self) -> None:
        agent = self._agent("finish_weight_update")
        if not self._active:
            raise RuntimeError(f"weightsync inference rank {self.rank}: finish_weight_update "
                               "without an active weight update")
        if self._committed is None and not self._forced:
            status = agent.status()
            raise RuntimeError(
                f"weightsync inference rank {self.rank}: no push committed in this update "
                f"(state {status.get('state')}, torn step {status.get('torn_step')}); the weights "
                "may be torn. Push again, or update_weights({\"force_resume\": true}) to serve "
                "them anyway")
        if not self._forced:
            agent.resume()
        self._active = False

    def shutdown(self) -> None:
        if self._active:
            raise RuntimeError(f"weightsync inference rank {self.rank}: shutdown during a weight "
                               "update")
        if self.agent is not None:
            self.agent.close()
            self.agent = None

    def _agent(self, call: str) -> InferenceAgent:
        if self.agent is None:
            raise RuntimeError(f"weightsync: {call} before init_weight_transfer_engine")
        return self.agent

    def _derive(self) -> None:
        for hook in self.derived_weight_hooks:
            hook()


def _mla_absorbed_weight_hooks(model: torch.nn.Module) -> List[Callable[[], None]]:
    """MLA layers derive W_UK_T / W_UV from kv_b_proj in process_weights_after_loading, which
    vLLM re-runs on reloads (it copies in place, keeping captured CUDA graphs valid)."""
    from vllm.model_executor.layers.attention.mla_attention import MLAAttention
    return [m.process_weights_after_loading for m in model.modules() if isinstance(m, MLAAttention)]


__all__ = ["WeightsyncInitInfo", "WeightsyncUpdateInfo", "WeightsyncWeightTransferEngine"]
