#!/usr/bin/env python3
"""Writes real-size GLM-5 layers (transformers GlmMoeDsaConfig dimensions) as a bf16 safetensors
checkpoint, streaming tensor by tensor so it never holds more than one pool of random values.

Layer 0 is a dense layer, layer 3 a MoE layer with all 256 experts (hf-fused: 3D expert stacks,
or hf: one 2D tensor per expert). Values are random normal bf16 (tiled from a 64 Mi-element pool:
content does not change conversion speed, only NaN would)."""
import argparse
import json
import os
import struct

import numpy as np

H, Q_LORA, KV_LORA, ROPE, NOPE, V, HEADS = 6144, 2048, 512, 64, 192, 256, 64
DENSE_I, MOE_I, EXPERTS, INDEX_HEADS, INDEX_DIM = 12288, 2048, 256, 32, 128


def layer_tensors(layer, moe, source_format):
    p = f"model.layers.{layer}."
    t = [(p + "input_layernorm.weight", [H]), (p + "post_attention_layernorm.weight", [H]),
         (p + "self_attn.q_a_proj.weight", [Q_LORA, H]),
         (p + "self_attn.q_a_layernorm.weight", [Q_LORA]),
         (p + "self_attn.q_b_proj.weight", [HEADS * (NOPE + ROPE), Q_LORA]),
         (p + "self_attn.kv_a_proj_with_mqa.weight", [KV_LORA + ROPE, H]),
         (p + "self_attn.kv_a_layernorm.weight", [KV_LORA]),
         (p + "self_attn.kv_b_proj.weight", [HEADS * (NOPE + V), KV_LORA]),
         (p + "self_attn.o_proj.weight", [H, HEADS * V]),
         (p + "self_attn.indexer.wq_b.weight", [INDEX_HEADS * INDEX_DIM, Q_LORA]),
         (p + "self_attn.indexer.wk.weight", [INDEX_DIM, H]),
         (p + "self_attn.indexer.k_norm.weight", [INDEX_DIM]),
         (p + "self_attn.indexer.k_norm.bias", [INDEX_DIM]),
         (p + "self_attn.indexer.weights_proj.weight", [INDEX_HEADS, H])]
    if not moe:
        return t + [(p + "mlp.gate_proj.weight", [DENSE_I, H]), (p + "mlp.up_proj.weight", [DENSE_I, H]),
                    (p + "mlp.down_proj.weight", [H, DENSE_I])]
    t += [(p + "mlp.gate.weight", [EXPERTS, H]), (p + "mlp.gate.e_score_correction_bias", [EXPERTS]),
          (p + "mlp.shared_experts.gate_proj.weight", [MOE_I, H]),
          (p + "mlp.shared_experts.up_proj.weight", [MOE_I, H]),
          (p + "mlp.shared_experts.down_proj.weight", [H, MOE_I])]
    if source_format == "hf-fused":
        return t + [(p + "mlp.experts.gate_up_proj", [EXPERTS, 2 * MOE_I, H]),
                    (p + "mlp.experts.down_proj", [EXPERTS, H, MOE_I])]
    for e in range(EXPERTS):
        t += [(p + f"mlp.experts.{e}.{w}.weight", [MOE_I, H] if w != "down_proj" else [H, MOE_I])
              for w in ("gate_proj", "up_proj", "down_proj")]
    return t


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("output", help="a .safetensors file to write")
    parser.add_argument("--source-format", default="hf-fused", choices=["hf", "hf-fused"])
    parser.add_argument("--layers", default="dense,moe", help="dense, moe or both")
    args = parser.parse_args()
    kinds = args.layers.split(",")
    tensors = []
    if "dense" in kinds:
        tensors += layer_tensors(0, False, args.source_format)
    if "moe" in kinds:
        tensors += layer_tensors(3, True, args.source_format)

    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in tensors:
        size = int(np.prod(shape)) * 2
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)

    rng = np.random.default_rng(0)
    pool = (rng.standard_normal(64 << 20, dtype=np.float32) * 0.02).view(np.uint32)
    pool = ((pool + 0x7FFF + ((pool >> 16) & 1)) >> 16).astype(np.uint16)  # bf16, round to nearest
    tmp = args.output + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(blob)) + blob)
        start = 0
        for name, shape in tensors:
            remaining = int(np.prod(shape))
            while remaining:
                n = min(remaining, pool.size - start)
                f.write(pool[start:start + n].tobytes())
                remaining -= n
                start = (start + n) % pool.size
    os.replace(tmp, args.output)
    print(f"wrote {args.output}: {len(tensors)} tensors, {offset / 1e9:.2f} GB of bf16")


if __name__ == "__main__":
    main()
