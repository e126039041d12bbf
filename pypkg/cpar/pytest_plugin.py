"""cpar's pytest plugin: a cluster of engines for a test session, clients and views on
it, engine namespaces emptied between tests, failure reports that carry what the engines
printed and logged, and a marker that runs a test's body on every engine.

pytest loads it by itself once cpar is installed (the ``pytest11`` entry point ``cpar``);
``pytest -p no:cpar`` leaves it out. Nothing starts until a test asks for a cluster.

Command-line options (or the same names in the ``[pytest]`` ini section, with
underscores: ``cpar_engines = 4``; the command line wins):

``--cpar-engines N``
    Engines of the session's cluster (default 2).
``--cpar-profile NAME``
    The cpar profile the cluster lives in (default ``default``); its files go under
    ``$CPAR_DIR/profile_NAME`` (logs in ``log/``). The cluster has an id of its own
    (``pytest-<time>-<random>``), so it runs beside the profile's other clusters.
``--cpar-engines-launcher NAME``
    How the engines start: ``local`` (default), ``mpi``, ``ssh``, ``slurm``, ``pbs``,
    ``sge`` or ``batch`` (see :mod:`cpar.cluster.launcher`). A launcher's own options
    (hosts, queue, ...) come from overriding the ``cpar_cluster_options`` fixture.

Fixtures:

``cpar_cluster`` (session)
    A started :class:`cpar.Cluster`, stopped at the end of the session.
``cpar_client``
    A :class:`cpar.Client` of that cluster for one test, with every engine registered
    and each engine's namespace empty; at the test's end its unfinished requests are
    aborted, the namespaces emptied again and the client closed.
``cpar_dview``, ``cpar_lbview``
    A blocking :class:`~cpar.client.view.DirectView` on all engines and a blocking
    :class:`~cpar.client.lbview.LoadBalancedView`, of ``cpar_client``.
``cpar_cluster_options`` (session)
    The keyword arguments ``cpar_cluster`` gives :class:`cpar.Cluster`; override it in a
    ``conftest.py`` to set anything else (``{**cpar_cluster_options, "mpi_args": [...]}``).
``cpar_engine_id``
    In a test marked ``cpar_on_engines``: on each engine, that engine's id.

When a test that used ``cpar_client`` (or a view) fails, its report gets two more
sections: **cpar engine output** (what each request's engines wrote to stdout and
stderr during the test) and **cpar engine logs** (the lines the engines' and the
controller's log files got during the test).

The marker ``@pytest.mark.cpar_on_engines(targets="all", timeout=None)`` runs the test
function's body on every engine (or on ``targets``: an engine id or a list of them)
instead of here: the function travels by value (cloudpickle when installed, else cpar's
serializer), its arguments are the fixture and parameter values made here (so they must
pickle), and the test fails when the body fails on any engine, the message listing each
engine's id and remote traceback. ``timeout`` (seconds) fails it when the engines take
longer; the body is then aborted there. ::

    @pytest.mark.cpar_on_engines
    def test_numpy_is_there(cpar_engine_id):
        import numpy
        assert numpy.ones(3).sum() == 3, f"engine {cpar_engine_id}"
"""

import inspect
import os
import secrets
import time
import warnings

import pytest

MARKER = "cpar_on_engines"
DEFAULT_ENGINES = 2
DEFAULT_PROFILE = "default"
DEFAULT_LAUNCHER = "local"
# The fixtures that are this process's handles on the cluster: no argument of a body that
# runs on an engine.
_HANDLES = ("cpar_cluster", "cpar_client", "cpar_dview", "cpar_lbview")

_SETTINGS = pytest.StashKey()
_STATE = pytest.StashKey()
_ON_ENGINES = pytest.StashKey()


class CparPluginWarning(pytest.PytestWarning):
    """Something the plugin did between tests went wrong without failing a test (e.g.
    the engines' namespaces could not be emptied after it)."""


# -- options -------------------------------------------------------------------------------


def _engine_count(text, where="--cpar-engines"):
    try:
        n = int(text)
    except (TypeError, ValueError):
        n = None
    if n is None or n < 1:
        raise pytest.UsageError(f"{where} must be a positive number of engines, not "
                                f"{text!r}")
    return n


