"""Fixtures: a private $CPAR_DIR, a real 4-engine cluster for the session, clients."""

import os
import shutil
import tempfile

import pytest

# Every test run keeps its state away from the user's ~/.cpar.
_CPAR_DIR = tempfile.mkdtemp(prefix="cpar-test-")
os.environ["CPAR_DIR"] = _CPAR_DIR

N_ENGINES = 4

from launchkit import sge, slurm  # noqa: E402,F401 - single-host SGE and Slurm fixtures


@pytest.fixture(scope="session")
def cluster():
    import cpar

    c = cpar.Cluster(n=N_ENGINES, cluster_id="pytest")
    c.start_cluster_sync()
    yield c
    c.stop_cluster_sync()
    assert not c.engines.running, "engines left running after stop"
    assert not c.controller.running, "controller left running after stop"


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


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CPAR_DIR, ignore_errors=True)
