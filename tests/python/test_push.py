"""Trainer and inference ranks in their own processes, over UCX with the embedded store: after
each push the inference rank's destination bytes equal convert_tensors of the trainers' weights.
One trainer, and two trainers whose FSDP shards split FP8 blocks (gathered units)."""
import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import weightsync
from push_worker import source_values

HERE = os.path.dirname(os.path.abspath(__file__))
OPTIONS = dict(job_id="pytest-push", model="glm_moe_dsa", preset="glm5_tiny",
               source_format="hf", target_format="vllm", trainer="fsdp=1", inference="tp=1",
               transport="ucx", config={"agent.join_timeout": "60s",
                                        "push.transfer_timeout": "60s"})
STEPS = 2
SEED = 7


@pytest.mark.parametrize("trainers", [1, 2])
def test_push_matches_convert_tensors(tmp_path, trainers):
    with weightsync.Store() as store:
        options = dict(OPTIONS, store_address=store.address, store_token=store.token,
                       trainer=f"fsdp={trainers}")
        procs = {}
        for role, rank in [("inference", 0)] + [("trainer", r) for r in range(trainers)]:
            procs[f"{role} {rank}"] = subprocess.Popen(
                [sys.executable, os.path.join(HERE, "push_worker.py"), "--role", role,
                 "--rank", str(rank), "--options", json.dumps(options), "--seed", str(SEED),
                 "--steps", str(STEPS), "--out", str(tmp_path)],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        outputs = {}
        for role, proc in procs.items():
            try:
                outputs[role], _ = proc.communicate(timeout=240)
            except subprocess.TimeoutExpired:
                for p in procs.values():
                    p.kill()
                pytest.fail(f"{role} did not finish in 240 s")
        for role, proc in procs.items():
            assert proc.returncode == 0, f"{role} failed:\n{outputs[role]}"

    if trainers > 1:  # the case this parametrization exists for
        assert re.search(r"gathered [1-9]", "".join(outputs.values())), outputs
    plan = weightsync.JobPlan(OPTIONS)
    specs = plan.trainer_sources(0)
    for step in range(1, STEPS + 1):
        expected = weightsync.convert_tensors("glm_moe_dsa", "hf", "vllm",
                                              source_values(specs, SEED, step))
        received = np.load(tmp_path / f"{step}.npz")
        assert sorted(received.files) == sorted(expected), f"step {step}: names differ"
        for name, e in expected.items():
            # Row-padded destinations (the vocabulary, to vLLM's multiple) hold the converted
            # rows first; the padding is never written, so it stays as allocated (zero).
            e_bytes = np.ascontiguousarray(e).view(np.uint8)
            got = received[name]
            assert got.shape[1:] == e_bytes.shape[1:] and got.shape[0] >= e_bytes.shape[0], \
                f"step {step} {name}: received {got.shape} bytes, expected {e_bytes.shape}"
            diff = np.nonzero(got[:e_bytes.shape[0]].reshape(-1) != e_bytes.reshape(-1))[0]
            assert diff.size == 0, f"step {step} {name}: {diff.size} bytes differ at {diff[:5]}"
            assert not got[e_bytes.shape[0]:].any(), f"step {step} {name}: padding was written"
    done = json.loads((tmp_path / "status.json").read_text())
    assert done["hooks"] == ["pause", "post_update", "resume"] * STEPS
    assert done["status"].get("committed_step") == STEPS, done["status"]
