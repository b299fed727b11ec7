#!/usr/bin/env python3
"""GPU check of the transformers integration: an FSDP2 trainer pushes a GLM-5-shaped bf16 model
into a transformers FP8 model in another process, compared with transformers' own FP8 loading.

- The model: transformers' GlmMoeDsaForCausalLM (MLA + DSA indexer, 1 dense + 3 MoE layers with a
  shared expert), tiny dims, every FP8 shape whole 128-blocks (tests/python/hf_fp8.py says why).
  Two bf16 checkpoints are saved: step 0 (what the inference model starts from) and step 1 (what
  the trainer holds after "training").
- Trainers: 2 ranks of torch.distributed, on GPUs 0 and 1 over nccl, or both on the one GPU of a
  1-GPU host over gloo (NCCL refuses two ranks on one GPU; the push needs no collective); the model
  loaded from step 0, fully_shard-ed (FSDP2, per decoder layer and the root), step 1's weights
  written into the DTensor shards in place; weightsync.torch.trainer_agent pushes (source format
  hf-fused: transformers' in-memory names, experts stacked).
- Inference, on the last GPU: from_pretrained(step 0, FineGrainedFP8Config((128, 128))), its own
  tensors registered with weightsync.transformers.inference_agent; one push over cuda_ipc.
- Then, in the inference process: the pushed bytes vs convert_tensors (CPU reference) of step 1
  (must be equal); vs from_pretrained(step 1, FineGrainedFP8Config) (transformers' quantizer:
  differing codes and scales counted); logits of both FP8 models and of the bf16 step-1 model,
  and KL(bf16 || FP8).

transformers' FP8 matmuls come from the Hub (kernels-community/finegrained-fp8, DeepGEMM through
the `kernels` package); a host without network cannot load them, so the script tries the FP8
forward once, reports what happened, and computes logits by dequantizing each FP8 model's
weights (E4M3ToFloat(q) * its block's scale_inv, fp32) into the same architecture run in fp32;
the bf16 model runs in fp32 too, so logits differ only by the weights.

    python tests/gpu/hf_fp8_push.py --out DIR        # writes DIR/hf_fp8_push.json
"""
import argparse
import json
import os
import subprocess
import sys
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")
sys.path.insert(0, os.path.join(ROOT, "python"))
sys.path.insert(0, os.path.join(ROOT, "tests", "python"))
import weightsync  # noqa: E402
import hf_fp8  # noqa: E402

# Larger than the CPU test's, still tiny: 1 dense + 3 MoE layers, 8 experts, 2048-token vocab.
DIMS = dict(hf_fp8.ALIGNED, hidden_size=512, vocab_size=2048, num_hidden_layers=4,
            intermediate_size=1024, moe_intermediate_size=256, n_routed_experts=8,
            num_attention_heads=4, num_key_value_heads=4, q_lora_rank=256, index_n_heads=4,
            index_topk=64)
SEQ, BATCH = 128, 4


def options(work, trainers, store=None):
    o = dict(job_id="hf-fp8-push", model="glm_moe_dsa", config_json=f"{work}/step0/config.json",
             source_format="hf-fused", target_format="transformers-fp8",
             trainer=f"fsdp={trainers}", inference="tp=1", transport="cuda_ipc",
             config={"agent.join_timeout": "120s"})
    if store:
        o.update(store_address=store[0], store_token=store[1])
    return o


def fp8_config():
    from transformers import FineGrainedFP8Config
    return FineGrainedFP8Config(weight_block_size=(128, 128))


def in_memory(path):
    """A bf16 checkpoint's tensors as a transformers model holds them (experts stacked: the
    checkpoint has one tensor per expert, the loader fuses them)."""
    from transformers import GlmMoeDsaForCausalLM
    model = GlmMoeDsaForCausalLM.from_pretrained(path, dtype=torch.bfloat16)  # on the CPU
    tensors = dict(model.named_buffers())
    tensors.update(model.named_parameters())
    return {n: t.detach() for n, t in tensors.items() if "rotary_emb" not in n}