def pytest_addoption(parser):
    """Adds ``--cpar-engines``, ``--cpar-profile``, ``--cpar-engines-launcher`` and
    their ini forms."""
    group = parser.getgroup("cpar", "cpar: a cluster of engines for the tests")
    group.addoption("--cpar-engines", default=None, metavar="N",
                    help=f"engines of the session's cpar cluster (default "
                         f"{DEFAULT_ENGINES}; ini: cpar_engines)")
    group.addoption("--cpar-profile", default=None, metavar="NAME",
                    help=f"cpar profile of the session's cluster (default "
                         f"{DEFAULT_PROFILE!r}; ini: cpar_profile)")
    group.addoption("--cpar-engines-launcher", default=None, metavar="NAME",
                    help="how the cluster's engines start: local, mpi, ssh, slurm, pbs, "
                         f"sge or batch (default {DEFAULT_LAUNCHER!r}; ini: "
                         "cpar_engines_launcher)")
    parser.addini("cpar_engines", f"engines of the session's cpar cluster (default "
                                  f"{DEFAULT_ENGINES})")
    parser.addini("cpar_profile", f"cpar profile of the session's cluster (default "
                                  f"{DEFAULT_PROFILE!r})")
    parser.addini("cpar_engines_launcher", "how the cluster's engines start (default "
                                           f"{DEFAULT_LAUNCHER!r})")


class Settings:
    """The plugin's options, resolved: the command line, else the ini file, else the
    defaults.

    Attributes
    ----------
    engines : int
        Engines of the session's cluster.
    profile : str
        The cpar profile it lives in.
    launcher : str
        The engine launcher's name, as :class:`cpar.Cluster` knows it (``"MPI"`` and
        ``"MPIEngineSetLauncher"`` become ``"mpi"``).

    Raises
    ------
    pytest.UsageError
        Naming the option and the value that is wrong.
    """

    def __init__(self, config):
        def pick(name):
            """(value, where it was given) of option ``name``; (None, None) if unset."""
            value = config.getoption(name)
            if value is not None:
                return value, "--" + name.replace("_", "-")
            value = config.getini(name)
            return (value, f"ini option {name}") if value else (None, None)

        engines, where = pick("cpar_engines")
        self.engines = DEFAULT_ENGINES if engines is None else _engine_count(engines, where)
        profile, where = pick("cpar_profile")
        if profile is not None and (not profile.strip() or os.sep in profile):
            raise pytest.UsageError(f"{where} must be a profile name (no {os.sep!r}), not "
                                    f"{profile!r}")
        self.profile = profile or DEFAULT_PROFILE
        launcher, where = pick("cpar_engines_launcher")
        self.launcher = DEFAULT_LAUNCHER
        if launcher is not None:
            from cpar.cluster.launcher import engine_launchers
            from cpar.cluster.manager import launcher_name

            try:
                self.launcher = launcher_name(launcher, engine_launchers(), "engine")
            except ValueError as e:
                raise pytest.UsageError(f"{where}: {e}") from None


def pytest_configure(config):
    """Checks the options (a usage error names a bad one) and registers the marker."""
    config.stash[_SETTINGS] = Settings(config)
    config.addinivalue_line(
        "markers",
        f"{MARKER}(targets='all', timeout=None): run the test function's body on every "
        "engine of the session's cpar cluster (or on targets: an engine id or a list), "
        "failing with each engine's error; its arguments must pickle.")


# -- the cluster and its clients -----------------------------------------------------------


@pytest.fixture(scope="session")
def cpar_cluster_options(pytestconfig):
    """The keyword arguments of :class:`cpar.Cluster` for ``cpar_cluster``: ``n``,
    ``profile``, ``engines`` (the launcher) from the options, and a ``cluster_id`` of
    this session's own. Override it in a ``conftest.py`` to add launcher options or
    change any of them."""
    settings = pytestconfig.stash[_SETTINGS]
    return {
        "n": settings.engines,
        "profile": settings.profile,
        "engines": settings.launcher,
        "cluster_id": f"pytest-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}",
    }


@pytest.fixture(scope="session")
def cpar_cluster(cpar_cluster_options):
    """A cpar cluster (a controller and ``--cpar-engines`` engines) for the session:
    started when a test first needs it, stopped at the session's end, when the plugin
    also checks that none of its processes is left."""
    import cpar

    try:
        cluster = cpar.Cluster(**cpar_cluster_options)
    except (TypeError, ValueError) as e:
        raise pytest.UsageError(f"cpar_cluster_options {cpar_cluster_options!r}: {e}") \
            from None
    cluster.start_cluster_sync()
    try:
        yield cluster
    finally:
        cluster.stop_cluster_sync()
        left = list(cluster.engines.running if cluster.engines is not None else ())
        if cluster.controller is not None:
            left += list(cluster.controller.running)
        if left:
            raise RuntimeError(f"the session's cpar cluster left processes running after "
                               f"its stop: pids {left}")


