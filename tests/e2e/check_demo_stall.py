#!/usr/bin/env python3
"""`weightsync demo` with a worker stopped (SIGSTOP) in the middle of the run: the demo must end
within one push deadline of the stall (3 x --timeout after the worker's last output), print a row
for every push naming the worker that never reported it, stop the stalled worker, and exit 1.
Before this was fixed the demo waited timeout x (3 x pushes + 2) and stopped printing rows."""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

TIMEOUT = 4  # the demo's --timeout: every push phase's deadline
PUSHES = 4
VICTIM = ("inference", "1")


def children(pid):
    """The processes whose parent is `pid`, with their command lines."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().split(b"\0")
        except OSError:
            continue
        if ppid == pid:
            found[int(entry)] = [a.decode() for a in cmdline if a]
    return found


def victim_pid(demo_pid):
    for pid, argv in children(demo_pid).items():
        if "demo-worker" in argv and argv[argv.index("--role") + 1] == VICTIM[0] and \
                argv[argv.index("--rank") + 1] == VICTIM[1]:
            return pid
    return None


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--weightsync", required=True)
    args = p.parse_args()
    demo = subprocess.Popen([args.weightsync, "demo", "--json", "--pushes", str(PUSHES),
                             "--timeout", str(TIMEOUT)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr_lines = []
    threading.Thread(target=lambda: stderr_lines.extend(demo.stderr), daemon=True).start()
    rows = []
    stopped_at = None
    pid = None
    for line in demo.stdout:
        row = json.loads(line)
        if "step" in row:
            rows.append(row)
        if stopped_at is None and rows:
            pid = victim_pid(demo.pid)
            assert pid is not None, "the victim worker was not found"
            os.kill(pid, signal.SIGSTOP)
            stopped_at = time.monotonic()
    try:
        code = demo.wait(timeout=120)
    except subprocess.TimeoutExpired:
        demo.kill()
        sys.exit("FAILED: the demo did not end within 120 s of the stall")
    elapsed = time.monotonic() - stopped_at
    stderr = "".join(stderr_lines)
    problems = []
    if code != 1:
        problems.append(f"exit code {code}, expected 1")
    # Liveness notices the stopped rank within control.liveness_timeout (5 s); the driver stops
    # it 3 x TIMEOUT after its last output; the rest is process start-up on a loaded machine.
    if elapsed > 5 + 3 * TIMEOUT + 20:
        problems.append(f"the demo ended {elapsed:.1f} s after the stall")
    steps = [r["step"] for r in rows]
    if steps != list(range(1, PUSHES + 1)):
        problems.append(f"rows for pushes {steps}, expected 1..{PUSHES}")
    victim = " ".join(VICTIM)
    if not any(victim in r.get("missing", []) for r in rows):
        problems.append(f"no row names {victim} as missing: {rows}")
    if f"{victim} (pid {pid}) printed nothing" not in stderr:
        problems.append(f"stderr does not say that {victim} was stopped:\n{stderr}")
    if os.path.exists(f"/proc/{pid}") and open(f"/proc/{pid}/stat").read().split()[2] != "Z":
        problems.append(f"the stalled worker {pid} is still there")
        os.kill(pid, signal.SIGKILL)
    if problems:
        print("FAILED:\n  " + "\n  ".join(problems))
        return 1
    print(f"ok: ended {elapsed:.1f} s after the stall, exit 1, rows {steps}, "
          f"missing {[r.get('missing') for r in rows]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