def trainer(args):
    import torch.distributed as dist
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from transformers import GlmMoeDsaForCausalLM
    import weightsync.torch as wst
    gpus = torch.cuda.device_count()
    device = torch.device("cuda", args.rank % gpus)
    torch.cuda.set_device(device)
    if gpus >= args.trainers:
        dist.init_process_group("nccl", rank=args.rank, world_size=args.trainers,
                                init_method=args.init, device_id=device)
    else:
        dist.init_process_group("gloo", rank=args.rank, world_size=args.trainers,
                                init_method=args.init)
    model = GlmMoeDsaForCausalLM.from_pretrained(f"{args.work}/step0", dtype=torch.bfloat16,
                                                 device_map=str(device))
    # The planner takes the indexer's k_norm in fp32, as GLM-5's checkpoint stores it;
    # transformers loads it in the model dtype (see the results file).
    for layer in model.model.layers:
        layer.self_attn.indexer.k_norm.float()
    mesh = init_device_mesh("cuda", (args.trainers,))
    for layer in model.model.layers:  # k_norm alone: FSDP2 groups want one dtype
        fully_shard(layer.self_attn.indexer.k_norm, mesh=mesh)
        fully_shard(layer, mesh=mesh)
    fully_shard(model, mesh=mesh)
    step1 = in_memory(f"{args.work}/step1")
    with torch.no_grad():  # the "optimizer step": new weights written into the shards in place
        for name, param in list(model.named_parameters()) + list(model.named_buffers()):
            if "rotary_emb" in name:  # computed, not trained
                continue
            value = step1[name].to(device=device, dtype=param.dtype)
            if hasattr(param, "to_local"):
                chunks = torch.chunk(value, args.trainers)
                if args.rank < len(chunks):
                    param.to_local().copy_(chunks[args.rank])
            else:
                param.copy_(value)
    opts = options(args.work, args.trainers, (args.store, args.token))
    with wst.trainer_agent(model, opts, args.rank) as agent:
        report = agent.push(1)
    print(f"trainer {args.rank}: pushed {report.bytes} bytes in {report.seconds:.3f} s",
          flush=True)
    dist.destroy_process_group()


def dequantized(model, fp32_model):
    """fp32_model (same architecture, bf16 classes) loaded with model's weights, FP8 ones
    dequantized: E4M3ToFloat(q) * scale_inv of its 128x128 block."""
    tensors = dict(model.named_buffers())
    tensors.update(model.named_parameters())
    state = {}
    for name, t in tensors.items():
        if name.endswith("_scale_inv") or "rotary_emb" in name:  # rotary: computed, not loaded
            continue
        t = t.detach()
        if t.dtype == torch.float8_e4m3fn:
            scale = tensors[name + "_scale_inv"].detach()  # X.weight_scale_inv, X_scale_inv
            rows, cols = t.shape[-2:]
            s = scale.repeat_interleave(128, dim=-2).repeat_interleave(128, dim=-1)
            t = t.float() * s[..., :rows, :cols]
        state[name] = t.float()
    missing, unexpected = fp32_model.load_state_dict(state, strict=False)
    assert not unexpected and not missing, (missing, unexpected)
    return fp32_model


