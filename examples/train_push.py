#!/usr/bin/env python3
"""A trainer rank that pushes its model's weights into inference engines after every step.

Runs on CPU (or CUDA with --device cuda): a tiny GLM-5-shaped model (the glm5_tiny preset) stands
in for the real one, and "training" overwrites the weights in place with seeded values, so a
receiver can check every byte. Start the receiver first (examples/serve_receive.py prints this
command line), then one of these per trainer rank:

    WEIGHTSYNC_STORE_TOKEN=... python examples/train_push.py --store HOST:PORT --rank 0 --trainers 2

The store's token comes from $WEIGHTSYNC_STORE_TOKEN or --token-file, never from the command line
(any user of the machine can read command lines with `ps`).

--fsdp2 tcp://HOST:PORT shards the model with FSDP2's fully_shard over the trainers first
(torch.distributed: gloo on CPU, nccl on CUDA), so each rank passes its DTensor shards.
"""
import argparse
import json
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import weightsync  # noqa: E402
import weightsync.torch as wst  # noqa: E402

# Every rank of a job passes the same options; the plan the ranks compute from them says which
# shard of which tensor each trainer passes and where its converted bytes go.
OPTIONS = dict(job_id="example", model="glm_moe_dsa", preset="glm5_tiny", source_format="hf",
               target_format="vllm", inference="tp=1", transport="ucx")


def weights_at(specs, seed, step):
    """The full model's weights after `step`: seeded normal values, different at every step."""
    gen = torch.Generator().manual_seed(seed * 1_000_003 + step)
    return {s.name: (torch.randn(s.shape, generator=gen) * 0.02).to(getattr(torch, s.dtype))
            for s in specs}


def build_model(specs, device):
    """An nn.Module whose named_parameters() are the Hugging Face names of `specs`, as a
    transformers model of this architecture would have them."""
    root = torch.nn.Module()
    for s in specs:
        *path, leaf = s.name.split(".")
        module = root
        for part in path:
            if not hasattr(module, part):
                module.add_module(part, torch.nn.Module())
            module = getattr(module, part)
        module.register_parameter(leaf, torch.nn.Parameter(
            torch.zeros(s.shape, dtype=getattr(torch, s.dtype), device=device)))
    return root


def set_weights(model, values, rank, world):
    """The "optimizer step": writes `values` (full tensors) into the parameters in place, since
    the agent holds their memory; an FSDP2 parameter takes its rank's torch.chunk rows."""
    with torch.no_grad():
        for name, value in values.items():
            param = model.get_parameter(name)
            if hasattr(param, "to_local"):  # a DTensor
                chunks = torch.chunk(value, world)
                if rank < len(chunks):
                    param.to_local().copy_(chunks[rank])
            else:
                param.copy_(value)


def fsdp2_shard(model, rank, world, init_method, device):
    """Shards every parameter of `model` over the trainers, as an FSDP2 training script does."""
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    try:
        from torch.distributed.fsdp import fully_shard
    except ImportError:  # torch 2.4
        from torch.distributed._composable.fsdp import fully_shard
    backend = "nccl" if device.startswith("cuda") else "gloo"
    dist.init_process_group(backend, rank=rank, world_size=world, init_method=init_method)
    fully_shard(model, mesh=init_device_mesh(device.split(":")[0], (world,)))


def store_token(token_file):
    """The store's token: from `token_file`, else $WEIGHTSYNC_STORE_TOKEN."""
    if token_file:
        with open(token_file) as f:
            return f.read().strip()
    token = os.environ.get("WEIGHTSYNC_STORE_TOKEN")
    if not token:
        sys.exit("no store token: set WEIGHTSYNC_STORE_TOKEN or pass --token-file")
    return token


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="the store's HOST:PORT")
    p.add_argument("--token-file", help="file holding the store's token "
                   "(default: $WEIGHTSYNC_STORE_TOKEN)")
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--trainers", type=int, default=1, help="FSDP ranks of the trainer")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--options", default="{}", help="JSON overriding the job options")
    p.add_argument("--fsdp2", metavar="INIT_METHOD", help="fully_shard the model first")
    args = p.parse_args()
    if args.device.startswith("cuda"):
        torch.cuda.set_device(torch.device(args.device))
    options = dict(OPTIONS, trainer=f"fsdp={args.trainers}", store_address=args.store,
                   store_token=store_token(args.token_file), **json.loads(args.options))

    # The model as a single-process trainer holds it: every rank keeps the full parameters here
    # and passes its FSDP chunk; an FSDP2 model passes its DTensor shards the same way.
    full_specs = weightsync.JobPlan({k: v for k, v in options.items() if "store" not in k},
                                    trainer="fsdp=1").trainer_sources(0)
    model = build_model(full_specs, args.device)
    if args.fsdp2:
        fsdp2_shard(model, args.rank, args.trainers, args.fsdp2, args.device)
        sharded = sum(hasattr(p, "to_local") for p in model.parameters())
        print(f"trainer {args.rank}: {sharded} parameters are FSDP2 DTensors", flush=True)
    with wst.trainer_agent(model, options, args.rank) as agent:
        for step in range(1, args.steps + 1):
            values = weights_at(full_specs, args.seed, step)
            set_weights(model, {n: v.to(args.device) for n, v in values.items()}, args.rank,
                        args.trainers)
            report = agent.push(step)
            print(f"trainer {args.rank}: pushed step {report.step}, {report.bytes} bytes in "
                  f"{report.seconds:.3f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
