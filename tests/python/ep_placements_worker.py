"""One of 4 gloo processes for test_torch.py's expert-parallel test: the plan's trainer is
fsdp=4,ep=2 (torchtitan source format); the expert stacks are DTensors placed as torchtitan
places them (EP shards dim 0 over the `ep` mesh dim, FSDP shards each ep rank's experts again
over `dp_shard_mod_ep`, which DTensor records as _StridedShard(0, split_factor=ep) + Shard(0)),
the other tensors FSDP2's Shard(0) over all 4 ranks. Each rank prints one JSON line of what it
found. The ranks are forked from this process once torch is imported (four torch imports at once
take most of a minute on a 2-core machine), before torch has run anything: a fork after torch's
OpenMP threads started hangs the children's first parallel op.

Usage: ep_placements_worker.py INIT_METHOD"""
import json
import multiprocessing
import os
import sys
import time
from datetime import timedelta

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.tensor import DTensor, Shard
from torch.distributed.tensor.placement_types import _StridedShard

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))  # as the examples find it
import weightsync  # noqa: E402
import weightsync.torch as wst  # noqa: E402
from train_push import weights_at  # noqa: E402

EP, FSDP = 2, 4
OPTIONS = dict(model="glm_moe_dsa", preset="glm5_tiny", source_format="torchtitan",
               target_format="vllm", inference="tp=1", transport="ucx")


def expert_dtensor(full, mesh, placements):
    """The DTensor torchtitan's EP + FSDP2 would hold: this rank's rows, chunked over ep first,
    then over the ep rank's FSDP group (torch.chunk both times), with the global geometry."""
    m, e = mesh.get_coordinate()
    local = full.chunk(EP)[e].chunk(FSDP // EP)[m].contiguous()
    return DTensor.from_local(local, mesh, placements, run_check=False,
                              shape=full.shape, stride=full.stride())


def dim1_split(full, mesh):
    """FSDP's Shard(0) over dp_shard_mod_ep, then dim 1 (not experts) over ep."""
    m, e = mesh.get_coordinate()
    local = full.chunk(FSDP // EP)[m].chunk(EP, dim=1)[e].contiguous()
    return DTensor.from_local(local, mesh, [Shard(0), Shard(1)], run_check=False,
                              shape=full.shape, stride=full.stride())


def fsdp_dtensor(full, mesh, rank):
    """FSDP2's Shard(0) over all ranks (torch.chunk: trailing ranks may hold no rows)."""
    chunks = full.chunk(FSDP)
    local = chunks[rank] if rank < len(chunks) else full[:0]
    return DTensor.from_local(local.contiguous(), mesh, [Shard(0)], run_check=False,
                              shape=full.shape, stride=full.stride())


def error_of(tensors, plan, rank):
    try:
        wst.sources_from_module(tensors, plan, rank)
    except ValueError as e:
        return str(e)
    return None


def run_rank(rank, init):
    full = weights_at(weightsync.JobPlan(OPTIONS, trainer="fsdp=1").trainer_sources(0), 5, 1)
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=FSDP,
                            timeout=timedelta(seconds=60))
    names = ("dp_shard_mod_ep", "ep")
    # The plan numbers ranks ep-major (rank = ep_rank * fsdp/ep + rank in the ep group), so
    # mesh coordinate (m, e) is rank e * 2 + m; torchtitan's init_device_mesh order is m * 2 + e.
    plan_order = DeviceMesh("cpu", torch.tensor([[0, 2], [1, 3]]), mesh_dim_names=names)
    titan_order = init_device_mesh("cpu", (FSDP // EP, EP), mesh_dim_names=names)
    world = init_device_mesh("cpu", (FSDP,))
    strided = [_StridedShard(0, split_factor=EP), Shard(0)]
    plan = weightsync.JobPlan(OPTIONS, trainer=f"fsdp={FSDP},ep={EP}")
    experts = sorted(n for n in full if ".experts." in n)

    def model(mesh, placements):
        return {n: expert_dtensor(t, mesh, placements) if n in experts
                else fsdp_dtensor(t, world, rank)
                for n, t in full.items()}

    dtensors = model(plan_order, strided)
    sources = wst.sources_from_module(dtensors, plan, rank)
    # The plan's reference: the same plan cutting the unsharded tensors (rows by rank order).
    reference = wst.sources_from_module(full, plan, rank)
    specs = {s.name: s for s in plan.trainer_sources(rank)}
    result = dict(
        rank=rank, experts=len(experts), placements=str(dtensors[experts[0]].placements),
        names_match=sorted(sources) == sorted(specs),
        shapes_match=all(tuple(t.shape) == specs[n].shape for n, t in sources.items()),
        sources=len(sources),
        differ=[n for n, t in sources.items() if not torch.equal(t, reference[n])],
        views=all(sources[n].data_ptr() == dtensors[n].to_local().data_ptr() for n in sources),
        # Right shapes, other experts: torchtitan's own rank order against the plan's.
        titan_order_error=error_of(model(titan_order, strided), plan, rank),
        # Expert stacks split along their rows' dim 1 on the ep mesh dim: not whole rows.
        dim1_error=error_of(dict(dtensors, **{experts[0]: dim1_split(
            full[experts[0]], plan_order)}), plan, rank))
    print(json.dumps(result), flush=True)
    dist.destroy_process_group()


def main():
    init = sys.argv[1]
    fork = multiprocessing.get_context("fork")
    ranks = [fork.Process(target=run_rank, args=(r, init)) for r in range(FSDP)]
    for p in ranks:
        p.start()
    deadline = time.monotonic() + 90  # under the test's 150 s, so hung ranks get killed here
    for p in ranks:
        p.join(timeout=max(0.0, deadline - time.monotonic()))
    hung = [r for r, p in enumerate(ranks) if p.is_alive()]
    for r in hung:
        ranks[r].kill()
    failed = {r: p.exitcode for r, p in enumerate(ranks) if p.exitcode != 0}
    if failed:
        sys.exit(f"expert-parallel ranks failed (rank: exit code, None = hung): {failed}")


if __name__ == "__main__":
    main()
