"""Reaching a cluster: the client's ssh tunnels (a real sshd of our own), the Cluster
API's client, engine and file methods, and cpar.util."""

import json
import os
import subprocess
import time

import numpy as np
import pytest

import cpar
from cpar import error
from cpar.client.tunnel import SSHTunnelError, parse_server, split_tcp_url
from launchkit import wait_gone

N = 4


@pytest.fixture
def ssh_env(sshd, monkeypatch):
    """$CPAR_SSH_ARGS for our throwaway sshd (its host key is unknown to this user)."""
    monkeypatch.setenv("CPAR_SSH_ARGS", "-o StrictHostKeyChecking=no "
                       "-o UserKnownHostsFile=/dev/null")
    return {"server": f"localhost:{sshd['port']}", "key": str(sshd["dir"] / "client_key"),
            **sshd}


# -- ssh tunnels -------------------------------------------------------------------------
def test_client_through_an_ssh_tunnel(cluster, ssh_env):
    rc = cpar.Client(cluster.connection_file, sshserver=ssh_env["server"],
                     sshkey=ssh_env["key"])
    try:
        tunnel = rc._tunnel
        assert tunnel.alive
        assert rc.url == json.load(open(cluster.connection_file))["client_url"]
        assert rc._dispatcher.conn.url == f"tcp://127.0.0.1:{tunnel.local_port}"
        rc.wait_for_engines(N, timeout=30)
        dv = rc[:]
        assert dv.apply_sync(lambda x: x * 2, 21) == [42] * N
        big = np.arange(2_000_000, dtype=np.float64)  # 16 MB each way
        dv.push({"big": big}, block=True)
        back = dv.pull("big", block=True)
        assert all(np.array_equal(b, big) for b in back)
        conn = rc._dispatcher.conn  # same machine here, but another host by definition
        assert conn.shm == 0 and conn.shm_sent == 0 and conn.shm_received == 0
        proc = tunnel.proc
    finally:
        rc.close()
    assert proc.poll() is not None, "the ssh tunnel outlived rc.close()"
    assert wait_gone([proc.pid]) == []


def test_connection_file_ssh_field_tunnels(cluster, ssh_env, tmp_path):
    info = json.load(open(cluster.connection_file))
    info["ssh"] = ssh_env["server"]
    cf = tmp_path / "with-ssh.json"
    cf.write_text(json.dumps(info))
    with cpar.Client(str(cf), sshkey=ssh_env["key"]) as rc:
        assert rc._tunnel is not None and rc._tunnel.alive
        rc.wait_for_engines(N, timeout=30)
        assert rc[0].apply_sync(os.getpid) > 0
        proc = rc._tunnel.proc
    assert proc.poll() is not None


def test_unknown_ssh_host_fails_at_once(cluster, ssh_env):
    t0 = time.monotonic()
    with pytest.raises(SSHTunnelError, match="no-such-host.invalid") as ei:
        cpar.Client(cluster.connection_file, sshserver="no-such-host.invalid",
                    sshkey=ssh_env["key"], timeout=60)
    assert isinstance(ei.value, error.ControllerUnreachable)
    assert "resolve" in str(ei.value)
    assert time.monotonic() - t0 < 60  # ssh's own error, not the client's timeout


def test_refused_key_is_reported(cluster, ssh_env, tmp_path):
    other = tmp_path / "other_key"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(other)],
                   check=True, timeout=30)
    with pytest.raises(SSHTunnelError, match="Permission denied"):
        cpar.Client(cluster.connection_file, sshserver=ssh_env["server"],
                    sshkey=str(other), timeout=60)


def test_refused_password_is_reported(cluster, ssh_env):
    # our sshd takes keys only: the password is offered (through SSH_ASKPASS) and refused
    with pytest.raises(SSHTunnelError, match="Permission denied"):
        cpar.Client(cluster.connection_file, sshserver=ssh_env["server"],
                    password="not-the-password", timeout=60)


def test_nothing_listening_behind_the_tunnel(cluster, ssh_env, tmp_path):
    from launchkit import free_port

    info = json.load(open(cluster.connection_file))
    info["client_url"] = f"tcp://127.0.0.1:{free_port()}"
    info.pop("controller_pid", None)
    cf = tmp_path / "dead.json"
    cf.write_text(json.dumps(info))
    with pytest.raises(error.ControllerUnreachable, match="could not connect"):
        cpar.Client(str(cf), sshserver=ssh_env["server"], sshkey=ssh_env["key"], timeout=60)


