"""The controller alone: builds bench/ctlfeed.c (``make build/bench/ctlfeed``: the
controller's C sources with the C test fixture's fake client and engines) and runs it.
``python -m bench.ctlfeed`` prints its JSON; ``make bench`` stores the rate beside the
relay's message rate."""

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
BINARY = os.path.join(ROOT, "build", "bench", "ctlfeed")


def measure(batches=10, tasks=100_000, db="none", timeout=600):
    """{controller_alone_per_s: stats, ...}, or None with a printed note when the program
    cannot be built or run."""
    try:
        subprocess.run(["make", "-s", "build/bench/ctlfeed"], cwd=ROOT, check=True,
                       timeout=timeout, capture_output=True)
        out = subprocess.run([BINARY, "--batches", str(batches), "--tasks", str(tasks),
                              "--db", db], check=True, timeout=timeout, capture_output=True,
                             text=True).stdout
    except (OSError, subprocess.SubprocessError) as e:
        print(f"controller alone: skipped ({e})", flush=True)
        return None
    return json.loads(out)


if __name__ == "__main__":
    print(json.dumps(measure(*(int(a) for a in sys.argv[1:3]))))
