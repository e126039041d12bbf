"""CurveZMQ encryption of every connection: a cluster with --curve works end to end; a
client or engine with wrong or missing keys is refused at the handshake and says why; only
the public keys on the controller's allow-list get in (a random key pair that knows the
server key does not); binding beyond loopback needs --curve or an explicit --insecure."""

import os
import stat
import subprocess
import sys
import time

import pytest
import zmq
from zmq.utils.monitor import recv_monitor_message

import cpar
from cpar import _core, error, paths
from cpar.cluster.launcher import engine_argv


EXTRA = _core.curve_keypair()  # a second client key pair, allowed with --curve-allow


@pytest.fixture(scope="module")
def curve_cluster():
    c = cpar.Cluster(n=2, cluster_id="curve",
                     controller_args=["--curve", "--curve-allow", EXTRA[0]])
    rc = c.start_and_connect_sync()
    try:
        yield c, rc
    finally:
        c.stop_cluster_sync()


def test_encrypted_cluster_runs_direct_and_load_balanced_work(curve_cluster):
    c, rc = curve_cluster
    info = paths.read_json(c.connection_file)
    for k in ("curve_serverkey", "curve_publickey", "curve_secretkey"):
        assert len(info[k]) == 40
    assert info["curve_serverkey"] != info["curve_publickey"]
    assert stat.S_IMODE(os.stat(c.connection_file).st_mode) == 0o600
    assert sorted(rc[:].apply_sync(os.getpid)) == sorted(c.engines.pids)
    assert rc.load_balanced_view().map_sync(abs, range(-50, 0)) == list(range(50, 0, -1))
    import numpy as np

    a = np.arange(1_000_000, dtype=np.float64)  # out of band (the socket path)
    rc[0].push({"a": a}, block=True)
    assert rc[0].apply_sync(lambda: float(a.sum())) == float(a.sum())


def _bad_file(tmp_path, info, **changes):
    bad = {k: v for k, v in info.items() if v is not None}
    for k, v in changes.items():
        if v is None:
            bad.pop(k, None)
        else:
            bad[k] = v
    p = tmp_path / "bad-connection.json"
    paths.write_private_json(str(p), bad)
    return str(p)


@pytest.mark.timeout(120)
def test_client_with_wrong_or_missing_keys_is_refused_and_told_why(curve_cluster, tmp_path):
    c, _ = curve_cluster
    info = paths.read_json(c.connection_file)
    wrong = _bad_file(tmp_path, info, curve_serverkey=_core.curve_keypair()[0])
    # The failed handshake is reported, not waited out: with an hour to wait, only the
    # report can end this within the test's timeout.
    with pytest.raises(error.WrongKey, match="CURVE keys in .* do not match"):
        cpar.Client(wrong, timeout=3600)
    none = _bad_file(tmp_path, info, curve_serverkey=None, curve_publickey=None,
                     curve_secretkey=None)
    with pytest.raises(error.WrongKey, match="has no CURVE keys"):
        cpar.Client(none, timeout=10)
    partial = _bad_file(tmp_path, info, curve_secretkey=None)
    with pytest.raises(ValueError, match="lacks curve_secretkey"):
        cpar.Client(partial, timeout=10)
    malformed = _bad_file(tmp_path, info, curve_publickey="too short")
    with pytest.raises(ValueError, match="40 Z85 characters"):
        cpar.Client(malformed, timeout=10)


