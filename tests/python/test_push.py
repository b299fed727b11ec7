"""Trainer and inference ranks in their own processes, over UCX with the embedded store: after
each push the inference rank's destination bytes equal convert_tensors of the trainers' weights.
One trainer, and two trainers whose FSDP shards split FP8 blocks (gathered units)."""
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time

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


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seconds_until_closed(port):
    """Connects, sends nothing, and returns when the server closes the connection."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.recv(1)
    return time.monotonic() - start


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


def test_nan_push_fails_named_and_the_next_push_repairs():
    """Both agents in one process (threads; ctypes releases the GIL): a NaN in step 2 fails the
    push on both sides naming the tensor and element; step 3 commits and the bytes are right."""
    options = dict(OPTIONS, job_id="pytest-nan",
                   config={"push.transfer_timeout": "30s", "push.pause_timeout": "30s"})
    # The inference rank also serves its admin endpoint where admin.listen says, and closes a
    # connection whose request has not arrived within admin.io_timeout.
    admin_port = free_port()
    inference_options = dict(options, admin_token="admin-secret",
                             config=dict(options["config"],
                                         **{"admin.listen": f"127.0.0.1:{admin_port}",
                                            "admin.io_timeout": "0.5s"}))
    admin = {}
    plan = weightsync.JobPlan(OPTIONS)
    specs = plan.trainer_sources(0)
    sources = weightsync.allocate(specs)
    destinations = weightsync.allocate(plan.inference_destinations(0))
    served = []
    with weightsync.Store() as store:
        options.update(store_address=store.address, store_token=store.token)
        inference_options.update(store_address=store.address, store_token=store.token)

        def serve():
            with weightsync.InferenceAgent(inference_options, 0, destinations) as agent:
                admin["address"] = agent.admin_address
                admin["closed_after_s"] = seconds_until_closed(admin_port)
                for _ in range(3):
                    try:
                        served.append(agent.serve_one_push(60.0))
                    except weightsync.WeightsyncError as e:
                        served.append(e)
                served.append(agent.status())

        thread = threading.Thread(target=serve)
        thread.start()
        errors = []
        with weightsync.TrainerAgent(options, 0, sources) as trainer:
            for step in (1, 2, 3):
                for name, values in source_values(specs, SEED, step).items():
                    sources[name][...] = values
                if step == 2:
                    sources["model.layers.1.self_attn.q_b_proj.weight"][3, 4] = np.nan
                try:
                    trainer.push(step)
                except weightsync.WeightsyncError as e:
                    errors.append((step, str(e)))
        thread.join(120)
    assert admin["address"] == f"127.0.0.1:{admin_port}", admin
    assert admin["closed_after_s"] < 3, admin  # admin.io_timeout 0.5 s, not the default 5 s
    assert len(errors) == 1 and errors[0][0] == 2, errors
    assert re.search(r"q_b_proj.weight holds a NaN or Inf at element 4 of row 3", errors[0][1])
    assert [getattr(r, "step", None) for r in served[:3]] == [1, None, 3], served
    assert "q_b_proj" in str(served[1])
    assert served[3]["committed_step"] == 3 and served[3].get("torn_step") is None, served[3]
    expected = weightsync.convert_tensors("glm_moe_dsa", "hf", "vllm",
                                          source_values(specs, SEED, 3))
    name = "model.layers.1.self_attn.q_b_proj.weight"
    assert np.array_equal(destinations[name].view(np.uint8), expected[name].view(np.uint8))


def test_hook_exception_reaches_every_rank():
    """A post_update hook that raises fails the push with the exception's type and message on the
    inference rank, the trainer and /status; the next push (hook fixed) commits."""
    options = dict(OPTIONS, job_id="pytest-hook",
                   config={"push.transfer_timeout": "30s", "push.pause_timeout": "30s"})
    plan = weightsync.JobPlan(OPTIONS)
    specs = plan.trainer_sources(0)
    sources = weightsync.allocate(specs)
    destinations = weightsync.allocate(plan.inference_destinations(0))
    served = []
    broken = [True]

    def post_update():
        if broken[0]:
            broken[0] = False
            raise ValueError("absorbed MLA matrices out of date")

    with weightsync.Store() as store:
        options.update(store_address=store.address, store_token=store.token)

        def serve():
            with weightsync.InferenceAgent(options, 0, destinations,
                                           post_update=post_update) as agent:
                for _ in range(2):
                    try:
                        served.append(agent.serve_one_push(60.0))
                    except weightsync.WeightsyncError as e:
                        served.append(e)
                        served.append(agent.status())
                served.append(agent.status())

        thread = threading.Thread(target=serve)
        thread.start()
        errors = []
        with weightsync.TrainerAgent(options, 0, sources) as trainer:
            for step in (1, 2):
                for name, values in source_values(specs, SEED, step).items():
                    sources[name][...] = values
                try:
                    trainer.push(step)
                except weightsync.WeightsyncError as e:
                    errors.append((step, str(e)))
        thread.join(120)
    cause = "post_update hook failed: ValueError: absorbed MLA matrices out of date"
    assert len(errors) == 1 and errors[0][0] == 1 and cause in errors[0][1], errors
    assert isinstance(served[0], weightsync.WeightsyncError) and cause in str(served[0]), served
    assert cause in json.dumps(served[1]), served[1]
    assert getattr(served[2], "step", None) == 2, served
    assert served[3]["committed_step"] == 2, served[3]
