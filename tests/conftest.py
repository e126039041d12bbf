"""Fixtures: a private $CPAR_DIR, a real 4-engine cluster for the session, clients."""

import os
import shutil
import signal
import tempfile

import pytest

# Every test run keeps its state away from the user's ~/.cpar.
_CPAR_DIR = tempfile.mkdtemp(prefix="cpar-test-")
os.environ["CPAR_DIR"] = _CPAR_DIR

N_ENGINES = 4

# The suite tests Ctrl-C (in the client, in %px, in child processes). A run started as a
# background job of a non-interactive shell (`sh -c 'make test &'`) inherits SIGINT
# ignored: Python then installs no KeyboardInterrupt handler, _thread.interrupt_main()
# does nothing and every child process inherits the ignored signal. Ctrl-C behaviour is
# what is tested, whatever the shell did, so the run starts with Python's own handler.
if signal.getsignal(signal.SIGINT) in (signal.SIG_IGN, signal.SIG_DFL):
    signal.signal(signal.SIGINT, signal.default_int_handler)

# ipyparallel's own suite, run only by `make conformance` (tests/conformance/run.py).
collect_ignore = ["conformance"]

from launchkit import sge, slurm, sshd  # noqa: E402,F401 - SGE, Slurm and sshd fixtures


@pytest.fixture(scope="session")
def cpar_cluster_options(cpar_cluster_options):
    """cpar's pytest plugin (cpar.pytest_plugin) starts the session's cluster: this
    suite's has N_ENGINES engines and the cluster id "pytest", whatever --cpar-engines
    says."""
    return {**cpar_cluster_options, "n": N_ENGINES, "cluster_id": "pytest"}


@pytest.fixture(scope="session")
def cluster(cpar_cluster):
    """The plugin's session cluster (started on first use; at the end it is stopped and
    the plugin checks that no engine or controller is left running)."""
    return cpar_cluster


@pytest.fixture
def rc(cluster):
    """A fresh client of the session cluster for each test."""
    import cpar

    client = cpar.Client(cluster.connection_file)
    client.wait_for_engines(N_ENGINES, timeout=30)
    yield client
    client.close()


@pytest.fixture
def dview(rc):
    v = rc[:]
    v.block = True
    return v


@pytest.fixture
def lview(rc):
    return rc.load_balanced_view()


# On a root machine where every daemon the launcher tests need can start (make test
# installs them), a skipped launcher or network-namespace test would hide a broken
# launcher: with CPAR_REQUIRE_ALL set (make test sets it) such a skip fails the run.
_MUST_RUN = ("test_launchers.py", "test_netns.py", "test_controller_launchers.py",
             "test_cluster.py")


def _skip_must_fail(nodeid):
    if os.environ.get("CPAR_REQUIRE_ALL", "") in ("", "0") or os.geteuid() != 0:
        return False
    path = nodeid.split("::", 1)[0]
    return os.path.basename(path) in _MUST_RUN


def _as_failure(report):
    reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
    report.outcome = "failed"
    report.longrepr = (f"skipped as root with CPAR_REQUIRE_ALL=1, which must not happen for "
                       f"{os.path.basename(report.nodeid.split('::', 1)[0])}: {reason}")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    # A skipif mark or pytest.skip() in a test or fixture; xfail is not a skip here.
    if report.skipped and not hasattr(report, "wasxfail") and _skip_must_fail(report.nodeid):
        _as_failure(report)


_SKIPPED_MODULES = []


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector):
    outcome = yield
    report = outcome.get_result()
    # A module skipped as a whole (pytest.skip(allow_module_level=True), importorskip):
    # failing its collection would stop the whole session, so it is noted here and fails
    # the run at its end (the other tests still run).
    if report.skipped and _skip_must_fail(report.nodeid):
        _SKIPPED_MODULES.append((report.nodeid, str(report.longrepr)))


def pytest_terminal_summary(terminalreporter):
    for nodeid, why in _SKIPPED_MODULES:
        terminalreporter.write_line(f"FAILED {nodeid}: skipped as a whole as root with "
                                    f"CPAR_REQUIRE_ALL=1: {why}", red=True)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CPAR_DIR, ignore_errors=True)
    if _SKIPPED_MODULES and session.exitstatus == 0:
        session.exitstatus = 1


@pytest.fixture(autouse=True)
def _sigint_handler_unchanged():
    """A test leaves the process's SIGINT disposition as it found it.

    Ctrl-C tests (and every child process, which inherits SIG_IGN across exec)
    depend on it; a library that ignores SIGINT in-process breaks them far from
    the cause, so the test that changed it fails here and the handler is restored."""
    before = signal.getsignal(signal.SIGINT)
    yield
    after = signal.getsignal(signal.SIGINT)
    if after is not before:
        signal.signal(signal.SIGINT, before)
        pytest.fail(f"the test changed the SIGINT handler from {before!r} to {after!r}")
