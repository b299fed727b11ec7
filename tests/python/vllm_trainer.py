#!/usr/bin/env python3
"""A trainer rank of test_vllm.py: a model with Hugging Face names, pushed into the test's vLLM
engine by vLLM's trainer-side API: WeightTransferTrainerFactory.trainer_init with a
WeightsyncTrainerInitInfo, then send_weights() after each "step" (seeded weights written in place,
examples/train_push.py). Rank 0 is vLLM's sender: it drives the engine's calls over vllm_rpc.
Prints one line per step: "step N pushed" or "step N failed: ...".
"""
import argparse
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "python"))
sys.path.insert(0, os.path.join(HERE, "..", "..", "examples"))
import vllm_models  # noqa: E402,F401  (vLLM's CPU environment, before vLLM is imported)
import weightsync  # noqa: E402
import weightsync.vllm  # noqa: E402
from train_push import build_model, set_weights, weights_at  # noqa: E402
from vllm.distributed.weight_transfer import ModuleSource, WeightTransferTrainerFactory  # noqa
from vllm_rpc import EngineClient  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--rank", type=int, required=True)
    p.add_argument("--address", required=True, help="the engine's HOST:PORT (vllm_rpc)")
    p.add_argument("--options", required=True, help="the job's options (JSON, no store token)")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()
    options = dict(json.loads(args.options), store_token=os.environ["WEIGHTSYNC_STORE_TOKEN"])
    weightsync.vllm.register()
    from weightsync.vllm.trainer import WeightsyncTrainerInitInfo

    full_specs = weightsync.JobPlan({k: v for k, v in options.items() if "store" not in k},
                                    trainer="fsdp=1").trainer_sources(0)
    model = build_model(full_specs, "cpu")
    host, port = args.address.rsplit(":", 1)
    client = EngineClient((host, int(port)), bytes.fromhex(os.environ["WEIGHTSYNC_TEST_AUTHKEY"]))
    engine = WeightTransferTrainerFactory.trainer_init(
        WeightsyncTrainerInitInfo(rank=args.rank, options=options, timeout=120),
        client=client, source=ModuleSource(model))
    world = weightsync.JobPlan({k: v for k, v in options.items() if "store" not in k}).trainer_world
    for step in range(1, args.steps + 1):
        set_weights(model, weights_at(full_specs, args.seed, step), args.rank, world)
        try:
            engine.send_weights()
            print(f"step {step} pushed", flush=True)
        except Exception as e:  # the test reads what failed
            print(f"step {step} failed: {e}", flush=True)
    engine.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
