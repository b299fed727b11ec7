"""weightsync.torch: a trainer rank's sources from a torch model (plain parameters cut to the
rank's FSDP chunk, DTensor shards as they are), and a push of torch CPU tensors between processes
(examples/train_push.py -> examples/serve_receive.py) checked against convert_tensors.
ctest runs this file only where torch imports (run_pytest.py --needs torch)."""
import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
import weightsync  # noqa: E402
import weightsync.torch as wst  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
EXAMPLES = os.path.join(HERE, "..", "..", "examples")
sys.path.insert(0, EXAMPLES)
from train_push import build_model, weights_at  # noqa: E402

OPTIONS = dict(model="glm_moe_dsa", preset="glm5_tiny", source_format="hf",
               target_format="vllm", inference="tp=1", transport="ucx")
Q_A = "model.layers.0.self_attn.q_a_proj.weight"


def plan_for(trainers):
    return weightsync.JobPlan(OPTIONS, trainer=f"fsdp={trainers}")


@pytest.fixture(scope="module")
def full_specs():
    return plan_for(1).trainer_sources(0)


@pytest.fixture(scope="module")
def model(full_specs):
    m = build_model(full_specs, "cpu")
    with torch.no_grad():
        for name, value in weights_at(full_specs, 3, 1).items():
            m.get_parameter(name).copy_(value)
    return m


def test_fsdp2_ranks_get_the_plan_shapes_as_views_that_cover_the_model(model):
    plan = plan_for(2)
    shards = [wst.sources_from_module(model, plan, r) for r in range(2)]
    for rank, shard in enumerate(shards):
        specs = plan.trainer_sources(rank)
        assert sorted(shard) == sorted(s.name for s in specs)
        for s in specs:
            t = shard[s.name]
            assert tuple(t.shape) == s.shape and t.dtype == getattr(torch, s.dtype), s.name
    # Views of the parameters, not copies: the agent must see every later optimizer step.
    param = model.get_parameter(Q_A)
    assert shards[0][Q_A].data_ptr() == param.data_ptr()
    assert shards[1][Q_A].data_ptr() == (param.data_ptr() + shards[0][Q_A].shape[0]
                                         * param.stride(0) * param.element_size())
    for name, param in model.named_parameters():
        parts = [s[name] for s in shards if name in s]
        assert torch.equal(torch.cat(parts), param.detach()), name


def test_a_dict_of_tensors_works_like_a_module(model):
    plan = plan_for(2)
    from_dict = wst.sources_from_module(dict(model.named_parameters()), plan, 1)
    from_module = wst.sources_from_module(model, plan, 1)
    assert all(from_dict[n].data_ptr() == t.data_ptr() for n, t in from_module.items())


def errors_for(tensors, rank=0, trainers=2, **kwargs):
    with pytest.raises((ValueError, TypeError)) as e:
        wst.sources_from_module(tensors, plan_for(trainers), rank, **kwargs)
    return str(e.value)


def test_errors_name_the_rank_and_tensor(model):
    params = {n: p.detach() for n, p in model.named_parameters()}
    message = errors_for({n: t for n, t in params.items() if n != Q_A}, rank=1)
    assert "trainer rank 1" in message and Q_A in message and "not in the model" in message

    extra = dict(params, **{"model.layers.0.mlp.not_a_weight": torch.zeros(4)})
    assert "model.layers.0.mlp.not_a_weight" in errors_for(extra)
    dropped = wst.sources_from_module(extra, plan_for(2), 0,
                                      rename=lambda n: None if "not_a_weight" in n else n)
    assert "model.layers.0.mlp.not_a_weight" not in dropped

    assert "float32" in errors_for(dict(params, **{Q_A: params[Q_A].float()}))
    assert "does not fit" in errors_for(dict(params, **{Q_A: params[Q_A][:, :-1]}))
    transposed = params[Q_A].t().contiguous().t()  # same shape, column-major
    assert "not contiguous" in errors_for(dict(params, **{Q_A: transposed}))
    assert Q_A in errors_for(dict(params, **{Q_A: "x"}))


@pytest.fixture(scope="module")
def one_rank_mesh():
    """A single-process gloo group: enough to make real DTensors on CPU."""
    dist = pytest.importorskip("torch.distributed")
    if not dist.is_available():
        pytest.skip("torch without distributed")
    from torch.distributed.device_mesh import init_device_mesh
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    os.environ.setdefault("MASTER_PORT", str(free_port()))  # not a fixed one: parallel runs
    dist.init_process_group("gloo", rank=0, world_size=1)
    yield init_device_mesh("cpu", (1,))
    dist.destroy_process_group()


