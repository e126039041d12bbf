"""cpar's pytest plugin (cpar.pytest_plugin), driven by pytester: each test writes a small
test suite, runs pytest on it in a child process (so its cluster starts and stops as a
user's would, real controller and engines) and checks the outcome, the report and that
nothing of that cluster is left running."""

import json
import os

import pytest

from launchkit import wait_gone

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.timeout(180)

# The inner suites' conftest: each test that had the cluster records its files and
# processes, for the outer test to check they are gone after the run.
RECORDING_CONFTEST = """
import json
import pytest

@pytest.fixture(autouse=True)
def _record_cluster(request):
    yield
    if "cpar_cluster" in request.fixturenames:
        c = request.getfixturevalue("cpar_cluster")
        with open(request.config.rootpath / "cluster.json", "w") as f:
            json.dump({"cluster_file": c.cluster_file,
                       "pids": list(c.engines.pids) + list(c.controller.pids)}, f)
"""


def run(pytester, *args, conftest=RECORDING_CONFTEST):
    """pytest on ``pytester``'s files in a child process (the plugin loads by its entry
    point, as for a user); checks afterwards that the cluster it started is gone."""
    if conftest:
        pytester.makeconftest(conftest)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=150)
    record = pytester.path / "cluster.json"
    if record.exists():
        info = json.loads(record.read_text())
        assert not os.path.exists(info["cluster_file"])
        assert wait_gone(info["pids"]) == [], "the inner session left cluster processes"
    return result


# -- fixtures --------------------------------------------------------------------------------


def test_fixtures_session_cluster_clients_views_and_clean_engines(pytester):
    pytester.makeini("[pytest]\ncpar_engines = 1\n")  # the command line wins
    pytester.makepyfile(test_inner="""
        import time

        clusters = []
        clients = []

        def test_cluster_is_started_with_the_options(cpar_cluster):
            clusters.append(cpar_cluster)
            assert cpar_cluster.n == 3
            assert cpar_cluster.profile == "plugintest"
            assert "profile_plugintest" in cpar_cluster.connection_file
            assert cpar_cluster.cluster_id.startswith("pytest-")
            assert cpar_cluster.engine_launcher == "local"

        def test_one_cluster_for_the_session_and_a_client_with_every_engine(
                cpar_cluster, cpar_client):
            assert clusters == [cpar_cluster]
            clients.append(cpar_client)
            assert cpar_client.ids == [0, 1, 2]
            assert cpar_client.url_file == cpar_cluster.connection_file

        def test_leaves_names_on_the_engines(cpar_dview):
            assert cpar_dview.block
            cpar_dview["leftover"] = 42
            cpar_dview.execute("import json; made_here = 1")
            assert cpar_dview["leftover"] == [42, 42, 42]

        def test_the_next_test_finds_them_gone(cpar_dview):
            cpar_dview.execute("found = [name for name in ('leftover', 'json', "
                               "'made_here') if name in globals()]")
            assert cpar_dview["found"] == [[], [], []]

        def test_leaves_a_task_running(cpar_client):
            cpar_client[:].apply_async(time.sleep, 60)
            assert cpar_client.outstanding

        def test_the_next_test_finds_it_aborted(cpar_client):
            status = cpar_client.queue_status()
            assert [status[e]["queue"] for e in cpar_client.ids] == [0, 0, 0]

        def test_load_balanced_view(cpar_lbview):
            assert cpar_lbview.block
            assert sorted(cpar_lbview.map(abs, [-1, -2, -3, -4])) == [1, 2, 3, 4]

        def test_each_test_gets_its_own_client(cpar_client):
            assert clients[0] is not cpar_client and clients[0].closed
            assert not cpar_client.closed
    """)
    result = run(pytester, "--cpar-engines", "3", "--cpar-profile", "plugintest")
    result.assert_outcomes(passed=8)


def test_conftest_can_override_the_cluster_options(pytester):
    pytester.makeconftest(RECORDING_CONFTEST + """
@pytest.fixture(scope="session")
def cpar_cluster_options(cpar_cluster_options):
    return {**cpar_cluster_options, "n": 1, "hb_timeout_ms": 4321}
""")
    pytester.makepyfile(test_inner="""
        def test_options(cpar_cluster, cpar_client):
            assert cpar_cluster.hb_timeout_ms == 4321
            assert cpar_client.ids == [0]
    """)
    result = run(pytester, conftest=None)
    result.assert_outcomes(passed=1)


