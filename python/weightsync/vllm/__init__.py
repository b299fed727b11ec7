"""weightsync as vLLM's weight-transfer backend "weightsync" (vLLM 0.34.0's
vllm/distributed/weight_transfer API).

``pip install weightsync`` declares the ``vllm.general_plugins`` entry point ``weightsync =
weightsync.vllm:register``, which vLLM calls in every process it starts; ``register`` adds the
worker engine (weightsync.vllm.inference) and the trainer engine (weightsync.vllm.trainer) to
vLLM's factories, which import them only when the backend is selected:
``--weight-transfer-config '{"backend": "weightsync"}'`` on the server, and a
``WeightsyncTrainerInitInfo`` on the trainer. docs/integrations.md is the user guide.
"""
from __future__ import annotations

BACKEND = "weightsync"
_ENGINES = (("WeightTransferEngineFactory", "weightsync.vllm.inference",
             "WeightsyncWeightTransferEngine"),
            ("WeightTransferTrainerFactory", "weightsync.vllm.trainer",
             "WeightsyncTrainerWeightTransferEngine"))


def register() -> None:
    """The vllm.general_plugins entry point. Safe to call again (vLLM may load plugins in a
    process more than once); a different engine already registered as "weightsync" is an error."""
    from vllm.distributed.weight_transfer import factory
    for factory_name, module, class_name in _ENGINES:
        registry = getattr(factory, factory_name)
        if BACKEND not in registry._registry:
            registry.register_engine(BACKEND, module, class_name)
            continue
        engine = registry._registry[BACKEND]()
        if (engine.__module__, engine.__name__) != (module, class_name):
            raise ValueError(f"vLLM's {factory_name} already has a \"{BACKEND}\" engine, "
                             f"{engine.__module__}.{engine.__name__}")


__all__ = ["BACKEND", "register"]
