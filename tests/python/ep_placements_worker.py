"""The 4 trainer ranks and the inference rank of test_torch.py's expert-parallel test. The plan's
trainer is fsdp=4,ep=2 (torchtitan source format). Each trainer rank builds the model as
torchtitan's FSDP2 + EP parallelize does: the device mesh as torchtitan's ParallelDims builds it,
expert stacks distributed Shard(0) over the `ep` mesh dim (ExpertParallel), the experts module
fully_shard-ed over the efsdp dim (torch records _StridedShard(0, split_factor=ep) + Shard(0)), the
rest fully_shard-ed over the whole flattened dp_shard. It checks that weightsync.torch accepts its
DTensors and that they hold what the test computes by hand for torchtitan's rank order
(rank = efsdp_rank * ep + ep_rank), that two wrong splits are refused, then pushes. This process
serves the push as the inference rank and compares every byte with convert_tensors of the full
weights. Prints one JSON line per trainer rank and one for the inference rank.

The trainer ranks are forked from this process once torch is imported (four torch imports at once
take most of a minute on a 2-core machine), before torch has run anything: a fork after torch's
OpenMP threads started hangs the children's first parallel op.

Usage: ep_placements_worker.py INIT_METHOD"""
import json
import multiprocessing
import os
import queue
import sys
import time
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.device_mesh import DeviceMesh, init_device_mesh
from torch.distributed.fsdp import fully_shard
from torch.distributed.tensor import DTensor, Shard, distribute_tensor

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))  # as the examples find it
import weightsync  # noqa: E402
import weightsync.torch as wst  # noqa: E402
from train_push import build_model, weights_at  # noqa: E402

EP, FSDP = 2, 4
EFSDP = FSDP // EP
SEED, STEP = 5, 1
OPTIONS = dict(job_id="pytest-torch-ep", model="glm_moe_dsa", preset="glm5_tiny",
               source_format="torchtitan", target_format="vllm", trainer=f"fsdp={FSDP},ep={EP}",
               inference="tp=1", transport="ucx", config={"agent.join_timeout": "60s"})
PLAN_OPTIONS = {k: v for k, v in OPTIONS.items() if k not in ("job_id", "config")}
DEADLINE_S = 100  # under the test's 150 s, so hung ranks get killed here


def full_weights():
    specs = weightsync.JobPlan(PLAN_OPTIONS, trainer="fsdp=1").trainer_sources(0)
    return specs, weights_at(specs, SEED, STEP)


def torchtitan_meshes(style):
    """(efsdp mesh, ep mesh, dense mesh) as torchtitan's ParallelDims builds them for
    dp_shard=4, ep=2 (cp = tp = 1): "init_device_mesh" as its _build_mesh_with_ep does (mesh
    [dp_shard_mod_ep, dp_shard_in_ep], ep = dp_shard_in_ep, dp_shard flattened from both),
    "unflatten" as its current build_mesh does (a 1-D world mesh unflattened into the sparse
    mesh [efsdp, ep] and the dense mesh [fsdp]). Either way the ep index varies fastest."""
    if style == "init_device_mesh":
        mesh = init_device_mesh("cpu", (EFSDP, EP),
                                mesh_dim_names=("dp_shard_mod_ep", "dp_shard_in_ep"))
        dense = mesh["dp_shard_mod_ep", "dp_shard_in_ep"]._flatten("dp_shard_cp")
        return mesh["dp_shard_mod_ep"], mesh["dp_shard_in_ep"], dense
    world = init_device_mesh("cpu", (FSDP,), mesh_dim_names=("world",))
    sparse = world._unflatten(0, (EFSDP, EP), ("efsdp", "ep"))
    return sparse["efsdp"], sparse["ep"], world._unflatten(0, (FSDP,), ("fsdp",))


def old_plan_order_meshes():
    """The order the plan used before: ep-major (rank = ep_rank * efsdp + efsdp_rank), so mesh
    coordinate (m, e) is rank e * 2 + m. A genuinely different split of the same shapes."""
    mesh = DeviceMesh("cpu", torch.tensor([[0, 2], [1, 3]]), mesh_dim_names=("efsdp", "ep"))
    return mesh["efsdp"], mesh["ep"], init_device_mesh("cpu", (FSDP,))


def torchtitan_model(specs, full, meshes):
    """The model after torchtitan's apply_moe_ep_tp + apply_fsdp: every rank starts from the full
    weights, torch's own distribute_tensor and fully_shard shard them."""
    efsdp, ep, dense = meshes
    model = build_model(specs, "cpu")
    with torch.no_grad():
        for name, value in full.items():
            model.get_parameter(name).copy_(value)
    experts = sorted({n.rsplit(".", 1)[0] for n, p in model.named_parameters() if p.dim() == 3})
    for path in experts:
        module = model.get_submodule(path)
        for name, param in list(module.named_parameters(recurse=False)):
            module.register_parameter(name, torch.nn.Parameter(
                distribute_tensor(param.detach(), ep, [Shard(0)])))
        fully_shard(module, mesh=efsdp)
    fully_shard(model, mesh=dense)
    return model


