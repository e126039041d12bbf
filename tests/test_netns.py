"""Several hosts on one machine: network namespaces made by the test (a bridge in the
controller's namespace, veth pairs to two engine namespaces and to this process's), the
controller bound to its bridge address with CurveZMQ on, engines started inside the other
namespaces, and this process as the client over TCP. A wrong key is refused; an engine
host that loses its link is declared dead and its tasks retry elsewhere or fail."""

import os
import shutil
import subprocess
import sys
import time

import pytest

import cpar
from cpar import _core, error, paths
from cpar.cluster.launcher import engine_argv

TAG = f"{os.getpid() % 100000}"
NS = {"ctl": f"cpc{TAG}", "h1": f"cp1{TAG}", "h2": f"cp2{TAG}"}
SUBNET = "10.77.{}".format(os.getpid() % 200 + 20)
ADDR = {"ctl": f"{SUBNET}.1", "h1": f"{SUBNET}.2", "h2": f"{SUBNET}.3", "me": f"{SUBNET}.254"}


def _ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def _netns_usable():
    if os.geteuid() != 0 or shutil.which("ip") is None:
        return "needs root and iproute2 (ip netns)"
    probe = f"cpp{TAG}"
    r = _ip("netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"this machine forbids network namespaces: {r.stderr.strip()}"
    _ip("netns", "del", probe, check=False)
    return None


_WHY = _netns_usable()
pytestmark = pytest.mark.skipif(_WHY is not None, reason=_WHY or "")


def _setup():
    ctl = NS["ctl"]
    for ns in NS.values():
        _ip("netns", "add", ns)
        _ip("-n", ns, "link", "set", "lo", "up")
    _ip("-n", ctl, "link", "add", "br0", "type", "bridge")
    _ip("-n", ctl, "addr", "add", f"{ADDR['ctl']}/24", "dev", "br0")
    _ip("-n", ctl, "link", "set", "br0", "up")
    for host in ("h1", "h2", "me"):
        outer, inner = f"vb{host}{TAG}", f"vh{host}{TAG}"
        _ip("link", "add", outer, "type", "veth", "peer", "name", inner)
        _ip("link", "set", outer, "netns", ctl)
        _ip("-n", ctl, "link", "set", outer, "master", "br0", "up")
        if host == "me":  # this process's namespace joins the network too
            _ip("addr", "add", f"{ADDR['me']}/24", "dev", inner)
            _ip("link", "set", inner, "up")
        else:
            _ip("link", "set", inner, "netns", NS[host])
            _ip("-n", NS[host], "addr", "add", f"{ADDR[host]}/24", "dev", inner)
            _ip("-n", NS[host], "link", "set", inner, "up")


def _teardown():
    _ip("link", "del", f"vhme{TAG}", check=False)
    for ns in NS.values():
        _ip("netns", "del", ns, check=False)


class Net:
    def __init__(self, tmp):
        self.tmp = tmp
        self.procs = []

    def controller(self):
        cid = f"netns{TAG}"
        self.cf = paths.connection_file("default", cid)
        p = subprocess.Popen(
            ["ip", "netns", "exec", NS["ctl"], sys.executable, "-m", "cpar.cli", "controller",
             "--cluster-id", cid, "--ip", ADDR["ctl"], "--curve", "--hb-timeout-ms", "1500",
             "--log", str(self.tmp / "controller.log")],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.procs.append(p)
        deadline = time.monotonic() + 30
        while not os.path.exists(self.cf):
            assert p.poll() is None, p.stdout.read()
            assert time.monotonic() < deadline, "no connection file"
            time.sleep(0.05)
        return self.cf

    def engine(self, host, cf=None, name=None):
        log = self.tmp / f"engine-{name or host}-{len(self.procs)}.log"
        p = subprocess.Popen(["ip", "netns", "exec", NS[host],
                              *engine_argv(cf or self.cf, str(log))],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p, log

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
            p.wait()


@pytest.fixture
def net(tmp_path):
    _setup()
    n = Net(tmp_path)
    try:
        yield n
    finally:
        n.stop()
        _teardown()


# Lambdas travel by value (this test module is not importable on the engines).
_netns_inode = lambda: __import__("os").stat("/proc/self/ns/net").st_ino  # noqa: E731


def test_engines_on_two_hosts_over_tcp_with_curve_and_a_link_lost(net, tmp_path):
    cf = net.controller()
    info = paths.read_json(cf)
    assert info["client_url"].startswith(f"tcp://{ADDR['ctl']}:")
    assert info["curve_serverkey"]
    for host in ("h1", "h1", "h2", "h2"):
        net.engine(host)
    with cpar.Client(cf, timeout=20) as rc:
        rc.wait_for_engines(4, timeout=30)
        where = dict(zip(rc.ids, rc[:].apply_sync(_netns_inode)))
        ino = {h: _ns_inode_of(h) for h in ("h1", "h2")}
        assert sorted(where.values()) == sorted([ino["h1"]] * 2 + [ino["h2"]] * 2), where
        assert _netns_inode() not in where.values()  # two hosts other than this one
        assert rc.load_balanced_view().map_sync(abs, range(-40, 0)) == list(range(40, 0, -1))

        # A wrong key: an engine on h2 with another server key is refused at the handshake.
        bad = dict(info, curve_serverkey=_core.curve_keypair()[0])
        badf = tmp_path / "bad.json"
        paths.write_private_json(str(badf), bad)
        p, log = net.engine("h2", cf=str(badf), name="badkey")
        assert p.wait(30) == 2
        assert "do not match the controller's" in log.read_text()
        assert len(rc.ids) == 4

        # h1 loses its link in the middle of a map: its engines are declared dead and,
        # with retries, their tasks finish on h2.
        lost = sorted(e for e, i in where.items() if i == ino["h1"])
        lview = rc.load_balanced_view()
        lview.retries = 1
        ar = lview.map_async(_slow_square, range(60))
        time.sleep(0.5)
        _ip("-n", NS["h1"], "link", "set", f"vhh1{TAG}", "down")
        assert ar.get(60) == [i * i for i in range(60)]
        deadline = time.monotonic() + 10
        while any(e in rc.ids for e in lost) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert sorted(rc.ids) == sorted(e for e, i in where.items() if i == ino["h2"])
        rc.shutdown(hub=True)


_slow_square = lambda x: (__import__("time").sleep(0.05), x * x)[1]  # noqa: E731


def _ns_inode_of(host):
    r = subprocess.run(["ip", "netns", "exec", NS[host], sys.executable, "-c",
                        "import os; print(os.stat('/proc/self/ns/net').st_ino)"],
                       capture_output=True, text=True, check=True)
    return int(r.stdout)


def test_engine_loss_without_retries_fails_its_tasks(net):
    cf = net.controller()
    net.engine("h1")
    net.engine("h2")
    with cpar.Client(cf, timeout=20) as rc:
        rc.wait_for_engines(2, timeout=30)
        ino_h1 = _ns_inode_of("h1")
        h1_engine = [e for e in rc.ids if rc[e].apply_sync(_netns_inode) == ino_h1][0]
        ar = rc[h1_engine].apply_async(_slow_square, 3)
        ar.get(10)
        lview = rc.load_balanced_view(targets=[h1_engine])
        pending = lview.apply_async(lambda: __import__("time").sleep(30))
        time.sleep(0.3)
        _ip("-n", NS["h1"], "link", "set", f"vhh1{TAG}", "down")
        with pytest.raises(error.EngineError):
            pending.get(30)
        deadline = time.monotonic() + 10  # the ENGINE_EVENT follows the failed task
        while h1_engine in rc.ids and time.monotonic() < deadline:
            time.sleep(0.05)
        assert h1_engine not in rc.ids
        rc.shutdown(hub=True)
