"""Executes examples/*.ipynb against real local clusters and writes the executed copies
(with their outputs) for the documentation site: ``python tools/docs_notebooks.py OUTDIR``.

The committed notebooks carry no outputs (examples/make_notebooks.py writes them); the
site shows what a real run printed. Each notebook runs in a fresh ``python3`` kernel (this
interpreter, so this venv's cpar), in a scratch directory, with a private ``$CPAR_DIR``:
the clusters it starts cannot meet a user's. A notebook stops its own cluster in its last
cell; whatever is left (a cell failed) is stopped here, and a cell that ends in an error
fails the run, naming the notebook and the cell, so the site never shows a broken run.
"""

import argparse
import glob
import os
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = os.path.join(ROOT, "examples")


def _stop_leftovers(cpar_dir):
    """Stops every cluster under cpar_dir whose controller still runs; their ids."""
    import cpar
    from cpar.cluster import running_cluster_info

    left = []
    for path in glob.glob(os.path.join(cpar_dir, "profile_*", "security", "cluster-*.json")):
        profile = os.path.basename(os.path.dirname(os.path.dirname(path)))[len("profile_"):]
        cluster_id = os.path.basename(path)[len("cluster-"):-len(".json")]
        cluster_id = "" if cluster_id == "default" else cluster_id
        if running_cluster_info(profile, cluster_id) is None:
            continue
        left.append(cluster_id)
        try:
            cpar.Cluster.from_file(path).stop_cluster_sync()
        except Exception as e:  # noqa: BLE001 - reported, then the next one
            print(f"  could not stop cluster {cluster_id!r}: {e}", file=sys.stderr)
    return left


def _errors(nb):
    return [(c.get("id"), o.get("ename"), o.get("evalue")) for c in nb.cells
            if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]


def execute(path, outdir, timeout):
    """Runs one notebook; writes OUTDIR/<name>. Raises RuntimeError if it failed."""
    import nbclient
    import nbformat
    from jupyter_client.manager import KernelManager

    name = os.path.basename(path)
    nb = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="cpar-docs-nb-") as scratch:
        cpar_dir = os.path.join(scratch, "cpar")
        work = os.path.join(scratch, "work")
        os.makedirs(work)
        saved = os.environ.get("CPAR_DIR")
        os.environ["CPAR_DIR"] = cpar_dir  # the kernel inherits it
        failure = None
        # the kernel's sockets: ipc in the scratch directory, not tcp on localhost
        km = KernelManager(kernel_name="python3", transport="ipc",
                           ip=os.path.join(scratch, "kernel"))
        try:
            client = nbclient.NotebookClient(
                nb, km=km, timeout=timeout, kernel_name="python3",
                resources={"metadata": {"path": work}})
            client.execute()
        except Exception as e:  # noqa: BLE001 - nbclient's CellExecutionError and others
            failure = f"{type(e).__name__}: {str(e)[-2000:]}"
        finally:
            # nbclient stops only a kernel it started itself: this one is ours to stop
            if km.has_kernel:
                km.shutdown_kernel(now=True)
            left = _stop_leftovers(cpar_dir)
            if saved is None:
                os.environ.pop("CPAR_DIR", None)
            else:
                os.environ["CPAR_DIR"] = saved
    if failure is None and _errors(nb):
        failure = f"cells ended in errors: {_errors(nb)}"
    if failure is None and left:
        failure = f"the notebook left cluster(s) {left} running (stopped now)"
    if failure is not None:
        raise RuntimeError(f"{name}: {failure}")
    nbformat.write(nb, os.path.join(outdir, name))


def main(argv=None):
    p = argparse.ArgumentParser(prog="python tools/docs_notebooks.py",
                                description=__doc__.split("\n\n")[0])
    p.add_argument("outdir", help="where the executed notebooks are written")
    p.add_argument("notebooks", nargs="*",
                   help="notebooks to run (default: examples/*.ipynb)")
    p.add_argument("--timeout", type=int, default=180, help="seconds per cell")
    args = p.parse_args(argv)
    paths = args.notebooks or sorted(glob.glob(os.path.join(EXAMPLES, "*.ipynb")))
    if not paths:
        print(f"no notebooks in {EXAMPLES}", file=sys.stderr)
        return 2
    os.makedirs(args.outdir, exist_ok=True)
    failed = []
    for path in paths:
        start = time.monotonic()
        try:
            execute(path, args.outdir, args.timeout)
            print(f"executed {os.path.relpath(path, ROOT)} "
                  f"({time.monotonic() - start:.1f} s)")
        except RuntimeError as e:
            print(f"FAILED {e}", file=sys.stderr)
            failed.append(path)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
