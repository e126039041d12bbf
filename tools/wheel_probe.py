"""Uses an installed cpar wheel the way a person would and reports what it saw, as one JSON
line on stdout: run by tests/check_wheel.py with the python of a fresh venv (inside
tools/wheel_sandbox.sh), so it needs nothing but cpar, numpy and IPython.

    python tools/wheel_probe.py

It starts a cluster of two engines, pushes 1 MiB to them and reads it back, runs a
load-balanced map, runs a ``%%px`` cell in an IPython shell, and records which shared
libraries the client and each engine have loaded (from /proc/PID/maps), so that the test
can check that libzmq, libcrypto and libpython came from where they must.
"""

import json
import sys


def mapped_libraries(pid="self"):
    """The paths of the shared objects mapped into a process."""
    paths = set()
    with open(f"/proc/{pid}/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            if len(fields) == 6 and ".so" in fields[5]:
                paths.add(fields[5].strip())
    return sorted(paths)


def engine_report():
    """Runs on each engine: its pid, interpreter and mapped libraries."""
    import os
    import sys

    paths = set()
    with open("/proc/self/maps") as f:
        for line in f:
            fields = line.split(None, 5)
            if len(fields) == 6 and ".so" in fields[5]:
                paths.add(fields[5].strip())
    return {"pid": os.getpid(), "executable": sys.executable, "prefix": sys.prefix,
            "version": sys.version.split()[0], "libs": sorted(paths)}


def main():
    import numpy as np
    from IPython.core.interactiveshell import InteractiveShell
    from traitlets.config import Config

    import cpar

    cfg = Config()
    cfg.HistoryManager.enabled = False  # no sqlite history file in the probe's HOME
    shell = InteractiveShell.instance(config=cfg, colors="nocolor")
    report = {"cpar": cpar.__file__, "python": sys.executable, "prefix": sys.prefix}
    cluster = cpar.Cluster(n=2)
    with cluster as rc:
        rc.wait_for_engines(2, timeout=60)
        dview = rc[:]
        blob = np.arange(131072, dtype=np.float64)  # 1 MiB
        dview.push({"blob": blob}, block=True)
        back = dview.pull("blob", block=True)
        report["push_bytes"] = blob.nbytes
        report["push_roundtrip"] = all(np.array_equal(b, blob) for b in back)
        report["push_sums"] = dview.apply_sync(lambda: float(blob.sum()))
        report["push_expected"] = float(blob.sum())

        lview = rc.load_balanced_view()
        report["map"] = lview.map_sync(lambda x: x * x + 1, range(40))
        report["map_expected"] = [x * x + 1 for x in range(40)]

        # A Client made inside the shell registers %px there (as in a notebook).
        shell.user_ns["connection_file"] = cluster.connection_file
        res = shell.run_cell("import cpar\nrc2 = cpar.Client(connection_file)\n"
                             "rc2.wait_for_engines(2, timeout=30)", store_history=False)
        report["client_in_shell_ok"] = res.success
        res = shell.run_cell("%%px\nimport os\npx_pid = os.getpid()\npx_sq = 7 * 6",
                             store_history=False)
        report["px_ok"] = res.success
        report["px_values"] = dview.apply_sync(lambda: (px_pid, px_sq))  # noqa: F821
        shell.run_cell("rc2.close()", store_history=False)

        report["engines"] = dview.apply_sync(engine_report)
    report["client_libs"] = mapped_libraries()
    InteractiveShell.clear_instance()
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