def test_engine_with_wrong_keys_exits_saying_why(curve_cluster, tmp_path):
    c, rc = curve_cluster
    info = paths.read_json(c.connection_file)
    wrong = _bad_file(tmp_path, info, curve_serverkey=_core.curve_keypair()[0])
    log = tmp_path / "engine.log"
    out = subprocess.run(engine_argv(wrong, str(log)), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "CURVE handshake with the controller" in log.read_text()
    assert "do not match the controller's" in log.read_text()
    assert len(rc.ids) == 2  # nothing registered


def _controller(args, tmp_path):
    env = dict(os.environ)
    return subprocess.Popen([sys.executable, "-m", "cpar.cli", "controller",
                             "--cluster-id", "netbind", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def test_non_loopback_bind_needs_curve_or_insecure(tmp_path):
    p = _controller(["--ip", "0.0.0.0"], tmp_path)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2
    assert "without encryption" in err and "--curve" in err and "--insecure" in err
    p = _controller(["--ip", "0.0.0.0", "--curve", "--location", "127.0.0.1"], tmp_path)
    try:
        cf = paths.connection_file("default", "netbind")
        deadline = time.monotonic() + 30
        while not os.path.exists(cf):
            assert p.poll() is None, p.stderr.read()
            assert time.monotonic() < deadline
            time.sleep(0.05)
        info = paths.read_json(cf)
        assert info["client_url"].startswith("tcp://127.0.0.1:")
        with cpar.Client(cf, timeout=10) as rc:
            assert rc.ids == []
            rc.shutdown(hub=True)
        assert p.wait(30) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def _controller_log(c):
    return open(c._log("controller")).read()


def test_random_key_pair_is_refused_and_logged_once(curve_cluster, tmp_path):
    """A peer that knows the server's public key but holds a key pair of its own making
    fails the handshake (the ZAP allow-list), and the controller logs its key once."""
    c, rc = curve_cluster
    info = paths.read_json(c.connection_file)
    pub, sec = _core.curve_keypair()
    stranger = _bad_file(tmp_path, info, curve_publickey=pub, curve_secretkey=sec)
    for _ in range(2):
        with pytest.raises(error.WrongKey, match="CURVE"):
            cpar.Client(stranger, timeout=10)
    # A raw socket with that key pair: the handshake fails with an authentication error,
    # and a signed request sent meanwhile is never answered.
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.linger = 0
    s.curve_serverkey = info["curve_serverkey"].encode()
    s.curve_publickey, s.curve_secretkey = pub.encode(), sec.encode()
    mon = s.get_monitor_socket(zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_SUCCEEDED)
    mon.linger = 0
    try:
        s.connect(info["client_url"])
        s.send(b"x" * 112)
        assert mon.poll(30000)
        event = recv_monitor_message(mon)
        assert event["event"] == zmq.EVENT_HANDSHAKE_FAILED_AUTH
        assert event["value"] == 400
        assert not s.poll(0)
    finally:
        s.disable_monitor()
        mon.close()
        s.close()
        ctx.term()
    log = _controller_log(c)
    assert log.count(f"public key {pub}: not allowed") == 1, log
    # The cluster's own keys still work.
    assert len(rc[:].apply_sync(os.getpid)) == 2


def test_extra_allowed_key_is_accepted(curve_cluster, tmp_path):
    c, rc = curve_cluster
    info = paths.read_json(c.connection_file)
    other = _bad_file(tmp_path, info, curve_publickey=EXTRA[0], curve_secretkey=EXTRA[1])
    with cpar.Client(other, timeout=10) as rc2:
        assert sorted(rc2.ids) == sorted(rc.ids)
        assert rc2[:].apply_sync(lambda: 6 * 7) == [42, 42]
    assert f"public key {EXTRA[0]}" not in _controller_log(c)


def test_engine_with_unlisted_key_pair_exits_saying_why(curve_cluster, tmp_path):
    c, rc = curve_cluster
    info = paths.read_json(c.connection_file)
    pub, sec = _core.curve_keypair()
    stranger = _bad_file(tmp_path, info, curve_publickey=pub, curve_secretkey=sec)
    log = tmp_path / "engine.log"
    out = subprocess.run(engine_argv(stranger, str(log)), capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 2
    assert "CURVE handshake with the controller" in log.read_text()
    assert len(rc.ids) == 2  # nothing registered
    assert f"public key {pub}: not allowed" in _controller_log(c)


def test_curve_allow_needs_curve(tmp_path):
    p = _controller(["--curve-allow", EXTRA[0]], tmp_path)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "--curve-allow needs --curve" in err


def test_curve_allow_takes_a_key_that_begins_with_a_dash(tmp_path):
    """Z85 keys use '-' among their 85 characters; one at the front is still a key, not
    an option (a random key began with '-' in one CI run in 85)."""
    key = "-" + EXTRA[0][1:]
    p = _controller(["--curve-allow", key], tmp_path)
    _, err = p.communicate(timeout=60)
    assert p.returncode == 2 and "--curve-allow needs --curve" in err
    assert "expected one argument" not in err
