#!/usr/bin/env python3
"""An inference rank that receives pushed weights into torch tensors (its "engine memory").

With --start-store it also runs the job's store and prints the trainer command lines:

    python examples/serve_receive.py --start-store --trainers 2 --steps 3

--out DIR saves the received bytes after each push as DIR/STEP.npz (uint8 views, vLLM names).
"""
import argparse
import json
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "python"))
import weightsync  # noqa: E402
from train_push import OPTIONS, store_token  # noqa: E402


def serve(options, steps, device, out):
    plan = weightsync.JobPlan({k: v for k, v in options.items() if "store" not in k})
    # The engine's parameters; a real engine registers the tensors its model already holds.
    weights = weightsync.allocate(plan.inference_destinations(0), like="torch", device=device)
    hooks = dict(pause=lambda: print("inference: pause", flush=True),
                 post_update=lambda: None,  # e.g. reset prefix caches that hold old weights
                 resume=lambda: print("inference: resume", flush=True))
    with weightsync.InferenceAgent(options, 0, weights, **hooks) as agent:
        for _ in range(steps):
            report = agent.serve_one_push(timeout=120)
            if report is None:
                print("inference: no push within 120 s", flush=True)
                return 1
            print(f"inference: received step {report.step}, {report.bytes} bytes", flush=True)
            if out:
                np.savez(os.path.join(out, f"{report.step}.npz"),
                         **{n: t.cpu().view(torch.uint8).numpy() for n, t in weights.items()})
    return 0


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--store", help="the store's HOST:PORT (omit with --start-store)")
    p.add_argument("--token-file", help="file holding the store's token "
                   "(default: $WEIGHTSYNC_STORE_TOKEN)")
    p.add_argument("--start-store", action="store_true")
    p.add_argument("--trainers", type=int, default=1)
    p.add_argument("--steps", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--options", default="{}", help="JSON overriding the job options")
    p.add_argument("--out")
    args = p.parse_args()
    options = dict(OPTIONS, trainer=f"fsdp={args.trainers}", **json.loads(args.options))
    if not args.start_store:
        return serve(dict(options, store_address=args.store,
                          store_token=store_token(args.token_file)),
                     args.steps, args.device, args.out)
    with weightsync.Store() as store, tempfile.TemporaryDirectory() as private:
        # The trainers read the token from a file only this user can read (mkdtemp is 0700).
        token_file = os.path.join(private, "token")
        with open(os.open(token_file, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
            f.write(store.token)
        here = os.path.dirname(os.path.abspath(__file__))
        for rank in range(args.trainers):
            print(f"start: python {here}/train_push.py --store {store.address} --token-file "
                  f"{token_file} --rank {rank} --trainers {args.trainers} --steps {args.steps}",
                  flush=True)
        return serve(dict(options, store_address=store.address, store_token=store.token),
                     args.steps, args.device, args.out)


if __name__ == "__main__":
    sys.exit(main())