def test_dtensor_shards_are_passed_as_their_local_tensor(model, one_rank_mesh):
    try:
        from torch.distributed.tensor import Shard, distribute_tensor
    except ImportError:  # torch 2.4
        from torch.distributed._tensor import Shard, distribute_tensor
    dtensors = {n: distribute_tensor(p.detach(), one_rank_mesh, [Shard(0)])
                for n, p in model.named_parameters()}
    sources = wst.sources_from_module(dtensors, plan_for(1), 0)
    assert sources[Q_A].data_ptr() == dtensors[Q_A].to_local().data_ptr()
    # The mesh (1 rank) and the plan (2 FSDP ranks) disagree: refused, naming the tensor.
    message = errors_for(dtensors, rank=1)
    assert "trainer rank 1" in message and "local shard" in message
    assert "rows [0, " in message and "the plan gives this rank rows" in message
    # Shard(1) over one rank is still the whole tensor: whole rows, so accepted.
    whole = dict(dtensors, **{Q_A: distribute_tensor(model.get_parameter(Q_A).detach(),
                                                     one_rank_mesh, [Shard(1)])})
    assert torch.equal(wst.sources_from_module(whole, plan_for(1), 0)[Q_A],
                       model.get_parameter(Q_A).detach())


def test_torchtitan_fsdp2_ep_model_is_accepted_on_every_rank_and_pushed_exactly():
    """4 gloo trainer processes, fsdp=4,ep=2, the model sharded as torchtitan shards it (its
    device meshes, distribute_tensor over ep, fully_shard over efsdp and dp_shard), pushed to an
    inference rank that compares every byte with convert_tensors
    (tests/python/ep_placements_worker.py)."""
    try:  # torchtitan's sharding pieces, public since torch 2.6
        from torch.distributed.fsdp import fully_shard  # noqa: F401
        from torch.distributed.tensor import DTensor  # noqa: F401
    except ImportError as e:
        pytest.skip(f"torchtitan-style sharding needs torch >= 2.6: {e}")
    worker = os.path.join(HERE, "ep_placements_worker.py")
    try:
        run = subprocess.run([sys.executable, worker, f"tcp://127.0.0.1:{free_port()}"],
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                             timeout=150)
    except subprocess.TimeoutExpired:
        pytest.fail("the expert-parallel ranks did not finish in 150 s")
    assert run.returncode == 0, run.stdout
    lines = [json.loads(line) for line in run.stdout.splitlines() if line.startswith("{")]
    inference = [r for r in lines if "inference" in r]
    results = sorted((r for r in lines if "rank" in r), key=lambda r: r["rank"])
    assert len(results) == 4 and len(inference) == 1, run.stdout
    # torchtitan's rank order: ranks 0 and 1 are one EP group; rank 1 holds ep rank 1's first
    # experts (4, 5 of 8), rank 2 ep rank 0's second (2, 3).
    first_expert = {0: 0, 1: 4, 2: 2, 3: 6}
    for rank, r in enumerate(results):
        assert r["rank"] == rank and r["experts"] > 0
        assert r["expert_placements"] == "(_StridedShard(dim=0, sf=2), Shard(dim=0))", r
        assert r["dense_placements"] == "(Shard(dim=0),)", r
        assert r["names_match"] and r["views"], r
        assert r["torch_is_torchtitan"] == [] and r["differ"] == [], r
        assert list(r["expert_rows"].values()) == [[first_expert[rank], 8]], r
        assert r["unflatten_error"] is None, r  # torchtitan's current mesh construction too
        assert r["pushed_bytes"] > 0, r
        # A split along an expert's rows (dim 1 over ep): not whole rows, refused.
        assert r["dim1_error"] and f"trainer rank {rank}" in r["dim1_error"], r
        assert "Shard(dim=1)" in r["dim1_error"] and "a block of shape" in r["dim1_error"]
    # The plan's former ep-major order swaps ranks 1 and 2's experts: same shapes, other rows.
    assert results[0]["old_order_error"] is None and results[3]["old_order_error"] is None
    for rank, held, planned in ((1, "[2, 4)", "[4, 6)"), (2, "[4, 6)", "[2, 4)")):
        message = results[rank]["old_order_error"]
        assert message and f"trainer rank {rank}" in message, message
        assert "model.layers.1.mlp.experts." in message and "_StridedShard" in message
        assert f"holds rows {held}" in message, message
        assert f"the plan gives this rank rows {planned}" in message, message
    got = inference[0]
    assert got["step"] == 1 and got["names_match"] and got["differ"] == [], got
    assert got["tensors"] > 0 and got["bytes"] == sum(r["pushed_bytes"] for r in results)


