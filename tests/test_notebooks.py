"""The example notebooks (examples/0*.ipynb), executed by nbclient in a real ipykernel.

Each notebook starts its own cluster (``cluster_id='nb-...'``) in a cell near the top and
stops it in its last cell. The kernel inherits this test process's environment, so its
clusters live under the private $CPAR_DIR of tests/conftest.py; whatever happens in the
notebook, each test stops a cluster it left (``Cluster.from_file``) and checks that no
controller or engine of it is still alive. The tests assert on the outputs stored in the
executed notebook, found by the cells' tags (examples/make_notebooks.py writes them).

Needs nbclient, nbformat, ipykernel and matplotlib (the kernel is ``python3``, which
jupyter_client runs with this interpreter, sys.executable: checked by the first test).
"""

import base64
import math
import os
import re
import sys
import time

import nbclient
import nbformat
import pytest

import cpar
from cpar import paths
from cpar.cluster import cluster as cluster_mod

pytestmark = pytest.mark.timeout(240)

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


# ---------------------------------------------------------------------------------------
# running a notebook


def _cluster_pids(cluster_id):
    """Processes of this test run's $CPAR_DIR whose command line names cluster_id."""
    mine = f"CPAR_DIR={os.environ['CPAR_DIR']}".encode()
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmdline = f.read()
            if cluster_id.encode() not in cmdline:
                continue
            with open(f"/proc/{d}/environ", "rb") as f:
                environ = f.read().split(b"\0")
        except OSError:
            continue
        if mine in environ:
            pids.append(int(d))
    return pids


def _stop_leftovers(cluster_id):
    """Stops the cluster if the notebook left it running; True if it had to."""
    left = False
    if os.path.exists(_cluster_file(cluster_id)):
        left = cluster_mod.running_cluster_info(cluster_id=cluster_id) is not None
        try:
            cpar.Cluster.from_file(cluster_id=cluster_id).stop_cluster_sync()
        except Exception:  # noqa: BLE001 - the /proc check below decides
            pass
    deadline = time.monotonic() + 10
    while _cluster_pids(cluster_id) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _cluster_file(cluster_id):
    return paths.cluster_file("default", cluster_id)


