"""The floor: compiles bench/floor.c into build/bench/ and runs it (raw libzmq relay, memcpy,
a first write to fresh pages)."""

import json
import os
import shutil
import subprocess

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SOURCE = os.path.join(HERE, "floor.c")
BINARY = os.path.join(ROOT, "build", "bench", "floor")


def build():
    """Compiles the floor program when missing or older than its source; returns its path."""
    if os.path.exists(BINARY) and os.path.getmtime(BINARY) >= os.path.getmtime(SOURCE):
        return BINARY
    cc = os.environ.get("CC") or shutil.which("cc") or "gcc"
    os.makedirs(os.path.dirname(BINARY), exist_ok=True)
    subprocess.run([cc, "-std=c11", "-O2", "-Wall", "-o", BINARY, SOURCE, "-lzmq"], check=True)
    return BINARY


def measure(batches=5, timeout=120):
    """{relay_roundtrip (s), relay_msgs_per_s, relay_big_gbps, memcpy_gbps,
    first_touch_gbps: stats}, or
    None with a printed note when the program cannot be built or run."""
    try:
        out = subprocess.run([build(), "--batches", str(batches)], check=True, timeout=timeout,
                             capture_output=True, text=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        print(f"floor: skipped ({e})", flush=True)
        return None
    return json.loads(out)
