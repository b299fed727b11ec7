"""Errors raise WeightsyncError with the library's text, naming the tensor, rank or option."""
import numpy as np
import pytest

import tiny_glm
import weightsync
from weightsync import WeightsyncError

OPTIONS = dict(model="glm_moe_dsa", preset="glm5_tiny", source_format="hf")


@pytest.fixture(scope="module")
def canonical():
    return tiny_glm.canonical_tensors(np.random.default_rng(0), "bfloat16")


def convert(sources, **kwargs):
    return weightsync.convert_tensors("glm_moe_dsa", "hf", "vllm", sources, **kwargs)


def test_unknown_source_name(canonical):
    bad = dict(canonical)
    bad["model.layers.0.self_attn.not_a_weight"] = canonical["model.norm.weight"]
    with pytest.raises(WeightsyncError, match="not_a_weight"):
        convert(bad)


def test_fused_sources_that_disagree_name_the_tensors(canonical):
    # The converter knows no model dimensions: shapes are checked where tensors meet (fusion).
    bad = dict(canonical)
    name = "model.layers.1.self_attn.q_a_proj.weight"
    bad[name] = canonical[name][:, :100].copy()
    with pytest.raises(WeightsyncError, match=r"fused_qkv_a_proj.*kv_a_proj_with_mqa") as e:
        convert(bad)
    assert e.value.status == "INVALID_ARGUMENT" and e.value.code == 1


def test_wrong_destination_dtype_and_shape(canonical):
    with weightsync.ConvertPlan("glm_moe_dsa", "hf", "vllm", canonical) as plan:
        out = weightsync.allocate(plan.destinations)
        name = "model.norm.weight"
        out[name] = np.zeros(out[name].shape, np.float32)
        with pytest.raises(WeightsyncError, match="model.norm.weight"):
            plan.convert(canonical, out)
        out[name] = weightsync.allocate([s for s in plan.destinations if s.name == name])[name][:10]
        with pytest.raises(WeightsyncError, match="model.norm.weight"):
            plan.convert(canonical, out)
        del out[name]
        with pytest.raises(WeightsyncError, match="model.norm.weight.*was not given"):
            plan.convert(canonical, out)


def test_sources_must_match_the_plan(canonical):
    with weightsync.ConvertPlan("glm_moe_dsa", "hf", "vllm", canonical) as plan:
        out = weightsync.allocate(plan.destinations)
        f32 = dict(canonical)
        f32["lm_head.weight"] = canonical["lm_head.weight"].astype(np.float32)
        with pytest.raises(WeightsyncError, match="lm_head.weight.*planned"):
            plan.convert(f32, out)
        shorter = dict(canonical)
        shorter["lm_head.weight"] = canonical["lm_head.weight"][:10]
        with pytest.raises(WeightsyncError, match=r"lm_head.weight is bfloat16\[10, 320\]"):
            plan.convert(shorter, out)
        missing = dict(canonical)
        del missing["lm_head.weight"]
        with pytest.raises(WeightsyncError, match="lm_head.weight was not given"):
            plan.convert(missing, out)


def test_non_contiguous_and_unsupported_arrays(canonical):
    bad = dict(canonical)
    bad["lm_head.weight"] = canonical["lm_head.weight"].T
    with pytest.raises(ValueError, match="lm_head.weight.*not C-contiguous"):
        convert(bad)
    bad["lm_head.weight"] = np.zeros(3, dtype=np.complex64)
    with pytest.raises(TypeError, match="lm_head.weight.*complex64"):
        convert(bad)
    with pytest.raises(ValueError, match="cannot hold"):
        weightsync.TensorRef(np.zeros(3, np.uint8), "bfloat16")


def test_nan_is_refused_naming_tensor_and_coordinate(canonical):
    bad = dict(canonical)
    name = "model.layers.1.self_attn.q_b_proj.weight"
    bad[name] = canonical[name].copy()
    bad[name][5, 7] = np.nan
    with pytest.raises(WeightsyncError, match=r"q_b_proj.*\[5, 7\]"):
        convert(bad)


def test_plan_options_errors():
    with pytest.raises(WeightsyncError, match="trainr"):
        weightsync.JobPlan(OPTIONS, trainr="fsdp=2")
    with pytest.raises(WeightsyncError, match="no_such_preset"):
        weightsync.JobPlan(preset="no_such_preset")
    with pytest.raises(WeightsyncError, match="fsdp"):
        weightsync.JobPlan(OPTIONS, trainer="fsdp=x")
    plan = weightsync.JobPlan(OPTIONS)
    with pytest.raises(WeightsyncError, match="trainer rank 1"):
        plan.trainer_sources(1)
    with pytest.raises(WeightsyncError, match="inference rank 5"):
        plan.inference_destinations(5)


