#!/usr/bin/env python3
"""End-to-end checks of what `weightsync convert` refuses and keeps, and of `weightsync verify`.

On the tiny GLM-5-shaped checkpoint of tiny_glm.py (two shards, an index, config.json and
tokenizer files): an output that is, lies inside, contains or is a file of the input (also through
a link) is refused and the input is untouched; --overwrite replaces a folder weightsync wrote but
refuses one with files it did not write (which stay); FIFOs are refused without blocking; tensors
whose shapes disagree with config.json (or, without it, with the embedding) are refused, named;
the config, generation config and tokenizer files are copied; `verify` passes a clean conversion
and names a tensor with a flipped byte; the help texts list every target and share one default
source format. Exit status 0 means every check passed.
"""
import argparse
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SKIP = 77
try:
    import numpy as np

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import tiny_glm  # noqa: E402
    from check_convert import write_checkpoint  # noqa: E402
except ImportError as e:
    print(f"skipped: {e} (pip install -r requirements-dev.txt)")
    sys.exit(SKIP)

TIMEOUT = 120  # seconds for one command: a FIFO must be refused, not waited on
SIDE_FILES = {"tokenizer.json": '{"version": "1.0"}', "tokenizer_config.json": "{}",
              "generation_config.json": '{"do_sample": false}', "README.md": "not copied"}


class Checks:
    def __init__(self, binary, work):
        self.binary, self.work, self.failures = binary, work, []

    def run(self, *args):
        try:
            return subprocess.run([self.binary, *args], capture_output=True, text=True,
                                  timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.failures.append(f"weightsync {' '.join(args)} ran over {TIMEOUT} s")
            return subprocess.CompletedProcess(args, -1, "", "timed out")

    def convert(self, src, dst, *extra, command="convert"):
        return self.run(command, "--model", "glm_moe_dsa", "--target-format", "hf-fp8",
                        "--input", src, "--output", dst, *extra)

    def expect(self, condition, message):
        if not condition:
            self.failures.append(message)

    def expect_refused(self, run, *mentions, what):
        if run.returncode == 0:
            self.failures.append(f"{what}: exit 0, want a refusal")
        for m in mentions:
            self.expect(m in run.stderr, f"{what}: error does not mention {m!r}: {run.stderr!r}")


def make_source(directory, tensors=None, config=True):
    rng = np.random.default_rng(0)
    canonical = tensors or tiny_glm.canonical_tensors(rng, "bfloat16")
    write_checkpoint(canonical, directory)
    if config:
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(tiny_glm.hf_config(), f)
    for name, text in SIDE_FILES.items():
        with open(os.path.join(directory, name), "w") as f:
            f.write(text)
    return canonical


def digest(directory):
    """Every file's name and sha256 under `directory`: the input must come out untouched."""
    out = {}
    for root, _, files in os.walk(directory):
        for f in files:
            path = os.path.join(root, f)
            with open(path, "rb") as h:
                out[os.path.relpath(path, directory)] = hashlib.sha256(h.read()).hexdigest()
    return out


def check_output_apart_from_input(c, src):
    before = digest(src)
    os.symlink(src, os.path.join(c.work, "link"))
    cases = [(src, "is the input"), (os.path.join(src, "converted"), "lies inside the input"),
             (c.work, "contains the input"),
             (os.path.join(src, "model-00001-of-00002.safetensors"), "lies inside the input"),
             (os.path.join(c.work, "link"), "is the input")]
    for output, relation in cases:
        run = c.convert(src, output, "--overwrite")
        c.expect_refused(run, relation, output, what=f"--output {output}")
    single = os.path.join(src, "model-00001-of-00002.safetensors")
    c.expect_refused(c.convert(single, single, "--overwrite", "--partial"), "is the input",
                     what="a file converted onto itself")
    c.expect(digest(src) == before, "a refused conversion changed the input")


def check_overwrite(c, src):
    out = os.path.join(c.work, "out")
    c.expect(c.convert(src, out).returncode == 0, "first conversion failed")
    again = c.convert(src, out, "--overwrite")
    c.expect(again.returncode == 0, f"overwriting weightsync's own output failed: {again.stderr}")
    with open(os.path.join(out, "notes.txt"), "w") as f:
        f.write("mine")
    c.expect_refused(c.convert(src, out, "--overwrite"), "notes.txt", what="output with a user file")
    c.expect(os.path.exists(os.path.join(out, "notes.txt")), "the user's notes.txt was deleted")
    theirs = os.path.join(c.work, "theirs")
    os.makedirs(theirs)
    for name in ("config.json", "tokenizer.json"):
        with open(os.path.join(theirs, name), "w") as f:
            f.write("user file")
    c.expect_refused(c.convert(src, theirs, "--overwrite"), "weightsync-output.json",
                     what="a folder weightsync did not write")
    c.expect(sorted(os.listdir(theirs)) == ["config.json", "tokenizer.json"],
             f"files of a refused folder changed: {os.listdir(theirs)}")


def check_side_files(c, src):
    out = os.path.join(c.work, "with_side_files")
    run = c.convert(src, out, "--json")
    if run.returncode != 0:
        c.failures.append(f"conversion failed: {run.stderr}")
        return
    summary = json.loads(run.stdout)
    want = ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]
    c.expect(summary["side_files"] == want, f"side files {summary['side_files']}, want {want}")
    for name in want[1:]:
        with open(os.path.join(out, name)) as f:
            c.expect(f.read() == SIDE_FILES[name], f"{name} was not copied as it is")
    c.expect(not os.path.exists(os.path.join(out, "README.md")), "README.md was copied")
    with open(os.path.join(out, "config.json")) as f:
        config = json.load(f)
    quant = config.get("quantization_config", {})
    c.expect(quant.get("quant_method") == "fp8" and quant.get("weight_block_size") == [128, 128]
             and quant.get("activation_scheme") == "dynamic" and quant.get("fmt") == "e4m3",
             f"quantization_config is {quant}")
    skipped = set(quant.get("modules_to_not_convert", []))
    for module in ("lm_head", "model.embed_tokens", "model.layers.1.mlp.gate",
                   "model.layers.0.self_attn.indexer.weights_proj"):
        c.expect(module in skipped, f"{module} is not in modules_to_not_convert")
    c.expect("model.layers.0.self_attn.q_a_proj" not in skipped, "q_a_proj listed as unquantized")
    c.expect({k: v for k, v in config.items() if k != "quantization_config"} == tiny_glm.hf_config(),
             "the rest of config.json changed")