# On a GPU host: WEIGHTSYNC_TEST_TORCH_DEVICES="cuda:0,cuda:1" (trainer, inference) and
# WEIGHTSYNC_TEST_TORCH_TRANSPORT=cuda_ipc run the same push with CUDA tensors on both sides.
# WEIGHTSYNC_TEST_TORCH_{TRAINER,INFERENCE}_ALLOC_CONF set PYTORCH_CUDA_ALLOC_CONF for one side
# only (e.g. expandable_segments:True: parameters in cuMemMap memory).
DEVICES = os.environ.get("WEIGHTSYNC_TEST_TORCH_DEVICES", "cpu,cpu").split(",")
TRANSPORT = os.environ.get("WEIGHTSYNC_TEST_TORCH_TRANSPORT", "ucx")
ALLOC_CONF = {role: os.environ.get(f"WEIGHTSYNC_TEST_TORCH_{role.upper()}_ALLOC_CONF")
              for role in ("trainer", "inference")}


def env_for(role):
    env = dict(os.environ)
    env.pop("PYTORCH_CUDA_ALLOC_CONF", None)
    if ALLOC_CONF[role]:
        env["PYTORCH_CUDA_ALLOC_CONF"] = ALLOC_CONF[role]
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("trainers,fsdp2", [(1, False), (2, False), (2, True)],
                         ids=["1-plain", "2-plain", "2-fsdp2"])
def test_push_of_torch_tensors_matches_convert_tensors(tmp_path, trainers, fsdp2):
    steps, seed = 2, 11
    with weightsync.Store() as store:
        common = ["--store", store.address, "--trainers", str(trainers), "--steps", str(steps)]
        overrides = json.dumps({"job_id": f"pytest-torch-{trainers}", "transport": TRANSPORT,
                                "config": {"agent.join_timeout": "60s"}})
        commands = [[os.path.join(EXAMPLES, "serve_receive.py"), "--out", str(tmp_path),
                     "--device", DEVICES[1]]]
        commands += [[os.path.join(EXAMPLES, "train_push.py"), "--rank", str(r), "--seed",
                      str(seed), "--device", DEVICES[0]] for r in range(trainers)]
        if fsdp2:  # the trainers' parameters become FSDP2 DTensors (fully_shard)
            init = f"tcp://127.0.0.1:{free_port()}"
            commands = commands[:1] + [c + ["--fsdp2", init] for c in commands[1:]]
        procs = [subprocess.Popen([sys.executable, *c, *common, "--options", overrides],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=dict(env_for("inference" if i == 0 else "trainer"),
                                           WEIGHTSYNC_STORE_TOKEN=store.token))
                 for i, c in enumerate(commands)]
        outputs = []
        for proc in procs:
            try:
                outputs.append(proc.communicate(timeout=240)[0])
            except subprocess.TimeoutExpired:
                for p in procs:
                    p.kill()
                pytest.fail("a rank did not finish in 240 s")
        for proc, out in zip(procs, outputs):
            assert proc.returncode == 0, out
    if fsdp2:
        assert all(re.search(r"[1-9]\d* parameters are FSDP2 DTensors", o) for o in outputs[1:])

    specs = plan_for(1).trainer_sources(0)
    for step in range(1, steps + 1):
        expected = weightsync.convert_tensors("glm_moe_dsa", "hf", "vllm",
                                              weights_at(specs, seed, step))
        received = np.load(tmp_path / f"{step}.npz")
        assert sorted(received.files) == sorted(expected)
        for name, e in expected.items():
            e_bytes = np.ascontiguousarray(e).view(np.uint8)
            got = received[name][:e_bytes.shape[0]]  # rows past the vocabulary: padding
            assert np.array_equal(got, e_bytes), f"step {step} {name} differs"