class _TestState:
    """What the plugin keeps for one test that used ``cpar_client``: the requests the
    client sent (their output) and where the cluster's logs stood at its start."""

    def __init__(self, cluster, client):
        from cpar.testing.reports import LogMarks, RequestLog

        self.requests = RequestLog(client)
        self.logs = LogMarks(cluster)

    def sections(self):
        """The report sections ``[(title, text)]`` with something in them."""
        out = []
        for title, text in (("cpar engine output", self.requests.text()),
                             ("cpar engine logs", self.logs.text())):
            if text:
                out.append((title, text))
        return out


def _clear_engines(client, timeout):
    """Empties the namespace of every registered engine; raises what went wrong."""
    ids = client.ids
    if ids:
        client.clear(targets=ids, block=False).get(timeout)


def _end_of_test(client, nodeid, timeout):
    """After a test: its unfinished requests aborted, the engines' namespaces emptied.
    Trouble here (an engine the test killed...) is a warning: the test itself is over."""
    if client.closed:
        return
    try:
        if client.outstanding:
            client.abort()
            client.wait(timeout=timeout)
        _clear_engines(client, timeout)
    except Exception as e:  # noqa: BLE001 - reported, the next test's setup checks again
        warnings.warn(CparPluginWarning(f"after {nodeid}: could not empty the engines' "
                                        f"namespaces: {type(e).__name__}: {e}"),
                      stacklevel=1)


@pytest.fixture
def cpar_client(cpar_cluster, request):
    """A :class:`cpar.Client` of the session's cluster for this test: every engine the
    cluster started is registered and each engine's namespace is empty. At the test's
    end its unfinished requests are aborted, the namespaces emptied and the client
    closed. A failing test's report shows what the engines printed and logged."""
    import cpar

    timeout = float(getattr(cpar_cluster, "start_timeout", 60.0))
    client = cpar.Client(cpar_cluster.connection_file)
    try:
        client.wait_for_engines(cpar_cluster.n, timeout=timeout)
        _clear_engines(client, timeout)
        state = _TestState(cpar_cluster, client)
    except BaseException:
        client.close()
        raise
    request.node.stash[_STATE] = state
    try:
        yield client
    finally:
        state.requests.detach()
        _end_of_test(client, request.node.nodeid, timeout)
        client.close()


@pytest.fixture
def cpar_dview(cpar_client):
    """A blocking DirectView on every engine (``cpar_client[:]``, ``block=True``)."""
    view = cpar_client[:]
    view.block = True
    return view


@pytest.fixture
def cpar_lbview(cpar_client):
    """A blocking LoadBalancedView (``cpar_client.load_balanced_view()``,
    ``block=True``)."""
    view = cpar_client.load_balanced_view()
    view.block = True
    return view


@pytest.fixture
def cpar_engine_id(request):
    """On each engine, the id of that engine, in a test marked ``cpar_on_engines``
    (elsewhere an error: the test runs here, on no engine)."""
    if request.node.get_closest_marker(MARKER) is None:
        pytest.fail(f"the cpar_engine_id fixture is for tests marked {MARKER} (their body "
                    f"runs on the engines); {request.node.name} is not", pytrace=False)
    from cpar.testing.remote import EngineId

    return EngineId()


# -- the marker ----------------------------------------------------------------------------


class _MarkerSpec:
    """The arguments of one ``cpar_on_engines`` marker, checked."""

    def __init__(self, marker, item_name):
        kwargs = dict(marker.kwargs)
        args = list(marker.args)
        where = f"{item_name}: @pytest.mark.{MARKER}"
        if len(args) > 1:
            self._fail(f"{where} takes at most one positional argument (targets), "
                       f"not {args!r}")
        if args:
            if "targets" in kwargs:
                self._fail(f"{where}: targets given twice")
            kwargs["targets"] = args[0]
        unknown = sorted(set(kwargs) - {"targets", "timeout"})
        if unknown:
            self._fail(f"{where}: unknown arguments {unknown}; it takes targets and "
                       "timeout")
        self.targets = kwargs.get("targets", "all")
        self.timeout = kwargs.get("timeout")
        t = self.targets
        ok = (t == "all" if isinstance(t, str) else
              _is_int(t) or (isinstance(t, (list, tuple, range)) and len(t) > 0
                             and all(_is_int(x) for x in t)))
        if not ok:
            self._fail(f"{where}: targets must be 'all', an engine id or a non-empty list "
                       f"of engine ids, not {t!r}")
        if self.timeout is not None and not (
                isinstance(self.timeout, (int, float)) and not isinstance(self.timeout, bool)
                and self.timeout > 0):
            self._fail(f"{where}: timeout must be a positive number of seconds, not "
                       f"{self.timeout!r}")

    @staticmethod
    def _fail(message):
        pytest.fail(message, pytrace=False)

    def engine_ids(self, client):
        """The engine ids the body runs on; fails naming an id that is not registered."""
        ids = client.ids
        if isinstance(self.targets, str):
            return list(ids)
        wanted = [self.targets] if _is_int(self.targets) else list(self.targets)
        missing = [t for t in wanted if t not in ids]
        if missing:
            self._fail(f"@pytest.mark.{MARKER}: no engine {missing}; the engines are {ids}")
        return wanted