def fp8_comparison(pushed, reference):
    """Per FP8 tensor: codes and scales that differ between two FP8 models, and the others
    byte-compared."""
    a = dict(pushed.named_buffers()); a.update(pushed.named_parameters())
    b = dict(reference.named_buffers()); b.update(reference.named_parameters())
    out = dict(fp8_elements=0, fp8_codes_differ=0, max_code_distance=0, scales=0,
               scales_differ=0, max_scale_rel_diff=0.0, other_tensors=0, other_differ=[])
    for name, x in a.items():
        if "rotary" in name:
            continue
        x, y = x.detach(), b[name].detach()
        if name.endswith("_scale_inv"):
            out["scales"] += x.numel()
            out["scales_differ"] += int((x != y).sum())
            rel = ((x / y) - 1).abs().max().item()
            out["max_scale_rel_diff"] = max(out["max_scale_rel_diff"], rel)
        elif x.dtype == torch.float8_e4m3fn:
            cx, cy = x.view(torch.uint8).int(), y.view(torch.uint8).int()
            out["fp8_elements"] += x.numel()
            out["fp8_codes_differ"] += int((cx != cy).sum())
            out["max_code_distance"] = max(out["max_code_distance"], (cx - cy).abs().max().item())
        else:
            out["other_tensors"] += 1
            if not torch.equal(x, y):
                out["other_differ"].append(name)
    return out


def inference(args):
    from transformers import GlmMoeDsaForCausalLM
    import weightsync.transformers as wsh
    device = torch.device("cuda", torch.cuda.device_count() - 1)
    torch.cuda.set_device(device)
    load = dict(quantization_config=fp8_config(), dtype=torch.bfloat16, device_map=str(device))
    model = GlmMoeDsaForCausalLM.from_pretrained(f"{args.work}/step0", **load)
    skipped = wsh.quantize_skipped_linears(model, "glm_moe_dsa")
    opts = options(args.work, args.trainers, (args.store, args.token))
    with wsh.inference_agent(model, opts) as agent:
        report = agent.serve_one_push(timeout=300)
        assert report is not None, "no push within 300 s"
        destinations = agent.destinations
    result = dict(received_bytes=report.bytes, push_seconds=report.seconds, skipped=skipped,
                  destinations=len(destinations))

    # 1. The push wrote weightsync's reference bytes of step 1.
    sources = in_memory(f"{args.work}/step1")
    for layer in range(DIMS["num_hidden_layers"]):  # as the trainer held it (see trainer())
        for p in ("weight", "bias"):
            n = f"model.layers.{layer}.self_attn.indexer.k_norm.{p}"
            sources[n] = sources[n].float()
    expected = weightsync.convert_tensors("glm_moe_dsa", "hf-fused", "transformers-fp8",
                                          sources, like="torch")
    wrong = [n for n, e in expected.items()
             if not torch.equal(destinations[n].cpu().view(torch.uint8).flatten(),
                                e.contiguous().view(torch.uint8).flatten())]
    result["pushed_equal_reference"] = f"{len(expected) - len(wrong)}/{len(expected)}"
    result["pushed_differ"] = wrong[:10]

    # 2. transformers' own FP8 loading of the same bf16 checkpoint, and its quantizer op
    # (Fp8Quantize) applied to the bf16 weights themselves: from_pretrained first casts each
    # checkpoint tensor to the FP8 parameter's dtype (a plain cast), then quantizes that.
    reference = GlmMoeDsaForCausalLM.from_pretrained(f"{args.work}/step1", **load)
    bf16 = GlmMoeDsaForCausalLM.from_pretrained(f"{args.work}/step1", dtype=torch.bfloat16,
                                                device_map=str(device))
    quantizer_only = hf_fp8.quantize_like_from_pretrained(bf16)  # on this GPU
    result["vs_transformers_from_pretrained"] = fp8_comparison(model, reference)
    result["vs_transformers_fp8quantize_op"] = fp8_comparison(model, quantizer_only)

    # 3. transformers' FP8 forward, if its kernels load here.
    ids = torch.randint(0, DIMS["vocab_size"], (BATCH, SEQ),
                        generator=torch.Generator().manual_seed(0)).to(device)
    try:
        with torch.no_grad():
            model(ids)
        result["transformers_fp8_forward"] = "ran"
    except Exception as e:  # noqa: BLE001 - recorded, not hidden
        result["transformers_fp8_forward"] = f"{type(e).__name__}: {str(e)[:300]}"

    # 4. Logits: dequantized FP8 models and the bf16 model, all computed in fp32.
    def logits_of(m):
        with torch.no_grad():
            return m(ids).logits.float()
    with torch.device(device):  # a fresh config: the FP8 model's carries its quantization
        fp32 = GlmMoeDsaForCausalLM(hf_fp8.glm_config(**DIMS)).float().eval()
    pushed_logits = logits_of(dequantized(model, fp32))
    reference_logits = logits_of(dequantized(reference, fp32))
    op_logits = logits_of(dequantized(quantizer_only, fp32))
    bf16_logits = logits_of(bf16.float().eval())

    def kl(p_logits, q_logits):
        p = torch.log_softmax(p_logits, -1)
        q = torch.log_softmax(q_logits, -1)
        return (p.exp() * (p - q)).sum(-1).mean().item()
    result["logits_abs_max_bf16"] = bf16_logits.abs().max().item()
    for label, other in (("from_pretrained", reference_logits), ("fp8quantize_op", op_logits)):
        result[f"logits_pushed_vs_{label}_max_abs_diff"] = \
            (pushed_logits - other).abs().max().item()
        result[f"logits_pushed_equal_{label}"] = bool(torch.equal(pushed_logits, other))
        result[f"kl_bf16_vs_{label}"] = kl(bf16_logits, other)
        result[f"top1_agreement_{label}_vs_bf16"] = \
            (other.argmax(-1) == bf16_logits.argmax(-1)).float().mean().item()
    result["kl_bf16_vs_pushed"] = kl(bf16_logits, pushed_logits)
    result["top1_agreement_pushed_vs_bf16"] = \
        (pushed_logits.argmax(-1) == bf16_logits.argmax(-1)).float().mean().item()
    print(json.dumps(result, indent=2), flush=True)
    with open(os.path.join(args.out, "hf_fp8_push.json"), "w") as f:
        json.dump(result, f, indent=2)
    ok = result["pushed_equal_reference"].split("/")
    return 0 if ok[0] == ok[1] else 1


