"""cpar.connfile: the one reader and writer of connection files (client, launchers, and
the engine binary, which calls it through its embedded interpreter)."""

import json
import os
import stat
import subprocess
import sys

import pytest

import cpar
from cpar import connfile

PKG_DIR = os.path.dirname(os.path.dirname(os.path.abspath(cpar.__file__)))
KEY40 = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"  # 40 Z85 characters

GOOD = {"client_url": "tcp://127.0.0.1:1", "engine_url": "tcp://127.0.0.1:2", "key": "k" * 64,
        "signature_scheme": "hmac-sha256", "controller_pid": 12345,
        "hb_period_ms": 100, "hb_timeout_ms": 1000}


def _file(tmp_path, text, name="c.json"):
    p = tmp_path / name
    p.write_text(text if isinstance(text, str) else json.dumps(text))
    return str(p)


def test_write_then_read_round_trip(tmp_path):
    p = str(tmp_path / "c.json")
    connfile.write(p, GOOD)
    assert stat.S_IMODE(os.stat(p).st_mode) == 0o600
    assert connfile.read(p) == GOOD
    assert connfile.read_if_written(p) == GOOD


def test_engine_fields(tmp_path):
    p = _file(tmp_path, GOOD)
    assert connfile.engine_fields(p) == ("tcp://127.0.0.1:2", b"k" * 64, 100, 1000, None)
    bare = _file(tmp_path, {"engine_url": "tcp://h:1", "key": "é"}, "bare.json")
    assert connfile.engine_fields(bare) == ("tcp://h:1", "é".encode(), 500, 3000, None)
    curve = dict(GOOD, curve_serverkey=KEY40, curve_publickey=KEY40, curve_secretkey=KEY40)
    assert connfile.engine_fields(_file(tmp_path, curve, "cv.json"))[4] == (KEY40,) * 3
    # heartbeat values out of range fall back to the defaults, as the engine always did
    odd = _file(tmp_path, dict(GOOD, hb_period_ms=0, hb_timeout_ms=None), "hb.json")
    assert connfile.engine_fields(odd)[2:4] == (500, 3000)


def test_missing_file_waits_then_names_it(tmp_path):
    p = str(tmp_path / "absent.json")
    with pytest.raises(FileNotFoundError, match="no cpar connection file at .*absent.json"):
        connfile.read(p, timeout=0.1)
    assert connfile.read_if_written(p) is None


@pytest.mark.parametrize("text, why", [
    ("{not json", "is not valid JSON"),
    ("", "is not valid JSON"),
    ("[1, 2]", "does not hold a JSON object"),
    (b"\xff\xfe".decode("latin-1"), "is not valid JSON"),
])
def test_not_a_json_object(tmp_path, text, why):
    p = _file(tmp_path, text)
    with pytest.raises(connfile.ConnectionFileError, match=why):
        connfile.read(p)
    with pytest.raises(ValueError, match=why):  # a ValueError, as before
        connfile.engine_fields(p)
    assert connfile.read_if_written(p) is None


@pytest.mark.parametrize("change, need, why", [
    ({"key": None}, ("client_url", "key"), "must be string"),
    ({"client_url": 5}, ("client_url", "key"), "client_url must be string"),
    ({"signature_scheme": "hmac-md5"}, ("client_url", "key"), "unsupported signature_scheme"),
    ({"key": ""}, ("client_url", "key"), "the key must be 1 to 256 bytes, not 0"),
    ({"key": "k" * 257}, ("engine_url", "key"), "the key must be 1 to 256 bytes, not 257"),
    ({"curve_serverkey": KEY40}, ("engine_url", "key"),
     "has CURVE keys but lacks curve_publickey, curve_secretkey"),
])
def test_bad_fields_are_named(tmp_path, change, need, why):
    p = _file(tmp_path, {**GOOD, **change})
    with pytest.raises(connfile.ConnectionFileError, match=why) as info:
        connfile.read(p, need=need)
    assert p in str(info.value)


def test_missing_fields_are_listed(tmp_path):
    info = dict(GOOD)
    del info["client_url"], info["key"]
    with pytest.raises(connfile.ConnectionFileError, match="lacks client_url, key"):
        connfile.read(_file(tmp_path, info))
    del info["engine_url"]
    with pytest.raises(connfile.ConnectionFileError, match="lacks engine_url, key"):
        connfile.engine_fields(_file(tmp_path, info, "e.json"))


def test_bad_heartbeat(tmp_path):
    p = _file(tmp_path, dict(GOOD, hb_period_ms="fast"))
    with pytest.raises(connfile.ConnectionFileError, match="hb_period_ms must be an integer"):
        connfile.engine_fields(p)


def test_not_written_yet(tmp_path):
    p = _file(tmp_path, dict(GOOD, controller_pid=None))
    assert connfile.read_if_written(p) is None


def test_client_reports_a_bad_file(tmp_path):
    with pytest.raises(ValueError, match="lacks client_url"):
        cpar.Client(_file(tmp_path, {"key": "k"}), timeout=1)
    with pytest.raises(ValueError, match="does not hold a JSON object"):
        cpar.Client(_file(tmp_path, "[]", "list.json"), timeout=1)


def _engine(path, tmp_path):
    from cpar.cluster.launcher import engine_binary

    log = tmp_path / "engine.log"
    r = subprocess.run([engine_binary(), "--connection-file", path, "--python", sys.executable,
                        "--log", str(log)], env=dict(os.environ, PYTHONPATH=PKG_DIR),
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=120)
    return r.returncode, log.read_text()


@pytest.mark.parametrize("content, why", [
    ("{oops", "is not valid JSON"),
    ({"key": "k"}, "lacks engine_url"),
    ({"engine_url": "tcp://127.0.0.1:9", "key": "k", "signature_scheme": "md5"},
     "unsupported signature_scheme"),
    ({"engine_url": "tcp://127.0.0.1:9", "key": "k", "curve_serverkey": "short",
      "curve_publickey": "short", "curve_secretkey": "short"}, "40 Z85 characters"),
])
def test_engine_refuses_a_bad_file(tmp_path, content, why):
    p = _file(tmp_path, content)
    rc, log = _engine(p, tmp_path)
    assert rc != 0
    assert f"bad connection file {p}" in log
    assert why in log
