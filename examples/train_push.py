#!/usr/bin/env python3
"""A trainer rank that pushes its model's weights into inference engines after every step.

Runs on CPU (or CUDA with --device cuda): a tiny GLM-5-shaped model (the glm5_tiny preset) stands
in for the real one, and "training" overwrites the weights in place with seeded values, so a
receiver can check every byte. Start the receiver first (examples/serve_receive.py prints this
command line), then one of these per trainer rank:

    python examples/train_push.py --store HOST:PORT --token TOKEN --rank 0 --trainers 2
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


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", required=True, help="the store's HOST:PORT")
    p.add_argument("--token", required=True)
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--trainers", type=int, default=1, help="FSDP ranks of the trainer")
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--options", default="{}", help="JSON overriding the job options")
    args = p.parse_args()
    options = dict(OPTIONS, trainer=f"fsdp={args.trainers}", store_address=args.store,
                   store_token=args.token, **json.loads(args.options))

    # The model as a single-process trainer holds it: every rank keeps the full parameters here
    # and passes its FSDP chunk; an FSDP2 model passes its DTensor shards the same way.
    full_specs = weightsync.JobPlan({k: v for k, v in options.items() if "store" not in k},
                                    trainer="fsdp=1").trainer_sources(0)
    model = build_model(full_specs, args.device)
    with wst.trainer_agent(model, options, args.rank) as agent:
        for step in range(1, args.steps + 1):
            with torch.no_grad():  # the "optimizer step": in place, the agent holds the memory
                for name, value in weights_at(full_specs, args.seed, step).items():
                    model.get_parameter(name).copy_(value)
            report = agent.push(step)
            print(f"trainer {args.rank}: pushed step {report.step}, {report.bytes} bytes in "
                  f"{report.seconds:.3f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