def check_fifos(c, src):
    plain = os.path.join(c.work, "fifo_plain")
    os.makedirs(plain)
    shutil.copy(os.path.join(src, "model-00001-of-00002.safetensors"), plain)
    os.mkfifo(os.path.join(plain, "model-00002-of-00002.safetensors"))
    c.expect_refused(c.convert(plain, os.path.join(c.work, "o1"), "--partial"),
                     "model-00002-of-00002.safetensors", "FIFO", what="a FIFO in the input folder")
    indexed = os.path.join(c.work, "fifo_indexed")
    shutil.copytree(src, indexed)
    os.remove(os.path.join(indexed, "model-00002-of-00002.safetensors"))
    os.mkfifo(os.path.join(indexed, "model-00002-of-00002.safetensors"))
    c.expect_refused(c.convert(indexed, os.path.join(c.work, "o2")),
                     "model-00002-of-00002.safetensors", "FIFO", what="a FIFO the index names")


def check_shapes(c, canonical):
    """Broken sources that every engine would refuse: each is named with its shape."""
    embed, lm_head = "model.embed_tokens.weight", "lm_head.weight"
    cases = {"transposed lm_head": {lm_head: canonical[lm_head].T.copy()},
             "lm_head with half the columns":
                 {lm_head: canonical[lm_head][:, :160].astype(np.float32)},
             "1-D embed_tokens": {embed: canonical[embed].reshape(-1)}}
    for what, change in cases.items():
        (name, value), = change.items()
        expected = list(canonical[name].shape)
        for with_config in (True, False):
            src = os.path.join(c.work, f"bad_{len(os.listdir(c.work))}")
            make_source(src, {**canonical, **change}, config=with_config)
            run = c.convert(src, src + "_out")
            label = f"{what} ({'with' if with_config else 'without'} config.json)"
            mention = (f"[{', '.join(map(str, expected))}]" if with_config or name == lm_head
                       else "2D [vocab_size, hidden_size]")
            c.expect_refused(run, name, f"[{', '.join(map(str, value.shape))}]", mention,
                             what=label)
            c.expect(not os.path.exists(src + "_out"), f"{label}: output written")


def check_verify(c, src):
    out = os.path.join(c.work, "verified")
    c.expect(c.convert(src, out).returncode == 0, "conversion for verify failed")
    clean = c.convert(src, out, command="verify")
    c.expect(clean.returncode == 0, f"verify of a clean conversion: {clean.stdout}{clean.stderr}")
    name = "model.layers.1.self_attn.o_proj.weight"
    flip_byte(os.path.join(out, "model.safetensors"), name, 1000)
    flipped = c.convert(src, out, command="verify")
    c.expect(flipped.returncode != 0, "verify passed a flipped byte")
    c.expect(f"tensor {name}: 1 of " in flipped.stdout and flipped.stdout.count("DIFFERS") == 1,
             f"verify does not name {name} alone: {flipped.stdout}")


def flip_byte(path, tensor, offset):
    with open(path, "r+b") as f:
        n = int.from_bytes(f.read(8), "little")
        begin = json.loads(f.read(n))[tensor]["data_offsets"][0]
        f.seek(8 + n + begin + offset)
        byte = f.read(1)[0]
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte ^ 0x40]))


def check_help(c):
    convert, plan = c.run("convert", "--help").stdout, c.run("plan", "--help").stdout
    for target in ("vllm", "hf-fp8", "transformers-fp8"):
        c.expect(target in convert, f"convert --help does not list {target}")
    for text, command in ((convert, "convert"), (plan, "plan")):
        line = next((l for l in text.splitlines() if "--source-format" in l), "")
        c.expect(re.search(r"=hf\s", line), f"{command} --help: source format default is not hf: "
                 f"{line!r}")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weightsync", required=True)
    args = parser.parse_args()
    work = tempfile.mkdtemp(prefix="weightsync-e2e-safety-")
    try:
        c = Checks(args.weightsync, work)
        src = os.path.join(work, "ck")
        canonical = make_source(src)
        checks = [check_output_apart_from_input, check_overwrite, check_side_files, check_fifos,
                  check_verify, lambda c, _: check_shapes(c, canonical), lambda c, _: check_help(c)]
        for check in checks:
            try:  # a check that breaks (say, after an earlier one destroyed files) is a failure
                check(c, src)
            except (OSError, ValueError, KeyError, StopIteration) as e:
                c.failures.append(f"{getattr(check, '__name__', 'check')} broke: {e!r}")
        for f in c.failures:
            print("FAIL:", f)
        print(f"convert safety: {len(c.failures)} failures")
        return 1 if c.failures else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