def test_bad_ssh_arguments(cluster, tmp_path):
    for bad in ("user@", "@host", "host:0", "host:99999", "host:port", "-oProxy=x"):
        with pytest.raises(ValueError, match="sshserver"):
            cpar.Client(cluster.connection_file, sshserver=bad)
    with pytest.raises(ValueError, match="paramiko"):
        cpar.Client(cluster.connection_file, sshserver="localhost", paramiko=True)
    with pytest.raises(FileNotFoundError, match="sshkey"):
        cpar.Client(cluster.connection_file, sshserver="localhost",
                    sshkey=str(tmp_path / "missing"))
    assert parse_server("me@login.example.org:2222") == ("me@login.example.org", 2222)
    assert parse_server("login") == ("login", None)
    assert parse_server("u@[::1]:22") == ("u@::1", 22)
    assert split_tcp_url("tcp://*:5555") == ("127.0.0.1", 5555)
    assert split_tcp_url("ipc:///run/x/client") == ("/run/x/client", None)
    with pytest.raises(ValueError, match="tunnelled"):
        split_tcp_url("inproc://x")


# -- Cluster API ---------------------------------------------------------------------------
def _wait(cond, what, timeout=30):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout} s: {what}")
        time.sleep(0.02)


@cpar.interactive
def _sleeper(path):
    import pathlib
    import time

    pathlib.Path(path).touch()
    time.sleep(60)


def test_cluster_engine_sets_signal_stop_restart(tmp_path):
    import asyncio
    import signal

    c = cpar.Cluster(n=1, cluster_id="reach-sets", engines="Local", controller="LOCAL")
    assert (c.engine_launcher, c.controller_launcher) == ("local", "local")

    async def start():
        await c.start_cluster()
        await c.start_engines(1, engine_set_id="second")
        return await c.connect_client()

    rc = asyncio.run(start())
    try:
        rc.wait_for_engines(2, timeout=30)
        first, second = list(c.engines)
        assert second == "second" and first != second
        assert cpar.Cluster.from_file(c.cluster_file).engines.set_ids == [first, "second"]
        pid2 = c.engines["second"].pids[0]
        eid2 = next(i for i, e in rc.engine_info.items() if int(e.get("pid", 0)) == pid2)
        marker = tmp_path / "started"
        ar = rc[eid2].apply_async(_sleeper, str(marker))
        _wait(lambda: marker.exists() or ar.ready(), "the task started")
        assert not ar.ready(), ar.get()
        asyncio.run(c.signal_engines(signal.SIGINT, "second"))
        with pytest.raises(cpar.RemoteError, match="KeyboardInterrupt"):
            ar.get(timeout=30)
        with pytest.raises(KeyError, match="no engine set 'nope'"):
            c.signal_engines_sync(signal.SIGINT, "nope")

        old = set(rc.ids)
        asyncio.run(c.restart_engines("second"))
        assert list(c.engines) == [first, "second"]
        assert c.engines["second"].pids[0] != pid2
        assert wait_gone([pid2]) == []
        _wait(lambda: len(rc.ids) == 2 and set(rc.ids) != old, "the restarted engine")
        assert rc[:].apply_sync(lambda: 7) == [7, 7]

        pid1 = c.engines[first].pids[0]
        asyncio.run(c.stop_engines(first))
        assert list(c.engines) == ["second"] and wait_gone([pid1]) == []
        assert json.load(open(c.cluster_file))["engines"]["set_ids"] == ["second"]
        _wait(lambda: len(rc.ids) == 1, "the stopped engine leaves")
        rc.close()
        assert c.connect_client_sync() is not rc  # a closed client is replaced
    finally:
        c.stop_cluster_sync()
    assert not c.controller.running and not c.engines.running


def test_cluster_manager_and_from_file():
    c = cpar.Cluster(n=1, cluster_id="reach-mgr", profile="reachprof")
    c.start_cluster_sync()
    try:
        mgr = cpar.ClusterManager()
        clusters = mgr.load_clusters(profile="reachprof")
        assert list(clusters) == ["reachprof:reach-mgr"] == mgr.list_clusters()
        found = mgr.get_cluster("reachprof:reach-mgr")
        assert found.n == 1 and found.engine_launcher == "local"
        with found.connect_client_sync() as rc:
            rc.wait_for_engines(1, timeout=30)
            assert rc[:].apply_sync(lambda: 3) == [3]
        assert "reachprof:reach-mgr" in mgr.load_clusters()  # all profiles
        with pytest.raises(KeyError, match="reachprof:reach-mgr"):
            mgr.get_cluster("reach-mgr")
        key, new = mgr.new_cluster(profile="reachprof", cluster_id="other", n=0)
        assert key == "reachprof:other" and new.controller is None
        with pytest.raises(KeyError, match="already exists"):
            mgr.new_cluster(profile="reachprof", cluster_id="other")
        mgr.remove_cluster(key)
        # from_file by path, by profile and id, and the older positional form
        by_path = cpar.Cluster.from_file(c.cluster_file)
        by_name = cpar.Cluster.from_file(profile="reachprof", cluster_id="reach-mgr")
        legacy = cpar.Cluster.from_file("reachprof", cluster_id="reach-mgr")
        for other in (by_path, by_name, legacy):
            assert (other.profile, other.cluster_id) == ("reachprof", "reach-mgr")
        by_name.stop_cluster_sync()  # stops the running cluster it describes
        assert wait_gone(c.engines.pids + c.controller.pids) == []
        assert "reachprof:reach-mgr" not in mgr.load_clusters(profile="reachprof")
    finally:
        c.stop_cluster_sync()
    with pytest.raises(FileNotFoundError, match="no cluster file"):
        cpar.Cluster.from_file(profile="reachprof", cluster_id="reach-mgr")


