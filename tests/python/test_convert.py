"""convert_tensors against the independent numpy reference (tests/e2e/fp8_reference.py and
tiny_glm.py): every destination name, dtype, shape and byte."""
import numpy as np
import pytest

import tiny_glm
import weightsync
from weightsync import TensorRef


def compare(actual, expected):
    assert sorted(actual) == sorted(expected)
    for name, e in expected.items():
        a = actual[name]
        assert (a.dtype, a.shape) == (e.dtype, e.shape), name
        a_bytes = np.ascontiguousarray(a).view(np.uint8).reshape(-1)
        e_bytes = np.ascontiguousarray(e).view(np.uint8).reshape(-1)
        diff = np.nonzero(a_bytes != e_bytes)[0]
        assert diff.size == 0, f"{name}: {diff.size} bytes differ, first at byte {diff[0]}"


@pytest.mark.parametrize("source_format", ["hf", "hf-fused", "torchtitan"])
@pytest.mark.parametrize("target_format", ["vllm", "hf-fp8"])
@pytest.mark.parametrize("dtype", ["bfloat16", "float32"])
def test_bit_exact_against_reference(source_format, target_format, dtype):
    canonical = tiny_glm.canonical_tensors(np.random.default_rng(1), dtype)
    sources = tiny_glm.source_tensors(canonical, source_format)
    expected = (tiny_glm.expected_vllm if target_format == "vllm"
                else tiny_glm.expected_hf_fp8)(canonical)
    out = weightsync.convert_tensors("glm_moe_dsa", source_format, target_format, sources,
                                     threads=2)
    compare(out, expected)


def test_bf16_as_uint16_bits():
    """Without ml_dtypes a caller holds bf16 as uint16 bits; TensorRef names the dtype."""
    canonical = tiny_glm.canonical_tensors(np.random.default_rng(2), "bfloat16")
    as_bits = {k: TensorRef(v.view(np.uint16), "bfloat16") for k, v in canonical.items()}
    out = weightsync.convert_tensors("glm_moe_dsa", "hf", "vllm", as_bits)
    compare(out, tiny_glm.expected_vllm(canonical))


def test_plan_reused_for_new_values():
    """One ConvertPlan converts many steps: the second call sees the second step's values."""
    rng = np.random.default_rng(3)
    step1 = tiny_glm.canonical_tensors(rng, "bfloat16")
    step2 = tiny_glm.canonical_tensors(rng, "bfloat16")
    with weightsync.ConvertPlan("glm_moe_dsa", "hf", "vllm", step1) as plan:
        out = weightsync.allocate(plan.destinations)
        plan.convert(step1, out)
        plan.convert(step2, out)
    compare(out, tiny_glm.expected_vllm(step2))


def test_partial_conversion_of_one_layer():
    canonical = tiny_glm.canonical_tensors(np.random.default_rng(4), "bfloat16")
    layer = {k: v for k, v in canonical.items() if k.startswith("model.layers.0.")}
    with pytest.raises(weightsync.WeightsyncError):  # not a whole model
        weightsync.convert_tensors("glm_moe_dsa", "hf", "vllm", layer)
    out = weightsync.convert_tensors("glm_moe_dsa", "hf", "vllm", layer, partial=True)
    expected = {k: v for k, v in tiny_glm.expected_vllm(canonical).items()
                if k.startswith("model.layers.0.")}
    compare(out, expected)


def test_torch_tensors_when_available():
    torch = pytest.importorskip("torch")
    canonical = tiny_glm.canonical_tensors(np.random.default_rng(5), "float32")
    as_torch = {k: torch.from_numpy(v) for k, v in canonical.items()}
    out = weightsync.convert_tensors("glm_moe_dsa", "hf", "vllm", as_torch, like="torch")
    expected = tiny_glm.expected_vllm(canonical)
    for name, t in out.items():
        assert isinstance(t, torch.Tensor)
        raw = t.view(torch.uint8).numpy().reshape(-1) if t.numel() else np.zeros(0, np.uint8)
        assert raw.tobytes() == np.ascontiguousarray(expected[name]).tobytes(), name