def driver(args):
    from transformers import GlmMoeDsaForCausalLM  # noqa: F401
    gpus = torch.cuda.device_count()
    trainers = 2
    work = os.path.abspath(args.work)
    config = hf_fp8.glm_config(**DIMS)
    for step in (0, 1):  # step 1: the weights after "training"
        hf_fp8.bf16_model(config, seed=100 + step).save_pretrained(f"{work}/step{step}")
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        init = f"tcp://127.0.0.1:{s.getsockname()[1]}"
    with weightsync.Store() as store:
        common = [sys.executable, os.path.abspath(__file__), "--work", work, "--out", args.out,
                  "--store", store.address, "--token", store.token, "--trainers", str(trainers)]
        procs = [subprocess.Popen(common + ["--role", "inference"])]
        procs += [subprocess.Popen(common + ["--role", "trainer", "--rank", str(r), "--init", init])
                  for r in range(trainers)]
        deadline = time.time() + 420
        codes = []
        for p in procs:
            try:
                codes.append(p.wait(timeout=max(1, deadline - time.time())))
            except subprocess.TimeoutExpired:
                for q in procs:
                    q.kill()
                print("a process did not finish in 420 s", flush=True)
                return 1
    print(f"gpus {gpus}, trainer ranks {trainers}, exit codes {codes}", flush=True)
    return 0 if all(c == 0 for c in codes) else 1


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", required=True)
    p.add_argument("--work", default="/tmp/hf_fp8_push")
    p.add_argument("--role", choices=["driver", "trainer", "inference"], default="driver")
    p.add_argument("--store")
    p.add_argument("--token")
    p.add_argument("--trainers", type=int, default=1)
    p.add_argument("--rank", type=int, default=0)
    p.add_argument("--init")
    args = p.parse_args()
    os.makedirs(args.out, exist_ok=True)
    return {"driver": driver, "trainer": trainer, "inference": inference}[args.role](args) or 0


if __name__ == "__main__":
    sys.exit(main())