def test_launcher_names_as_users_write_them():
    from cpar.cluster.launcher import controller_launchers, engine_launchers
    from cpar.cluster.manager import launcher_name

    engines = engine_launchers()
    for name, key in [("MPI", "mpi"), ("mpiexec", "mpi"), ("MPIEngineSetLauncher", "mpi"),
                      ("ipyparallel.cluster.launcher.SlurmEngineSetLauncher", "slurm"),
                      ("Local", "local"), ("SSH", "ssh"), ("sshproxy", "ssh")]:
        assert launcher_name(name, engines) == key
    assert launcher_name("SlurmControllerLauncher", controller_launchers(),
                         "controller") == "slurm"
    assert launcher_name(engines["sge"], engines) == "sge"
    with pytest.raises(ValueError, match="unknown engine launcher 'condor'; available"):
        cpar.Cluster(engines="condor")
    with pytest.raises(ValueError, match="controller launcher must be a name"):
        cpar.Cluster(controller=3)
    with pytest.raises(ValueError, match="profile directory"):
        cpar.ClusterManager().load_clusters(profile_dir="/nonexistent/profile_x")


# -- cpar.util ------------------------------------------------------------------------------
def test_util_helpers():
    import datetime as dt
    import socket

    from cpar import util

    assert util.interactive is cpar.interactive
    now = util.utcnow()
    assert now.tzinfo is util.utc
    naive = dt.datetime.now()
    assert util.ensure_timezone(naive).tzinfo is not None
    assert util.ensure_timezone(now) is now
    assert abs(util.compare_datetimes(naive, now).total_seconds()) < 60
    with pytest.raises(TypeError, match="datetime"):
        util.ensure_timezone("2020-01-01")
    got = util.extract_dates({"a": ["2024-03-01T12:00:00.5Z", "x"],
                              "b": "2024-03-01T12:00:00+0100", "c": 3})
    assert got["a"][0] == dt.datetime(2024, 3, 1, 12, 0, 0, 500000, tzinfo=util.utc)
    assert got["a"][1] == "x" and got["c"] == 3
    assert got["b"].utcoffset() == dt.timedelta(hours=1)

    assert util.disambiguate_url("tcp://*:5555") == "tcp://127.0.0.1:5555"
    assert util.disambiguate_url("tcp://0.0.0.0:5555", socket.gethostname()) == \
        "tcp://127.0.0.1:5555"
    assert util.disambiguate_url("tcp://0.0.0.0:5555", "10.1.2.3") == "tcp://10.1.2.3:5555"
    assert util.disambiguate_url("tcp://10.0.0.1:5555", "x") == "tcp://10.0.0.1:5555"
    assert util.disambiguate_url("ipc:///tmp/s") == "ipc:///tmp/s"
    assert util.split_url("tcp://host:12") == ("tcp", "host", "12")
    assert util.is_url("tcp://h:1") and not util.is_url("http://h") and not util.is_url("h")
    assert util.validate_url("tcp://login-1.example.org:10101")
    assert util.validate_url_container({"a": ["tcp://*:1", "ipc:///x"]})
    for bad, why in [("tcp://h", "lacks a host or a port"), ("tcp://h:x", "invalid port"),
                     ("http://h:1", "invalid transport"), ("tcp://b@d:1", "invalid host")]:
        with pytest.raises(util.InvalidURL, match=why):
            util.validate_url(bad)
    with pytest.raises(AssertionError):  # what ipyparallel raised
        util.validate_url("tcp://h")
    ports = util.select_random_ports(3)
    assert len(set(ports)) == 3 and all(0 < p < 65536 for p in ports)
    assert util.is_ip("10.0.0.1") and util.is_ip("::1") and not util.is_ip("host")