def test_no_cluster_unless_a_test_asks_and_bad_options_are_named(pytester, tmp_path,
                                                                 monkeypatch):
    cpar_dir = tmp_path / "cpar-dir"
    monkeypatch.setenv("CPAR_DIR", str(cpar_dir))
    pytester.makepyfile(test_inner="""
        def test_plain():
            assert 1 + 1 == 2

        def test_options_reach_the_cluster(cpar_cluster_options):
            assert cpar_cluster_options["engines"] == "mpi"
            assert cpar_cluster_options["n"] == 2  # the default
            assert cpar_cluster_options["profile"] == "default"
    """)
    result = run(pytester, "--cpar-engines-launcher", "MPIEngineSetLauncher")
    result.assert_outcomes(passed=2)
    # nothing was started: no cluster, no log, no cluster file anywhere under $CPAR_DIR
    started = [f for _, _, files in os.walk(cpar_dir) for f in files]
    assert started == []

    result = run(pytester, "--cpar-engines", "0")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cpar-engines must be a positive number of engines, "
                                 "not '0'*"])
    result = run(pytester, "--cpar-engines-launcher", "nosuch")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--cpar-engines-launcher: unknown engine launcher "
                                 "'nosuch'; available: 'local', 'mpi'*"])
    pytester.makeini("[pytest]\ncpar_engines = many\n")
    result = run(pytester)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*ini option cpar_engines must be a positive number of "
                                 "engines, not 'many'*"])


# -- reports ---------------------------------------------------------------------------------


def test_failing_report_has_the_engines_output_and_log_lines(pytester):
    pytester.makepyfile(test_inner="""
        def test_prints_then_fails(cpar_dview):
            cpar_dview.execute("print('out marker', 7)")
            cpar_dview.execute("import sys; print('err marker', file=sys.stderr)")
            # written to the engine process's stderr, which is its log file
            cpar_dview.execute("import os; os.write(2, b'log marker\\\\n')")
            assert False, "the test fails here"

        def test_keeps_its_result_and_fails(cpar_client):
            ar = cpar_client[1].execute("print('held result marker')", block=False)
            ar.get(30)
            assert ar is None

        def test_prints_and_passes(cpar_dview):
            cpar_dview.execute("print('quiet marker')")
    """)
    result = run(pytester, "-rA")
    result.assert_outcomes(passed=1, failed=2)
    out = result.stdout.str()
    result.stdout.fnmatch_lines([
        "*_ test_prints_then_fails _*",
        "*AssertionError: the test fails here*",
        "*- cpar engine output -*",
        "[[]stdout:engine 0[]] execute",
        "out marker 7",
        "*- cpar engine logs -*",
        "--- *engine-0-pytest-*.log",
        "log marker",
        "--- *engine-1-pytest-*.log",
        "log marker",
        "*_ test_keeps_its_result_and_fails _*",
        "*- cpar engine output -*",
        "[[]stdout:engine 1[]] execute",
        "held result marker",
    ])
    for eid in (0, 1):
        assert f"[stderr:engine {eid}] execute\nerr marker" in out
    # a passing test's report has no such section
    assert "quiet marker" not in out
    assert out.count("cpar engine output") == 2


# -- the cpar_on_engines marker --------------------------------------------------------------


def test_marker_runs_the_body_on_every_engine(pytester):
    pytester.makepyfile(test_inner="""
        import math
        import sys

        import pytest

        def square_root(x):  # a helper of the module: travels with the body
            return math.sqrt(x)

        @pytest.fixture(scope="session")
        def shared_dir(tmp_path_factory):
            return tmp_path_factory.mktemp("shared")

        @pytest.mark.cpar_on_engines
        @pytest.mark.parametrize("x", [4.0, 9.0])
        def test_body_runs_on_each_engine(cpar_engine_id, x, shared_dir):
            import os
            assert square_root(x) ** 2 == x
            # by value: the engine never imported this module
            assert "test_inner" not in sys.modules
            (shared_dir / f"{x}-{cpar_engine_id}-{os.getpid()}").write_text("ran")

        def test_it_ran_on_each_engine_in_its_own_process(shared_dir):
            import os
            names = sorted(p.name for p in shared_dir.iterdir())
            pids = {name.split("-")[2] for name in names}
            assert [n.rsplit("-", 1)[0] for n in names] == [
                "4.0-0", "4.0-1", "9.0-0", "9.0-1"]
            assert len(pids) == 2 and str(os.getpid()) not in pids

        @pytest.mark.cpar_on_engines(targets=[1])
        def test_targets(cpar_engine_id):
            assert cpar_engine_id == 1

        @pytest.mark.cpar_on_engines
        class TestAClass:
            factor = 3

            def test_method(self, cpar_engine_id):
                assert self.factor * (cpar_engine_id + 1) in (3, 6)

        @pytest.mark.cpar_on_engines
        def test_fails_on_one_engine(cpar_engine_id):
            print("about to check engine", cpar_engine_id)
            assert cpar_engine_id != 1, "engine one is refused"

        @pytest.mark.cpar_on_engines
        def test_fails_everywhere(cpar_engine_id):
            raise ValueError(f"broken on {cpar_engine_id}")

        @pytest.mark.cpar_on_engines(timeout=1)
        def test_too_slow():
            import time
            time.sleep(60)

        def test_engines_are_free_after_the_timeout(cpar_client):
            status = cpar_client.queue_status()
            assert [status[e]["queue"] for e in cpar_client.ids] == [0, 0]
    """)
    result = run(pytester)
    result.assert_outcomes(passed=6, failed=3)
    result.stdout.fnmatch_lines([
        "*_ test_fails_on_one_engine _*",
        "test_fails_on_one_engine failed on 1 of 2 engines (engine 1)",
        "*_ engine 1 _*",
        "Traceback (most recent call last):",
        '  File "*test_inner.py", line *, in test_fails_on_one_engine',
        '    assert cpar_engine_id != 1, "engine one is refused"',
        "AssertionError: engine one is refused",
        "*- cpar engine output -*",
        "[[]stdout:engine 0[]] test_fails_on_one_engine",
        "about to check engine 0",
        "[[]stdout:engine 1[]] test_fails_on_one_engine",
        "about to check engine 1",
        "*_ test_fails_everywhere _*",
        "test_fails_everywhere failed on 2 of 2 engines (engines 0, 1)",
        "*_ engine 0 _*",
        "*ValueError: broken on 0",
        "*_ engine 1 _*",
        "*ValueError: broken on 1",
        "*_ test_too_slow _*",
        "test_too_slow did not finish within 1 s on engines 0, 1 (aborted there)",
    ])
    out = result.stdout.str()
    assert "in run_body" not in out  # the plugin's own frame is not shown


