"""One rank of the two-process push test (test_push.py): a trainer that pushes `--steps` steps
of seeded weights, or an inference rank that serves them and saves its destination bytes after
each push as STEP.npz in --out. Exit status 0 when every push succeeded."""
import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "python"))
import weightsync  # noqa: E402


def source_values(specs, seed, step):
    """The trainer's weights at `step`: small normal values, different at every step."""
    rng = np.random.default_rng([seed, step])
    out = {}
    for s in specs:
        values = rng.normal(0.0, 0.02, s.shape).astype(np.float32)
        out[s.name] = values.astype(weightsync.numpy_dtype(s.dtype))
    return out


def shard_values(plan, rank, full):
    """Trainer `rank`'s rows of the full tensors: dim 0 split in rank order, sized as the plan's
    shards (torch.chunk), so every trainer count holds the same global weights."""
    start = {}
    for r in range(rank):
        for s in plan.trainer_sources(r):
            start[s.name] = start.get(s.name, 0) + s.shape[0]
    return {s.name: full[s.name][start.get(s.name, 0):start.get(s.name, 0) + s.shape[0]]
            for s in plan.trainer_sources(rank)}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--role", choices=["trainer", "inference"], required=True)
    p.add_argument("--options", required=True, help="WS_OPTIONS JSON")
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--out")
    args = p.parse_args()
    options = json.loads(args.options)
    plan_options = {k: v for k, v in options.items() if k not in ("store_address", "store_token")}
    plan = weightsync.JobPlan(plan_options)
    if args.role == "trainer":
        full_specs = weightsync.JobPlan(plan_options, trainer="fsdp=1").trainer_sources(0)
        sources = weightsync.allocate(plan.trainer_sources(args.rank))
        with weightsync.TrainerAgent(options, args.rank, sources) as trainer:
            for step in range(1, args.steps + 1):
                full = source_values(full_specs, args.seed, step)
                for name, values in shard_values(plan, args.rank, full).items():
                    sources[name][...] = values  # in place: the agent holds these buffers
                report = trainer.push(step)
                print(f"trainer {args.rank} pushed step {report.step}: {report.bytes} bytes, "
                      f"{report.writes} writes, gathered {report.gather_bytes} bytes, "
                      f"{report.seconds:.3f} s", flush=True)
        return 0
    specs = plan.inference_destinations(0)
    destinations = weightsync.allocate(specs)
    calls = []
    with weightsync.InferenceAgent(options, 0, destinations,
                                   pause=lambda: calls.append("pause"),
                                   post_update=lambda: calls.append("post_update"),
                                   resume=lambda: calls.append("resume")) as agent:
        for step in range(1, args.steps + 1):
            report = agent.serve_one_push(60.0)
            if report is None:
                print(f"inference: no push {step} within 60 s", flush=True)
                return 1
            np.savez(os.path.join(args.out, f"{report.step}.npz"),
                     **{n: np.ascontiguousarray(getattr(a, "array", a)).view(np.uint8)
                        for n, a in destinations.items()})
            print(f"inference served step {report.step}: {report.bytes} bytes", flush=True)
        status = agent.status()
    with open(os.path.join(args.out, "status.json"), "w") as f:
        json.dump({"status": status, "hooks": calls}, f)
    return 0


if __name__ == "__main__":
    sys.exit(main())
