"""pytest plugin of the conformance harness (``-p conformance_plugin``).

Loaded before collection: it makes ``ipyparallel`` the shim (tests/conformance/shim) and
records every test's outcome, one JSON line per report, in $CPAR_CONFORMANCE_OUT (written
as they come, so a run that dies still leaves what it saw). run.py compares them with
expected.txt.
"""

import json
import os
import sys

_SHIM = os.path.join(os.path.dirname(os.path.abspath(__file__)), "shim")
if sys.path[0] != _SHIM:
    sys.path.insert(0, _SHIM)

import ipyparallel  # noqa: E402 - the shim, before any test module imports the name

if not os.path.abspath(ipyparallel.__file__).startswith(_SHIM + os.sep):
    raise ImportError(f"ipyparallel resolved to {ipyparallel.__file__}, not the cpar shim")

_out = None


def test_key(nodeid):
    """``test_view.py::TestView::test_x`` whatever directory pytest names the file by."""
    path, sep, rest = nodeid.partition("::")
    return os.path.basename(path) + sep + rest


def _emit(record):
    global _out
    if _out is None:
        path = os.environ.get("CPAR_CONFORMANCE_OUT")
        if not path:
            return
        _out = open(path, "a", buffering=1)
    _out.write(json.dumps(record) + "\n")


def _message(report):
    """The error's last 'E' line (the exception), or the skip reason."""
    lr = report.longrepr
    if lr is None:
        return ""
    if isinstance(lr, tuple):  # skip: (file, line, reason)
        return str(lr[2])
    text = str(lr)
    elines = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("E ")]
    for ln in elines:
        if "Error" in ln or "Exception" in ln or "assert" in ln:
            return ln[:200]
    if elines:
        return elines[0][:200]
    return text.strip().splitlines()[-1][:200] if text.strip() else ""


def pytest_collection_finish(session):
    for item in session.items:
        _emit({"kind": "collected", "id": test_key(item.nodeid)})


def pytest_collectreport(report):
    if report.failed:
        _emit({"kind": "collect-error", "id": test_key(report.nodeid),
               "msg": _message(report)})


def pytest_runtest_logreport(report):
    msg = "" if report.passed else _message(report)
    if getattr(report, "wasxfail", None) is not None:
        msg = f"xfail in the suite ({report.wasxfail}): {msg}"
    _emit({"kind": "report", "id": test_key(report.nodeid), "when": report.when,
           "outcome": report.outcome, "msg": msg})