def test_marker_without_cloudpickle_uses_cpar_serializer(pytester, tmp_path, monkeypatch):
    blocker = tmp_path / "blocker"
    blocker.mkdir()
    (blocker / "cloudpickle.py").write_text("raise ImportError('no cloudpickle here')\n")
    pytester.makepyfile(test_inner="""
        import math

        import pytest

        LIMIT = 10

        def halve(x):
            return x / 2

        @pytest.mark.cpar_on_engines
        def test_body(cpar_engine_id):
            import sys
            # by code, with the globals it names: halve by name, from this module
            assert "test_inner" in sys.modules
            assert halve(math.sqrt(16)) == 2 and cpar_engine_id < LIMIT

        @pytest.mark.cpar_on_engines
        def test_failure(cpar_engine_id):
            assert halve(cpar_engine_id) == 99
    """)
    monkeypatch.setenv("PYTHONPATH", str(blocker))  # here and on the engines
    result = run(pytester)
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines([
        "test_failure failed on 2 of 2 engines (engines 0, 1)",
        "*_ engine 0 _*",
        '  File "*test_inner.py", line *, in test_failure',
        "*assert halve(cpar_engine_id) == 99",
        "AssertionError*",
    ])


def test_marker_misuse_is_named(pytester):
    pytester.makepyfile(test_inner="""
        import threading

        import pytest

        @pytest.fixture
        def lock():
            return threading.Lock()

        @pytest.mark.cpar_on_engines
        def test_unpicklable_argument(lock):
            pass

        @pytest.mark.cpar_on_engines
        def test_handle_argument(cpar_dview):
            pass

        @pytest.mark.cpar_on_engines(targets=[7])
        def test_no_such_engine():
            pass

        @pytest.mark.cpar_on_engines(target=1)
        def test_misspelt_argument():
            pass

        @pytest.mark.cpar_on_engines(timeout=-1)
        def test_bad_timeout():
            pass

        @pytest.mark.cpar_on_engines
        async def test_coroutine():
            pass

        def test_engine_id_without_marker(cpar_engine_id):
            pass
    """)
    result = run(pytester, "-p", "no:asyncio")
    result.assert_outcomes(failed=2, errors=5)
    result.stdout.fnmatch_lines_random([
        "*test_unpicklable_argument: argument 'lock' (lock) cannot be sent to the "
        "engines: TypeError: *",
        "*test_handle_argument: cpar_dview is this process's handle on the cluster and "
        "cannot be an argument of a test marked cpar_on_engines*",
        "*@pytest.mark.cpar_on_engines: no engine [[]7[]]; the engines are [[]0, 1[]]*",
        "*test_misspelt_argument: @pytest.mark.cpar_on_engines: unknown arguments "
        "[[]'target'[]]; it takes targets and timeout*",
        "*test_bad_timeout: @pytest.mark.cpar_on_engines: timeout must be a positive "
        "number of seconds, not -1*",
        "*test_coroutine: @pytest.mark.cpar_on_engines runs plain functions on the "
        "engines, not coroutines*",
        "*the cpar_engine_id fixture is for tests marked cpar_on_engines (their body runs "
        "on the engines); test_engine_id_without_marker is not*",
    ])