def run_notebook(name, cluster_id, tmp_path):
    """Executes examples/<name> in a fresh python3 kernel, in tmp_path; the executed
    notebook. Raises nbclient's CellExecutionError at the first failing cell."""
    nb = nbformat.read(os.path.join(EXAMPLES, name), as_version=4)
    client = nbclient.NotebookClient(
        nb, timeout=120, kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path)}},
    )
    try:
        client.execute()
    finally:
        left = _stop_leftovers(cluster_id)
        alive = _cluster_pids(cluster_id)
        assert not alive, f"processes of cluster {cluster_id} left running: {alive}"
    assert not left, f"the notebook left cluster {cluster_id} running"
    errors = [(c.get("id"), o) for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error"]
    assert not errors, errors
    return nb


def cell(nb, tag):
    for c in nb.cells:
        if tag in c.get("metadata", {}).get("tags", []):
            return c
    raise KeyError(f"no cell tagged {tag!r}")


def stream(nb, tag, name="stdout"):
    """All the text a cell wrote on the given stream."""
    return "".join(o.text for o in cell(nb, tag).outputs
                   if o.output_type == "stream" and o.name == name)


def result(nb, tag):
    """The text/plain of the cell's execute_result."""
    outs = [o for o in cell(nb, tag).outputs if o.output_type == "execute_result"]
    assert len(outs) == 1, cell(nb, tag).outputs
    return outs[0].data["text/plain"]


def text(nb, tag):
    """Everything a cell showed as text: streams, results and displays (text/plain)."""
    parts = []
    for o in cell(nb, tag).outputs:
        if o.output_type == "stream":
            parts.append(o.text)
        elif o.output_type in ("execute_result", "display_data"):
            parts.append(o.data.get("text/plain", ""))
    return "\n".join(parts)


def engine_lines(out, kind="stdout"):
    """{engine id: [lines]} of ``[stdout:N] line`` / ``[stdout:N]\\nlines`` blocks."""
    blocks = {}
    current = None
    for line in out.splitlines():
        m = re.match(rf"\[{kind}:(\d+)\]\s?(.*)$", line)
        if m:
            current = blocks.setdefault(int(m.group(1)), [])
            if m.group(2):
                current.append(m.group(2))
        elif re.match(r"\[\w+:\d+\]", line):
            current = None
        elif current is not None and line.strip():
            current.append(line)
    return blocks


def pngs(c):
    return [o for o in c.outputs if o.output_type in ("display_data", "execute_result")
            and "image/png" in o.get("data", {})]


# ---------------------------------------------------------------------------------------
# the kernel


def test_kernel_is_this_python_with_this_cpar_dir(tmp_path):
    from nbformat.v4 import new_code_cell, new_notebook

    nb = new_notebook(cells=[new_code_cell(
        "import os, sys, cpar\nprint(sys.executable)\nprint(os.environ['CPAR_DIR'])\n"
        "print(cpar.__file__)")])
    nbclient.NotebookClient(nb, timeout=60, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    exe, cpar_dir, cpar_file = nb.cells[0].outputs[0].text.split()
    assert os.path.realpath(exe) == os.path.realpath(sys.executable)
    assert cpar_dir == os.environ["CPAR_DIR"]
    assert cpar_file == cpar.__file__


# ---------------------------------------------------------------------------------------
# the notebooks


def test_00_julia_sets(tmp_path):
    nb = run_notebook("00_julia_sets.ipynb", "nb-julia-sets", tmp_path)
    assert stream(nb, "ids") == "[0, 1]\n"
    assert result(nb, "apply-hello") == "['Hello World', 'Hello World']"
    assert result(nb, "apply-even") == "['Hello World']"
    assert result(nb, "bview-hello") == "'Hello World'"
    pids = eval(result(nb, "apply-getpid"))
    assert len(set(pids)) == 2 and eval(result(nb, "remote-getpid")) == pids

    # %%px: [stdout:0] <pid of engine 0> / [stdout:1] <pid of engine 1>
    blocks = engine_lines(stream(nb, "px-getpid"))
    assert blocks == {0: [str(pids[0])], 1: [str(pids[1])]}
    assert engine_lines(stream(nb, "execute-getpid")) == blocks
    assert "importing numpy on engine(s)" in stream(nb, "sync-imports")
    assert engine_lines(stream(nb, "run-hello")) == {0: ["Hello World"], 1: ["Hello World"]}

    # a matplotlib figure drawn on each engine, shown as a PNG in the notebook
    plots = pngs(cell(nb, "engine-plot"))
    assert len(plots) == 2
    assert all(base64.b64decode(o.data["image/png"]).startswith(b"\x89PNG") for o in plots)
    assert all(o.output_type == "display_data" for o in plots)
    assert "[output:0]" in stream(nb, "engine-plot") and "[output:1]" in stream(nb, "engine-plot")

    assert stream(nb, "dict-access").splitlines()[0] == "[5, 5]"
    assert "built-in function getpid" in stream(nb, "dict-access")
    assert result(nb, "push-pull") == "[[1, 2], [1, 2]]"
    blocks = engine_lines(stream(nb, "scatter-print"))
    assert blocks[0][0].startswith("[ 0  1  2")
    assert blocks[1][0].startswith("[16 17 18")
    assert result(nb, "gather").startswith("array([  0,   1,   4,   9,  16,")
    assert "961])" in result(nb, "gather")

    assert eval(result(nb, "bview-random"))[0] in pids
    out = stream(nb, "bview-map").splitlines()
    assert out[0] == "True" and len(eval(out[1])) == 10
    assert len(stream(nb, "bview-iter").splitlines()) == 10
    assert stream(nb, "grid-corner").startswith("[[-1.3")

    assert "Wall time" in stream(nb, "time-serial")
    assert "Wall time" in stream(nb, "time-parallel")
    # the Julia set computed on the engines equals the serial one
    assert stream(nb, "julia-compare") == "True\n"


def test_01_interactive_tutorial(tmp_path):
    nb = run_notebook("01_interactive_tutorial.ipynb", "nb-interactive-tutorial", tmp_path)
    assert result(nb, "ids") == "[0, 1]"
    assert stream(nb, "px-ciao") == "[stdout:0] ciao\n[stdout:1] ciao\n"
    pids = engine_lines(stream(nb, "px-getpid"))
    assert sorted(pids) == [0, 1] and pids[0] != pids[1]
    rand = engine_lines(stream(nb, "px-rand"))
    assert sorted(rand) == [0, 1]
    pulled = result(nb, "pull-a")
    assert pulled.startswith("[array([") and pulled.count("array(") == 2
    assert result(nb, "map-compare") == "True"
    assert result(nb, "apply-27") == "[42, 42]"
    assert result(nb, "apply-33") == "[48, 48]"
    assert stream(nb, "targets") == "42 48\n"
    assert result(nb, "gather").replace(" ", "") == \
        "array([0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15])"
    assert result(nb, "scattered").replace(" ", "") == \
        "[array([0,1,2,3,4,5,6,7]),array([8,9,10,11,12,13,14,15])]"


def test_02_distributing_code(tmp_path):
    nb = run_notebook("02_distributing_code.ipynb", "nb-distributing-code", tmp_path)
    assert result(nb, "ids") == "[0, 1, 2, 3]"
    blocks = engine_lines(stream(nb, "px-process"))
    assert sorted(blocks) == [0, 1, 2, 3]
    assert all(re.fullmatch(r"Process \d+\.", b[0]) for b in blocks.values())
    assert len({b[0] for b in blocks.values()}) == 4
    # -t 1,2: only engines 1 and 2, the same processes as before
    assert engine_lines(stream(nb, "px-targets")) == {1: blocks[1], 2: blocks[2]}
    # -a: the AsyncResult is the cell's value; running, then done after %pxresult
    assert "AsyncResult" in result(nb, "px-noblock")
    elapsed, ready = stream(nb, "elapsed-running").split()
    assert ready == "False" and float(elapsed) < 2
    elapsed, ready = stream(nb, "elapsed-done").split()
    assert ready == "True" and float(elapsed) >= 2
    assert stream(nb, "map") == "[0, 1, 4, 9, 16, 25, 36, 49, 64, 81]\n"
    assert stream(nb, "after") == "A\nA started after B and C ended: True\n"
    out = stream(nb, "require").splitlines()
    assert out[0] == "5.0" and out[1].startswith("ImpossibleDependency")


def test_03_parallel_computing_blog(tmp_path):
    nb = run_notebook("03_parallel_computing_blog.ipynb", "nb-parallel-computing", tmp_path)
    pids = eval(result(nb, "apply-block"))
    assert len(set(pids)) == 4
    assert result(nb, "ready") == "True"
    assert stream(nb, "execute-c") == "[20, 20, 20, 20]\n[22, 22, 22, 22]\n[42, 42, 42, 42]\n"
    assert result(nb, "gather").replace(" ", "").replace("\n", "") == \
        f"array([{','.join(str(i) for i in range(24))}])"
    assert result(nb, "lview-apply") == "42"
    assert stream(nb, "lview-result") == f"{[2 * i for i in range(40)]}\n"
    assert stream(nb, "lview-iter") == "".join(f"{i}\n" for i in range(10))
    # the Monte Carlo estimates of pi
    serial = float(stream(nb, "mcpi-serial").splitlines()[0])
    parallel = float(stream(nb, "mcpi-parallel").splitlines()[0])
    assert abs(serial - math.pi) < 0.01
    assert abs(parallel - math.pi) < 0.01
    assert "Wall time" in stream(nb, "mcpi-parallel")


def test_04_tacc_slides(tmp_path):
    nb = run_notebook("04_tacc_slides.ipynb", "nb-tacc-slides", tmp_path)
    assert stream(nb, "ids") == "[0, 1, 2, 3]\n"
    assert result(nb, "map-compare") == "True"
    assert len(set(eval(result(nb, "remote-getpid")))) == 4
    assert result(nb, "pmul") in ("True", "np.True_")
    assert result(nb, "apply-5") == "[27, 27, 27, 27]"
    assert result(nb, "pull-c") == "[22, -2, 22, -2]"
    assert result(nb, "ready") == "False"
    assert stream(nb, "get-timeout").startswith("TimeoutError")
    assert result(nb, "pull-a") == "[1.03234, 1.03234, 1.03234, 1.03234]"
    assert result(nb, "pull-b0") == "3453"
    assert result(nb, "pull-ab") == "[[1.03234, 3453], [1.03234, 3453], [1.03234, 3453], [1.03234, 3453]]"
    assert "importing numpy on engine(s)" in stream(nb, "sync-imports")

    # the parallel magics
    blocks = engine_lines(stream(nb, "px-print-a"))
    assert sorted(blocks) == [0, 1, 2, 3]
    assert all(len(b) == 2 and b[0].startswith("[[") for b in blocks.values())
    out = text(nb, "px-out")
    assert all(re.search(rf"Out\[{k}:\d+\]:? *\(2, 2\)", out) for k in range(4)), out
    assert engine_lines(stream(nb, "px-even")) == {0: ["I am even"], 2: ["I am even"]}
    assert "I am number 1" in stream(nb, "px-one")
    assert "[stdout:0]" not in stream(nb, "px-one")
    assert engine_lines(text(nb, "pxresult")) == {
        k: ["done without blocking"] for k in range(4)}
    assert "autopx" in text(nb, "autopx-on") and "enabled" in text(nb, "autopx-on")
    blocks = engine_lines(stream(nb, "autopx-cell"))
    assert sorted(blocks) == [0, 1, 2, 3]
    assert all(b[0].startswith("autopx on ") for b in blocks.values())
    assert "disabled" in text(nb, "autopx-off")
    assert engine_lines(stream(nb, "activate-odd")) == {1: ["odd engine"], 3: ["odd engine"]}
    assert engine_lines(stream(nb, "activate-even")) == {0: ["even engine"],
                                                         2: ["even engine"]}
    assert engine_lines(stream(nb, "activate-all")) == {k: ["all engines"] for k in range(4)}