def torchtitan_rows(full, rank):
    """What torchtitan's rank `rank` holds, by hand: experts chunked over ep, then each ep rank's
    experts over efsdp (rank = efsdp_rank * ep + ep_rank); the rest torch.chunk over all ranks."""
    efsdp_rank, ep_rank = divmod(rank, EP)
    out = {}
    for name, value in full.items():
        if value.dim() == 3:
            out[name] = value.chunk(EP)[ep_rank].chunk(EFSDP)[efsdp_rank]
        else:
            chunks = value.chunk(FSDP)
            out[name] = chunks[rank] if rank < len(chunks) else value[:0]
    return out


def dim1_split(full):
    """Not whole rows: dim 0 over efsdp, dim 1 (an expert's rows) over ep."""
    mesh = init_device_mesh("cpu", (EFSDP, EP), mesh_dim_names=("efsdp", "ep"))
    m, e = mesh.get_coordinate()
    local = full.chunk(EFSDP)[m].chunk(EP, dim=1)[e].contiguous()
    return DTensor.from_local(local, mesh, [Shard(0), Shard(1)], run_check=False,
                              shape=full.shape, stride=full.stride())


def error_of(tensors, plan, rank):
    try:
        wst.sources_from_module(tensors, plan, rank)
    except ValueError as e:
        return str(e)
    return None


def run_rank(rank, init, results, store_info):
    specs, full = full_weights()
    dist.init_process_group("gloo", init_method=init, rank=rank, world_size=FSDP,
                            timeout=timedelta(seconds=60))
    plan = weightsync.JobPlan(PLAN_OPTIONS)
    model = torchtitan_model(specs, full, torchtitan_meshes("init_device_mesh"))
    params = dict(model.named_parameters())
    experts = sorted(n for n, t in full.items() if t.dim() == 3)
    sources = wst.sources_from_module(model, plan, rank)
    by_hand = torchtitan_rows(full, rank)
    other_style = torchtitan_model(specs, full, torchtitan_meshes("unflatten"))
    old_order = torchtitan_model(specs, full, old_plan_order_meshes())
    wrong = experts[0]
    result = dict(
        rank=rank, experts=len(experts), expert_placements=str(params[wrong].placements),
        dense_placements=str(params["model.norm.weight"].placements),
        names_match=sorted(sources) == sorted(s.name for s in plan.trainer_sources(rank)),
        # torch's own shards are torchtitan's rows as written out by hand ...
        torch_is_torchtitan=[n for n, p in params.items()
                             if not torch.equal(p.to_local(), by_hand[n])],
        # ... and the plan gives this rank exactly those rows, as views of the model's memory.
        differ=[n for n, t in sources.items() if not torch.equal(t, by_hand[n])],
        views=all(t.data_ptr() == params[n].to_local().data_ptr() for n, t in sources.items()),
        expert_rows={n: [int(v) for v in plan.trainer_source_rows(rank)[n]] for n in experts[:1]},
        unflatten_error=error_of(other_style, plan, rank),
        old_order_error=error_of(old_order, plan, rank),
        dim1_error=error_of(dict(params, **{wrong: dim1_split(full[wrong])}), plan, rank))
    address, token = store_info.get(timeout=60)
    options = dict(OPTIONS, store_address=address, store_token=token)
    with wst.trainer_agent(model, options, rank) as agent:
        result["pushed_bytes"] = agent.push(STEP).bytes
    results.put(result)
    dist.destroy_process_group()


def serve_and_check(store):
    """The inference rank: receives the push and compares it with convert_tensors."""
    options = dict(OPTIONS, store_address=store.address, store_token=store.token)
    plan = weightsync.JobPlan(PLAN_OPTIONS)
    weights = weightsync.allocate(plan.inference_destinations(0))
    with weightsync.InferenceAgent(options, 0, weights) as agent:
        report = agent.serve_one_push(timeout=DEADLINE_S - 20)
    if report is None:
        return dict(inference=0, error="no push arrived")
    _, full = full_weights()
    expected = weightsync.convert_tensors("glm_moe_dsa", "torchtitan", "vllm", full)
    differ = []
    for name, e in expected.items():
        want = np.ascontiguousarray(e).view(np.uint8).reshape(-1)
        got = np.ascontiguousarray(weights[name]).view(np.uint8).reshape(-1)
        if not np.array_equal(got[:want.size], want):  # rows past the vocabulary: padding
            differ.append(name)
    return dict(inference=0, step=report.step, bytes=report.bytes, tensors=len(expected),
                names_match=sorted(expected) == sorted(weights), differ=differ)


def main():
    init = sys.argv[1]
    fork = multiprocessing.get_context("fork")
    results, store_info = fork.Queue(), fork.Queue()
    # Daemons: if this process fails, its trainer ranks go with it.
    ranks = [fork.Process(target=run_rank, args=(r, init, results, store_info), daemon=True)
             for r in range(FSDP)]
    for p in ranks:
        p.start()
    deadline = time.monotonic() + DEADLINE_S
    with weightsync.Store() as store:
        for _ in ranks:
            store_info.put((store.address, store.token))
        print(json.dumps(serve_and_check(store)), flush=True)
    for _ in ranks:
        try:
            print(json.dumps(results.get(timeout=max(1.0, deadline - time.monotonic()))),
                  flush=True)
        except queue.Empty:
            break
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