def test_files_of_the_wrong_json_type_are_invalid_argument(tmp_path):
    """A config.json or model spec field of the wrong type is INVALID_ARGUMENT naming the file
    and the field; it was INTERNAL ("unexpected exception": nlohmann::type_error)."""
    config = tmp_path / "config.json"
    config.write_text('{"model_type": 5, "hidden_size": 448}')
    with pytest.raises(WeightsyncError, match=r"config\.json.*'model_type'") as e:
        weightsync.JobPlan(model="glm_moe_dsa", config_json=str(config), source_format="hf")
    assert e.value.status == "INVALID_ARGUMENT"
    config.write_text('{"model_type": "glm_moe_dsa", "hidden_size": 1099511627776}')
    with pytest.raises(WeightsyncError, match=r"config\.json.*hidden_size") as e:
        weightsync.JobPlan(model="glm_moe_dsa", config_json=str(config), source_format="hf")
    assert e.value.status == "INVALID_ARGUMENT"
    spec = tmp_path / "spec.json"
    spec.write_text('{"model": "mine", "extends": 5}')
    with pytest.raises(WeightsyncError, match=r"spec\.json.*'extends'") as e:
        weightsync.JobPlan(OPTIONS, model=str(spec))
    assert e.value.status == "INVALID_ARGUMENT"


def test_agents_check_tensors_before_joining():
    plan = weightsync.JobPlan(OPTIONS)
    sources = weightsync.allocate(plan.trainer_sources(0))
    with pytest.raises(WeightsyncError, match="store_address"):
        weightsync.TrainerAgent(OPTIONS, 0, sources)
    sources["lm_head.weight"] = np.zeros((3, 3), np.float32)
    with weightsync.Store() as store:
        opts = dict(OPTIONS, store_address=store.address, store_token=store.token,
                    config={"agent.join_timeout": "2s"})
        with pytest.raises(WeightsyncError, match="lm_head.weight"):
            weightsync.TrainerAgent(opts, 0, sources)


def test_config():
    weightsync.config_set("convert.threads", "3")
    assert weightsync.config_get("convert.threads") == "3"
    with pytest.raises(WeightsyncError, match="no.such.option"):
        weightsync.config_set("no.such.option", "1")
    with pytest.raises(WeightsyncError):
        weightsync.config_get("no.such.option")
    weightsync.config_reset()
    assert weightsync.config_get("convert.threads") == "0"


def test_store_context_manager():
    with weightsync.Store(token="secret") as store:
        assert store.address.startswith("127.0.0.1:") and store.token == "secret"
    assert weightsync.version()


def test_hook_that_needs_arguments_is_refused_at_creation():
    plan = weightsync.JobPlan(OPTIONS)
    destinations = weightsync.allocate(plan.inference_destinations(0))
    with pytest.raises(TypeError, match="post_update hook must be callable with no arguments"):
        weightsync.InferenceAgent(OPTIONS, 0, destinations, post_update=lambda model: None)
    with pytest.raises(TypeError, match="pause hook is not callable"):
        weightsync.InferenceAgent(OPTIONS, 0, destinations, pause="pause")


LAUNCHER_VARIABLES = ["RANK", "WORLD_SIZE", "LOCAL_RANK", "OMPI_COMM_WORLD_RANK",
                      "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_PROCID",
                      "SLURM_NTASKS", "SLURM_LOCALID", "PMI_RANK", "PMI_SIZE"]


@pytest.fixture
def no_launcher(monkeypatch):
    for name in LAUNCHER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_rank_from_the_launcher(no_launcher):
    plan = weightsync.JobPlan(OPTIONS)
    sources = weightsync.allocate(plan.trainer_sources(0))
    assert weightsync.launcher_rank() is None
    with pytest.raises(ValueError, match="no rank given and no launcher variables"):
        weightsync.TrainerAgent(OPTIONS, sources=sources)
    no_launcher.setenv("RANK", "1")
    no_launcher.setenv("WORLD_SIZE", "2")
    no_launcher.setenv("LOCAL_RANK", "1")
    assert weightsync.launcher_rank() == (1, 2, 1)
    with pytest.raises(ValueError, match="launcher's world size 2 .* plan's trainer world 1"):
        weightsync.TrainerAgent(OPTIONS, sources=sources)
    # The launcher's rank is taken: rank 0 of fsdp=2, refused only for the missing store.
    no_launcher.setenv("RANK", "0")
    two = dict(OPTIONS, trainer="fsdp=2")
    with pytest.raises(WeightsyncError, match="store_address"):
        weightsync.TrainerAgent(two, sources=weightsync.allocate(
            weightsync.JobPlan(two).trainer_sources(0)))


def test_one_options_object_for_every_rank_and_the_plan():
    options = dict(OPTIONS, admin_token="secret", admin_listen="127.0.0.1:0")
    assert weightsync.JobPlan(options).hash == weightsync.JobPlan(OPTIONS).hash


def test_version_attribute():
    assert weightsync.__version__ == weightsync.version()
    assert weightsync.__version__.count(".") == 2
