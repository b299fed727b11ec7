"""Job plan info: what each rank holds, agreeing with the model's dimensions."""
import numpy as np
import pytest

import weightsync

OPTIONS = dict(model="glm_moe_dsa", preset="glm5_tiny", source_format="hf")


def test_one_trainer_holds_whole_tensors_and_the_hash_is_stable():
    plan = weightsync.JobPlan(OPTIONS, trainer="fsdp=1", inference="tp=1")
    again = weightsync.JobPlan(OPTIONS, trainer="fsdp=1", inference="tp=1")
    other = weightsync.JobPlan(OPTIONS, trainer="fsdp=2", inference="tp=1")
    assert len(plan.hash) >= 8 and plan.hash == again.hash and plan.hash != other.hash
    assert (plan.trainer_world, plan.inference_world) == (1, 1)
    sources = {s.name: s for s in plan.trainer_sources(0)}
    # glm5_tiny: vocab 1000, hidden 448 (src/plan/model_dims.cc).
    assert sources["model.embed_tokens.weight"].shape == (1000, 448)
    assert sources["model.embed_tokens.weight"].dtype == "bfloat16"
    assert sources["model.layers.1.mlp.gate.e_score_correction_bias"].dtype == "float32"


def test_fsdp_shards_split_dim0_like_torch_chunk():
    plan = weightsync.JobPlan(OPTIONS, trainer="fsdp=3", inference="tp=1")
    whole = {s.name: s for s in weightsync.JobPlan(OPTIONS).trainer_sources(0)}
    shards = [{s.name: s for s in plan.trainer_sources(r)} for r in range(3)]
    for name, spec in whole.items():
        rows = [s[name].shape[0] for s in shards]
        chunk = -(-spec.shape[0] // 3)
        assert sum(rows) == spec.shape[0], name
        assert rows[0] == min(chunk, spec.shape[0]), name
        assert all(s[name].shape[1:] == spec.shape[1:] for s in shards), name


def test_expert_stacks_follow_torchtitans_rank_order():
    """fsdp=8, ep=4, hsdp=2 (torchtitan format, 8 experts per stack): a replica's ranks 0..3 are
    one EP group, so rank r holds expert (r % 4) * 2 + r // 4; non-expert rows stay in rank
    order; replica 1 (ranks 8..15) holds what replica 0 holds."""
    plan = weightsync.JobPlan(OPTIONS, source_format="torchtitan", trainer="fsdp=8,ep=4,hsdp=2")
    stack = "model.layers.1.mlp.experts.w1"
    norm = "model.norm.weight"  # 448 rows: 56 per rank
    for rank in range(16):
        rows = plan.trainer_source_rows(rank)
        shard = rank % 8
        shapes = {s.name: s.shape for s in plan.trainer_sources(rank)}
        assert rows[stack] == ((shard % 4) * 2 + shard // 4, 8) and shapes[stack][0] == 1, rank
        assert rows[norm] == (shard * 56, 448) and shapes[norm] == (56,), rank


def test_expert_parallelism_with_fewer_experts_than_fsdp_ranks_is_refused():
    # torchtitan shards the experts' rows (Shard(1)) then, which the plan does not model.
    with pytest.raises(weightsync.WeightsyncError, match=r"experts\.w\d.*8 experts.*Shard\(1\)"):
        weightsync.JobPlan(OPTIONS, source_format="torchtitan", trainer="fsdp=16,ep=2")


def test_tensor_parallel_destinations_split_the_bytes():
    one = weightsync.JobPlan(OPTIONS, inference="tp=1").inference_destinations(0)
    two = weightsync.JobPlan(OPTIONS, inference="tp=2")
    halves = [two.inference_destinations(r) for r in range(2)]
    assert {s.name for s in halves[0]} == {s.name for s in one}
    norm = "model.norm.weight"  # replicated
    assert [next(s for s in h if s.name == norm).shape for h in halves] == [(448,), (448,)]
    total = sum(s.nbytes for s in one)
    assert sum(s.nbytes for h in halves for s in h) > total  # replicas of small tensors
    scales = [s for s in one if s.name.endswith("_scale_inv")]
    assert scales and all(s.dtype == "float32" for s in scales)
    assert all(np.prod(s.shape) > 0 for s in one)


def test_allocate_matches_specs():
    specs = weightsync.JobPlan(OPTIONS).inference_destinations(0)
    arrays = weightsync.allocate(specs)
    for s in specs:
        a = getattr(arrays[s.name], "array", arrays[s.name])
        assert a.shape == s.shape and a.nbytes == s.nbytes, s.name
