#!/usr/bin/env bash
# `pip install .` as a user runs it: a fresh venv, the checkout built by scikit-build-core
# (pyproject.toml), then the INSTALLED package and CLI, run from outside the checkout so nothing of
# python/ or build/ is picked up: the console script, the library found next to the package, and a
# conversion checked against the numpy reference (tests/e2e/tiny_glm.py), and the vLLM plugin
# entry point (loading it does not import vLLM).
#
#   check_pip_install.sh REPO WORK_DIR PYTHON
set -euo pipefail
repo=$(cd "$1" && pwd) work=$2 python=$3
rm -rf "$work" && mkdir -p "$work" && cd "$work"
"$python" -m venv venv
venv/bin/pip install -q --disable-pip-version-check "$repo"
venv/bin/weightsync info | head -3
venv/bin/python - "$repo" <<'PY'
import sys
import numpy as np
import weightsync
assert "site-packages" in weightsync.__file__, weightsync.__file__
sys.path.insert(0, f"{sys.argv[1]}/tests/e2e")
import tiny_glm  # noqa: E402  (the tiny GLM-5 and its hand-written numpy reference)
canonical = tiny_glm.canonical_tensors(np.random.default_rng(3), "float32")
out = weightsync.convert_tensors("glm_moe_dsa", "hf", "vllm", canonical)
expected = tiny_glm.expected_vllm(canonical)
assert sorted(out) == sorted(expected)
for name, e in expected.items():
    assert np.array_equal(np.asarray(out[name]).view(np.uint8), e.view(np.uint8)), name
print(f"installed package {weightsync.__file__}: {len(out)} tensors equal to the numpy reference")
# vLLM finds the weight-transfer backend through this entry point (weightsync.vllm.register).
from importlib.metadata import entry_points  # noqa: E402
plugins = [e for e in entry_points(group="vllm.general_plugins") if e.name == "weightsync"]
assert [e.value for e in plugins] == ["weightsync.vllm:register"], plugins
assert callable(plugins[0].load())
print("vllm.general_plugins: weightsync = weightsync.vllm:register")
PY