def _is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


@pytest.fixture(autouse=True)
def _cpar_on_engines(request):
    """For a test marked ``cpar_on_engines``: checks the marker and the test, and gets
    the client the body is sent with (autouse: tests without the marker get nothing)."""
    marker = request.node.get_closest_marker(MARKER)
    if marker is None:
        return
    spec = _MarkerSpec(marker, request.node.name)
    func = getattr(request.node, "obj", None)
    if inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func):
        pytest.fail(f"{request.node.name}: @pytest.mark.{MARKER} runs plain functions on "
                    "the engines, not coroutines", pytrace=False)
    used = [name for name in _HANDLES if name in request.node._fixtureinfo.argnames]
    if used:
        pytest.fail(f"{request.node.name}: {used[0]} is this process's handle on the "
                    f"cluster and cannot be an argument of a test marked {MARKER} (its "
                    "body runs on the engines)", pytrace=False)
    client = request.getfixturevalue("cpar_client")
    request.node.stash[_ON_ENGINES] = (client, spec)


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem):
    """Runs the body of a test marked ``cpar_on_engines`` on the engines instead of
    here."""
    entry = pyfuncitem.stash.get(_ON_ENGINES, None)
    if entry is None:
        return None
    client, spec = entry
    kwargs = {name: pyfuncitem.funcargs[name] for name in pyfuncitem._fixtureinfo.argnames}
    _run_on_engines(pyfuncitem, client, spec, kwargs)
    return True


def _run_on_engines(item, client, spec, kwargs):
    """Runs ``item``'s function with ``kwargs`` on the marker's engines; fails the test
    with every engine's error."""
    from cpar import error
    from cpar.testing import remote

    try:
        how, payload = remote.pack_body(item.obj, kwargs)
    except error.SerializationError as e:
        pytest.fail(f"{item.name}: {e}", pytrace=False)
    targets = spec.engine_ids(client)
    view = client.direct_view(list(targets))
    paths = remote.import_paths(item.config.rootpath)
    ar = view.apply_async(remote.run_body, how, payload, paths)
    state = item.stash.get(_STATE, None)
    if state is not None:
        state.requests.rename(ar, item.name)
    try:
        if not ar.wait(spec.timeout):
            late = [md["engine_id"] for md in _per_engine(ar) if md["status"] is None]
            pytest.fail(f"{item.name} did not finish within {spec.timeout:g} s on engine"
                        f"{'s' if len(late) > 1 else ''} {', '.join(map(str, late))} "
                        "(aborted there)", pytrace=False)
    finally:
        if not ar.done():
            ar.abort()
    try:
        ar.get(0)
        return
    except error.CompositeError as e:
        failures = [(getattr(x, "engine_id", None), x) for x in e.elist]
    except Exception as e:  # noqa: BLE001 - one engine's error, whatever it is
        failures = [(getattr(e, "engine_id", None), e)]
    if failures:
        pytest.fail(remote.failure_text(item.name, failures, targets), pytrace=False)


def _per_engine(ar):
    """The metadata of each engine's answer, as a list."""
    md = ar.metadata
    return md if isinstance(md, list) else [md]


# -- reports -------------------------------------------------------------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Adds the engines' output and log lines to the report of a failing test that used
    ``cpar_client``."""
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    state = item.stash.get(_STATE, None)
    if state is None:
        return
    try:
        sections = state.sections()
    except Exception as e:  # noqa: BLE001 - the report is made all the same
        sections = [("cpar engine output", f"(could not be collected: {e!r})")]
    report.sections.extend(sections)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """Forgets what was kept for a test's report once it is reported."""
    yield
    # the test is reported: what was kept for its report goes
    for key in (_STATE, _ON_ENGINES):
        if key in item.stash:
            del item.stash[key]
