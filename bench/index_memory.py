#!/usr/bin/env python3
"""Peak memory of reading a large model.safetensors.index.json (bench/results/*-hardening-input.md).

Writes an index of about --megabytes MB in Hugging Face's layout (indent 2, sorted keys, or --compact; expert
weights and their scale_inv, or with --short tiny names, spread over 1000 shard files, which are
not created), runs
`weightsync convert` on it under /usr/bin/time and prints the index size, the command's maximum
resident set size, its wall time and the first line of its error (the conversion stops at the
first missing shard, after the whole index was parsed, or at the index size limit).
"""
import argparse
import json
import os
import subprocess
import tempfile


def write_index(directory, megabytes, short, compact):
    weight_map, size, layer = {}, 0, 0
    while short and size < megabytes * 1e6:  # many tiny entries: the DOM's worst case
        name, file = f"t{len(weight_map)}", f"s{len(weight_map) % 1000}"
        weight_map[name] = file
        size += len(name) + len(file) + (6 if compact else 10)
    while size < megabytes * 1e6:
        for expert in range(256):
            for proj in ("gate_proj", "up_proj", "down_proj"):
                for suffix in ("weight", "weight_scale_inv"):
                    name = f"model.layers.{layer}.mlp.experts.{expert}.{proj}.{suffix}"
                    file = f"model-{(layer * 7 + expert) % 1000 + 1:05d}-of-01000.safetensors"
                    weight_map[name] = file
                    size += len(name) + len(file) + 8  # quotes, colon, indent, comma
        layer += 1
    path = os.path.join(directory, "model.safetensors.index.json")
    with open(path, "w") as f:
        json.dump({"metadata": {"total_size": 1}, "weight_map": weight_map}, f,
                  indent=None if compact else 2, separators=(",", ":") if compact else None,
                  sort_keys=True)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weightsync", required=True)
    parser.add_argument("--megabytes", type=float, default=80)
    parser.add_argument("--short", action="store_true",
                        help="names like t123 -> s45 instead of Hugging Face's expert names")
    parser.add_argument("--compact", action="store_true", help="no indentation or spaces")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="weightsync-index-") as work:
        index = write_index(work, args.megabytes, args.short, args.compact)
        run = subprocess.run(["/usr/bin/time", "-f", "%M %e", args.weightsync, "convert",
                              "--model", "glm_moe_dsa", "--input", work, "--output",
                              os.path.join(work, "out")], capture_output=True, text=True)
        lines = run.stderr.strip().splitlines()
        rss_kb, seconds = lines[-1].split()
        print(json.dumps({"index_bytes": os.path.getsize(index), "max_rss_mb": int(rss_kb) / 1024,
                          "seconds": float(seconds), "exit": run.returncode,
                          "error": lines[0][:160] if len(lines) > 1 else ""}))


if __name__ == "__main__":
    main()
