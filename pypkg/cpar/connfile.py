"""Connection files: the JSON a controller writes (mode 0600: it holds the key) and
clients, cluster launchers and engines read to reach it.

The one reader and writer of the format. The fields:

- ``client_url``, ``engine_url``: where clients and engines connect;
- ``key``: the signing key (HMAC-SHA256 over its UTF-8 bytes, 1 to 256 bytes);
- ``signature_scheme``: ``hmac-sha256`` (or absent);
- ``hb_period_ms``, ``hb_timeout_ms``: the engines' heartbeat (absent: 500, 3000);
- ``curve_serverkey``, ``curve_publickey``, ``curve_secretkey``: CurveZMQ keys, all
  three or none;
- ``controller_pid``, ``ssh``, ``sshkey``, ``location``, ...: informative.

The engine (engine/main.c, C with an embedded CPython) calls ``engine_fields`` once its
interpreter is up; errors are ``ConnectionFileError`` (a ValueError) naming the file and
what is wrong with it, or the OSError of opening it.
"""

import json
import os
import time

from . import paths

CURVE_FIELDS = ("curve_serverkey", "curve_publickey", "curve_secretkey")
SIGNATURE_SCHEME = "hmac-sha256"
MAX_KEY_BYTES = 256
_HB_DEFAULTS = {"hb_period_ms": 500, "hb_timeout_ms": 3000}


class ConnectionFileError(ValueError):
    """A connection file that is no JSON object or lacks or mangles a field."""


def write(path, info):
    """Writes ``info`` (a dict) to ``path`` atomically, readable by its owner only."""
    paths.write_private_json(os.fspath(path), dict(info))


def load(path):
    """The JSON object in ``path``, unchecked beyond being an object. OSError when it
    cannot be opened; ConnectionFileError when it holds no JSON object."""
    path = os.fspath(path)
    with open(path, "rb") as f:
        raw = f.read()
    try:
        info = json.loads(raw)
    except ValueError as exc:  # JSONDecodeError, UnicodeDecodeError
        raise ConnectionFileError(f"connection file {path} is not valid JSON: {exc}") from None
    if not isinstance(info, dict):
        raise ConnectionFileError(f"the connection file {path} does not hold a JSON object")
    return info


def read(path, need=("client_url", "key"), timeout=0):
    """The checked contents of the connection file ``path`` as a dict, waiting up to
    ``timeout`` seconds for it to appear (FileNotFoundError after that). ``need``: the
    fields that must be there (as strings)."""
    path = os.fspath(path)
    deadline = time.monotonic() + (timeout or 0)
    while not os.path.exists(path):
        if time.monotonic() >= deadline:
            raise FileNotFoundError(
                f"no cpar connection file at {path}: is a cluster running? "
                "(start one with `cpar cluster start -n 4`)")
        time.sleep(0.05)
    info = load(path)
    check(info, path, need)
    return info


def read_if_written(path):
    """The connection file's contents once a controller has written it (it names its
    ``controller_pid``), else None: absent, half-written or unreadable."""
    try:
        info = load(path)
    except (OSError, ValueError):
        return None
    return info if info.get("controller_pid") else None


def check(info, path, need=("client_url", "key")):
    """Raises ConnectionFileError unless ``info`` has the string fields ``need``, a
    supported signature scheme, a key of 1 to 256 bytes and all or none of the CURVE
    keys."""
    missing = [k for k in need if k not in info]
    if missing:
        raise ConnectionFileError(f"connection file {path} lacks {', '.join(missing)}")
    bad = [k for k in need if not isinstance(info[k], str)]
    if bad:
        raise ConnectionFileError(f"connection file {path}: {', '.join(bad)} must be "
                                  "string(s)")
    scheme = info.get("signature_scheme")
    if scheme is not None and scheme != SIGNATURE_SCHEME:
        raise ConnectionFileError(f"connection file {path}: unsupported signature_scheme "
                                  f"{scheme!r} (need {SIGNATURE_SCHEME})")
    if "key" in need:
        n = len(info["key"].encode("utf-8"))
        if not 1 <= n <= MAX_KEY_BYTES:
            raise ConnectionFileError(f"connection file {path}: the key must be 1 to "
                                      f"{MAX_KEY_BYTES} bytes, not {n}")
    curve_keys(info, path)


def curve_keys(info, path):
    """The CurveZMQ keys of a connection file as ``Connection()`` arguments, or None."""
    present = [k for k in CURVE_FIELDS if info.get(k)]
    if not present:
        return None
    if len(present) != len(CURVE_FIELDS):
        missing = sorted(set(CURVE_FIELDS) - set(present))
        raise ConnectionFileError(f"connection file {path} has CURVE keys but lacks "
                                  f"{', '.join(missing)}")
    return {k: info[k] for k in CURVE_FIELDS}


def _heartbeat(info, name):
    v = info.get(name)
    if v is None:
        return _HB_DEFAULTS[name]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ConnectionFileError(f"{name} must be an integer number of ms, not {v!r}")
    return v if 0 < v < 0x7FFFFFFF else _HB_DEFAULTS[name]


def engine_fields(path):
    """What an engine needs of the connection file ``path``: ``(engine_url, key bytes,
    hb_period_ms, hb_timeout_ms, curve)`` with ``curve`` None or the three keys
    ``(server, public, secret)``. Called by engine/main.c."""
    info = load(path)
    check(info, path, need=("engine_url", "key"))
    curve = curve_keys(info, path)
    if curve is not None:
        curve = tuple(curve[k] for k in CURVE_FIELDS)
    return (info["engine_url"], info["key"].encode("utf-8"),
            _heartbeat(info, "hb_period_ms"), _heartbeat(info, "hb_timeout_ms"), curve)


__all__ = ["CURVE_FIELDS", "ConnectionFileError", "check", "curve_keys", "engine_fields",
           "load", "read", "read_if_written", "write"]
