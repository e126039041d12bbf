"""Clusters from the command line and from Python: start, find, stop, nothing left behind."""

import json
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

import cpar
from cpar import paths
from cpar.cluster.launcher import pid_alive
from launchkit import wait_gone


def cpar_cli(*args, timeout=120, env=None):
    return subprocess.run(
        [sys.executable, "-m", "cpar", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def cluster_pids(profile="default", cluster_id=""):
    info = paths.read_json(paths.cluster_file(profile, cluster_id))
    return info["controller"]["pids"], info["engines"]["pids"]


def test_cli_start_daemonize_client_stop():
    r = cpar_cli("cluster", "start", "-n", "2", "--daemonize", "--cluster-id", "cli")
    assert r.returncode == 0, r.stderr
    ctrl, engines = cluster_pids(cluster_id="cli")
    try:
        assert len(engines) == 2
        assert all(pid_alive(p) for p in ctrl + engines)
        cf = paths.connection_file(cluster_id="cli")
        assert stat.S_IMODE(os.stat(cf).st_mode) == 0o600
        # The check: a fresh process finds the cluster and gets two engine pids.
        code = "import cpar, os; rc = cpar.Client(cluster_id='cli'); print(rc[:].apply_sync(os.getpid))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             timeout=60)
        assert out.returncode == 0, out.stderr
        assert sorted(json.loads(out.stdout)) == sorted(engines)

        listing = cpar_cli("cluster", "list")
        assert listing.returncode == 0
        assert any("cli" in line and "running" in line for line in listing.stdout.splitlines())

        again = cpar_cli("cluster", "start", "-n", "1", "--daemonize", "--cluster-id", "cli")
        assert again.returncode != 0
        assert "already running" in again.stderr
        assert all(pid_alive(p) for p in ctrl + engines), "a second start clobbered the first"
    finally:
        r = cpar_cli("cluster", "stop", "--cluster-id", "cli")
    assert r.returncode == 0, r.stderr
    assert wait_gone(ctrl + engines) == []
    assert not os.path.exists(paths.cluster_file(cluster_id="cli"))
    assert not os.path.exists(paths.connection_file(cluster_id="cli"))


def test_default_client_finds_default_cluster():
    r = cpar_cli("cluster", "start", "-n", "1", "--daemonize")
    assert r.returncode == 0, r.stderr
    ctrl, engines = cluster_pids()
    try:
        with cpar.Client() as rc:
            assert rc.ids == [0]
            assert rc[0].apply_sync(os.getpid) == engines[0]
    finally:
        cpar_cli("cluster", "stop")
    assert wait_gone(ctrl + engines) == []


def test_stop_of_unknown_cluster_says_so():
    r = cpar_cli("cluster", "stop", "--cluster-id", "nosuch")
    assert r.returncode == 1
    assert "no cluster nosuch" in r.stderr


def test_context_manager_starts_and_stops():
    with cpar.Cluster(n=2, cluster_id="ctx") as rc:
        assert rc.ids == [0, 1]
        pids = rc[:].apply_sync(os.getpid)
        ctrl, engines = cluster_pids(cluster_id="ctx")
        assert sorted(pids) == sorted(engines)
    assert wait_gone(ctrl + engines) == []


def test_stop_controller_ends_the_controller_and_its_engines():
    c = cpar.Cluster(n=2, cluster_id="stopctl")
    try:
        rc = c.start_and_connect_sync()
        ctrl, engines = cluster_pids(cluster_id="stopctl")
        assert sorted(rc[:].apply_sync(os.getpid)) == sorted(engines)
        c.stop_controller_sync()
        # The controller tells its engines to stop before it exits: all end, none lingers
        # until its heartbeat timeout.
        assert wait_gone(ctrl + engines, timeout=10) == []
        c.stop_controller_sync()  # again: nothing left to do, no error
    finally:
        c.stop_cluster_sync()


def test_cluster_stopped_when_starting_process_exits():
    script = textwrap.dedent(
        """
        import cpar, json, sys
        c = cpar.Cluster(n=1, cluster_id=sys.argv[1])
        c.start_cluster_sync()
        print(json.dumps([c.controller.pids, c.engines.pids]), flush=True)
        if sys.argv[2] == "kill":
            import os, signal
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    for how in ("exit", "kill"):
        out = subprocess.run([sys.executable, "-c", script, f"exit-{how}", how],
                             capture_output=True, text=True, timeout=120)
        ctrl, engines = json.loads(out.stdout.splitlines()[0])
        assert wait_gone(ctrl + engines) == [], f"processes left after the parent's {how}"


def test_engine_failing_to_start_gives_its_log(tmp_path, monkeypatch):
    fake = tmp_path / "broken-engine"
    fake.write_text("#!/bin/sh\necho 'cannot start: broken on purpose' >&2\nexit 3\n")
    fake.chmod(0o755)
    monkeypatch.setenv("CPAR_ENGINE", str(fake))
    c = cpar.Cluster(n=1, cluster_id="broken", start_timeout=30)
    with pytest.raises(cpar.ClusterError) as info:
        c.start_cluster_sync()
    assert "broken on purpose" in str(info.value)
    assert "status 3" in str(info.value)
    assert not c.controller.running


def test_bad_cluster_arguments():
    with pytest.raises(ValueError, match="n must be"):
        cpar.Cluster(n=-1)
    with pytest.raises(ValueError, match="unknown engine launcher"):
        cpar.Cluster(n=1, engines="nosuch")


def test_sigterm_to_foreground_start_stops_cluster():
    p = subprocess.Popen(
        [sys.executable, "-u", "-m", "cpar", "cluster", "start", "-n", "1", "--cluster-id", "fg"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = p.stdout.readline()
        assert "running" in line, line + p.stderr.read()
        ctrl, engines = cluster_pids(cluster_id="fg")
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
    assert wait_gone(ctrl + engines) == []


def test_async_cluster_methods_start_more_engines_that_take_tasks(tmp_path):
    """ipyparallel's Cluster API is asyncio: ``await cluster.start_engines(n)`` adds
    engines to a running cluster, and load-balanced work reaches them at once."""
    import asyncio

    import cpar

    def sleepy_pid(t):
        import os
        import time

        time.sleep(t)
        return os.getpid()

    async def main():
        cluster = cpar.Cluster(n=1, cluster_id="asyncadd")
        async with cluster as rc:
            assert rc.ids == [0]
            await cluster.start_engines(2)
            rc.wait_for_engines(3, timeout=30)
            lview = rc.load_balanced_view()
            # Tasks long enough that one engine cannot take them all.
            pids = lview.map_sync(sleepy_pid, [0.3] * 6)
            return set(pids), set(cluster.engines.pids)

    used, engine_pids = asyncio.run(main())
    assert len(used) == 3 and used <= engine_pids

