"""The `cpar controller` process: binds the C controller, publishes its connection file,
and runs its event loop (GIL released) until a hub shutdown or SIGINT/SIGTERM."""

import os
import secrets
import shutil
import socket
import stat
import tempfile

from . import connfile, paths
from ._proc import pid_alive


# Unanswered load-balanced tasks per engine. "auto": about 5 ms of queued work per engine,
# judged by its recent tasks' run times (tiny tasks stream without stalls; a slow task
# strands little behind it); N: at most N (1 is ipyparallel's default); 0: no limit.
DEFAULT_HWM = "auto"


def parse_hwm(value):
    """The controller's hwm number for "auto" or an int >= 0 (-1 means auto)."""
    if isinstance(value, str) and value.strip().lower() == "auto":
        return -1
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"hwm must be 'auto' or an int >= 0, not {value!r}") from None
    if n < 0:
        raise ValueError(f"hwm must be 'auto' or an int >= 0, not {value!r}")
    return n

SCHEMES = ("leastload", "lru", "weighted", "twobin", "plainrandom")


def _is_loopback(ip):
    import ipaddress

    if ip in ("localhost", "lo"):
        return True
    try:
        return ipaddress.ip_address(ip).is_loopback
    except ValueError:
        return False


def _located(url, location):
    """The bound endpoint ``tcp://host:port`` with host replaced by ``location``."""
    if not location or not url.startswith("tcp://"):
        return url
    scheme, _, rest = url.partition("://")
    port = rest.rpartition(":")[2]
    host = f"[{location}]" if ":" in location else location
    return f"{scheme}://{host}:{port}"


def _env_number(name, default, scale=1):
    """A non-negative number from the environment variable `name` (times `scale`), else
    `default`."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if value < 0:
        raise ValueError(f"{name} must be >= 0, not {raw!r}")
    return int(value * scale)


def security_limits():
    """The controller's replay and size limits from the environment (0: the default):
    ``CPAR_REPLAY_WINDOW`` (seconds a message's send time may differ from the controller's
    clock; default 300), ``CPAR_REPLAY_IDS`` (recent message signatures remembered; default
    131072) and ``CPAR_MAX_MESSAGE`` (largest frame in bytes a peer may send before it is
    disconnected; default no limit)."""
    return {
        "replay_window_ms": _env_number("CPAR_REPLAY_WINDOW", 0, 1000),
        "replay_ids": _env_number("CPAR_REPLAY_IDS", 0),
        "max_message": _env_number("CPAR_MAX_MESSAGE", 0),
    }


# The task database (docs/taskdb.md): "sqlite" (a file), "memory" or "none".
DB_MODES = ("sqlite", "memory", "none")


def db_file_default(profile="default", cluster_id=""):
    """``<profile dir>/db/<cluster_id or "default">.sqlite``."""
    return os.path.join(paths.profile_dir(profile), "db", f"{cluster_id or 'default'}.sqlite")


def _db_number(name, value, env):
    if value is None:
        return _env_number(env, 0)
    try:
        n = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an int >= 0, not {value!r}") from None
    if n < 0:
        raise ValueError(f"{name} must be an int >= 0 (0: the default), not {value!r}")
    return n


def db_settings(profile="default", cluster_id="", db=None, db_file=None, max_records=None,
                max_bytes=None, keep_bytes=None):
    """The task database's `_core.Controller` keywords. Arguments given win; then the
    environment (``CPAR_DB``, ``CPAR_DB_FILE``, ``CPAR_DB_MAX_RECORDS``,
    ``CPAR_DB_MAX_BYTES``, ``CPAR_DB_KEEP_BYTES``); then the defaults: ``sqlite`` in
    `db_file_default`, 100000 records, 1 GiB, 1 MiB per payload (0 means the default)."""
    mode = (db or os.environ.get("CPAR_DB", "").strip() or "sqlite").lower()
    if mode not in DB_MODES:
        raise ValueError(f"--db must be one of {', '.join(DB_MODES)}, not {mode!r}")
    path = None
    if mode == "sqlite":
        path = db_file or os.environ.get("CPAR_DB_FILE", "").strip() or \
            db_file_default(profile, cluster_id)
        path = os.path.abspath(os.path.expanduser(path))
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    return {
        "db": mode,
        "db_file": path,
        "db_max_records": _db_number("--db-max-records", max_records, "CPAR_DB_MAX_RECORDS"),
        "db_max_bytes": _db_number("--db-max-bytes", max_bytes, "CPAR_DB_MAX_BYTES"),
        "db_keep_bytes": _db_number("--db-keep-bytes", keep_bytes, "CPAR_DB_KEEP_BYTES"),
    }


# Seconds clients and engines wait for a controller that went away (docs/recovery.md).
DEFAULT_RECOVER_GRACE = 60

# Longest ipc:// socket path used as is (sun_path holds 108 bytes with its NUL).
_IPC_PATH_MAX = 100


def _private_dir(path):
    """Makes `path` a directory only its owner (us) can enter: mode 0700, ours."""
    os.makedirs(path, mode=0o700, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.geteuid():
        raise ValueError(f"{path} is not a directory of ours: refusing to put sockets there")
    os.chmod(path, 0o700)
    return path


def ipc_socket_dir(profile, cluster_id):
    """A new private (0700) directory for one controller's ipc:// sockets: under
    ``$CPAR_DIR/profile_<profile>/run/`` when the socket paths fit the OS limit, else a
    fresh temporary directory. Only processes of this user can connect to what is in it."""
    name = f"{cluster_id or 'default'}-{os.getpid()}"
    run = os.path.join(paths.profile_dir(profile), "run")
    path = os.path.join(run, name)
    if len(os.path.join(path, "engine")) <= _IPC_PATH_MAX:
        _private_dir(run)
        if os.path.exists(path):
            shutil.rmtree(path)  # left by an earlier controller with this pid
        return _private_dir(path)
    return tempfile.mkdtemp(prefix=f"cpar-{name[:20]}-")  # mode 0700


def recover_grace_ms(seconds=None):
    """The recovery grace period in ms: ``seconds`` given, else ``$CPAR_RECOVER_GRACE``,
    else 60 s (docs/recovery.md). 0 turns the waiting off."""
    source = "--recover-grace"
    if seconds is None:
        raw = os.environ.get("CPAR_RECOVER_GRACE", "").strip()
        seconds, source = (raw, "CPAR_RECOVER_GRACE") if raw else (DEFAULT_RECOVER_GRACE, "")
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise ValueError(f"{source} must be a number of seconds, not {seconds!r}") from None
    if not 0 <= value <= 86400:
        raise ValueError(f"{source} must be between 0 and 86400 seconds, not {seconds!r}")
    return int(round(value * 1000))


def _recover_info(cf, curve, dbkw):
    """The connection file of the controller to recover, checked: it exists, names a
    controller process that is gone, and a cluster recovery can serve."""
    if curve:
        raise ValueError("--recover cannot restart a --curve cluster: its server secret key "
                         "never left the controller that died (docs/recovery.md)")
    try:
        old = paths.read_json(cf)
    except FileNotFoundError:
        raise ValueError(f"nothing to recover: there is no connection file {cf} (was the "
                         "cluster ever started, or was it stopped cleanly?)") from None
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot recover from the connection file {cf}: {exc}") from None
    for k in ("client_url", "engine_url", "key"):
        if not isinstance(old.get(k), str) or not old[k]:
            raise ValueError(f"cannot recover from the connection file {cf}: no {k!r} in it")
    if old.get("curve_serverkey"):
        raise ValueError(f"cannot recover the cluster of {cf}: it encrypts with CURVE, and "
                         "its server secret key never left the controller that died")
    pid = old.get("controller_pid")
    if isinstance(pid, int) and pid > 0 and pid != os.getpid() and pid_alive(pid):
        raise ValueError(f"the controller of {cf} (pid {pid}) is still running: nothing "
                         "to recover (stop it first, or connect to it)")
    if dbkw["db"] != "sqlite":
        raise ValueError(f"--recover needs the task database file (--db sqlite), not "
                         f"--db {dbkw['db']}: it is where the work to take up is")
    return old


def _recover_urls(old, ip):
    """The client and engine URLs to bind in place of the dead controller: those of its
    connection file (its ipc:// directory made again if gone; TCP on ``ip`` when given,
    else the file's host, with the same ports), and the ipc directory to remove at exit."""
    urls, sock_dir = [], None
    for k in ("client_url", "engine_url"):
        url = old[k]
        if url.startswith("ipc://"):
            d = os.path.dirname(url[len("ipc://"):])
            sock_dir = d if os.path.isdir(d) else _private_dir(d)
            if os.lstat(d).st_uid != os.geteuid():
                raise ValueError(f"{d} is not a directory of ours: refusing to put sockets there")
            urls.append(url)
        elif url.startswith("tcp://"):
            host, _, port = url[len("tcp://"):].rpartition(":")
            urls.append(f"tcp://{ip or host}:{port}")
        else:
            raise ValueError(f"cannot recover: the connection file's {k} {url!r} is neither "
                             "ipc:// nor tcp://")
    return urls[0], urls[1], sock_dir


def new_key():
    """A fresh signing key: 64 hex characters (its UTF-8 bytes are the HMAC key)."""
    return secrets.token_hex(32)


def run_controller(
    profile="default",
    cluster_id="",
    ip=None,
    client_port=0,
    engine_port=0,
    hb_period_ms=500,
    hb_timeout_ms=3000,
    log_path=None,
    connection_file=None,
    scheme="leastload",
    hwm=DEFAULT_HWM,
    max_records=100000,
    curve=False,
    insecure=False,
    location=None,
    curve_allow=(),
    db=None,
    db_file=None,
    db_max_records=None,
    db_max_bytes=None,
    db_keep_bytes=None,
    recover=False,
    recover_grace=None,
):
    """Binds, writes the connection file (mode 0600), serves until stopped, then removes
    the connection file. Returns the process exit status.

    ``recover``: start in place of a controller of this cluster that died (docs/recovery.md):
    bind the addresses of its connection file, with its key, and take up the work its task
    database holds. ``recover_grace``: seconds engines and clients wait for a controller
    that went away (and a recovered controller waits for the old engines); default
    ``$CPAR_RECOVER_GRACE`` or 60; 0 turns the waiting off.

    ``ip`` None (and no port given): ipc:// sockets in a private directory (`ipc_socket_dir`),
    so that only this user's processes on this host can connect at all; an address binds
    TCP there (engines and clients on other hosts need it).

    ``curve``: encrypt every connection with CurveZMQ (keys made here; the server's secret
    never leaves this process, the clients' key pair goes into the connection file).
    Binding to an address other than loopback needs ``curve`` or an explicit
    ``insecure``. ``location``: the host name or address clients and engines should
    connect to (default: the bound ``ip``; needed when binding ``0.0.0.0``).
    ``curve_allow``: more client/engine public keys (Z85) let in beside the connection
    file's; with CURVE every other key fails the handshake. Replay and size limits come
    from the environment (`security_limits`)."""
    from . import _core

    use_ipc = ip is None and not client_port and not engine_port
    if ip is None:
        ip = "127.0.0.1"
    if not curve and not insecure and not _is_loopback(ip):
        raise ValueError(
            f"binding {ip} (not loopback) without encryption: use --curve, or --insecure to "
            "accept unencrypted traffic on that network")
    if curve_allow and not curve:
        raise ValueError("--curve-allow needs --curve")
    limits = security_limits()
    dbkw = db_settings(profile, cluster_id, db, db_file, db_max_records, db_max_bytes,
                       db_keep_bytes)
    grace_ms = recover_grace_ms(recover_grace)
    cf = connection_file or paths.connection_file(profile, cluster_id)
    if recover:
        old = _recover_info(cf, curve, dbkw)
        hb_period_ms = old.get("hb_period_ms", hb_period_ms)
        hb_timeout_ms = old.get("hb_timeout_ms", hb_timeout_ms)
    curve_info = {}
    server_secret = None
    allowed = None
    if curve:
        server_public, server_secret = _core.curve_keypair()
        client_public, client_secret = _core.curve_keypair()
        curve_info = {"curve_serverkey": server_public, "curve_publickey": client_public,
                      "curve_secretkey": client_secret}
        allowed = ",".join([client_public, *curve_allow])
    key = old["key"] if recover else new_key()
    if log_path is None:
        log_path = os.path.join(paths.log_dir(profile), f"controller-{cluster_id or 'default'}.log")
    sock_dir = None
    if recover:
        client_url, engine_url, sock_dir = _recover_urls(old, ip)
    elif use_ipc:
        sock_dir = ipc_socket_dir(profile, cluster_id)
        client_url = "ipc://" + os.path.join(sock_dir, "client")
        engine_url = "ipc://" + os.path.join(sock_dir, "engine")
    else:
        client_url = f"tcp://{ip}:{client_port or '*'}"
        engine_url = f"tcp://{ip}:{engine_port or '*'}"
    try:
        ctrl = _core.Controller(
            client_url=client_url,
            engine_url=engine_url,
            key=key.encode(),
            log_path=log_path,
            hb_period_ms=hb_period_ms,
            hb_timeout_ms=hb_timeout_ms,
            scheme=scheme,
            hwm=parse_hwm(hwm),
            max_records=max_records,
            curve_secret=server_secret,
            curve_allowed=allowed,
            cluster_id=cluster_id or "",
            recover=bool(recover),
            recover_grace_ms=grace_ms,
            **limits,
            **dbkw,
        )
        info = {
            "client_url": _located(ctrl.client_url, location),
            "engine_url": _located(ctrl.engine_url, location),
            "key": key,
            "signature_scheme": "hmac-sha256",
            "profile": profile,
            "cluster_id": cluster_id,
            "controller_pid": os.getpid(),
            "hostname": socket.gethostname(),
            "hb_period_ms": hb_period_ms,
            "hb_timeout_ms": hb_timeout_ms,
            "scheme": scheme,
            "hwm": hwm,
            **curve_info,
            # The largest frame the controller takes (0: any); a bigger one disconnects its
            # sender, so clients and engines should refuse it before sending.
            "max_message": limits["max_message"],
            # The task database (docs/taskdb.md): "sqlite", "memory" or "none".
            "db": dbkw["db"],
            # How long clients and engines wait for a controller that went away
            # (docs/recovery.md).
            "recover_grace_ms": grace_ms,
        }
        connfile.write(cf, info)
        ctrl.install_signal_stop()
        try:
            ctrl.run()
        finally:
            try:
                if paths.read_json(cf).get("controller_pid") == os.getpid():
                    os.unlink(cf)
            except (OSError, ValueError):
                pass
        return 0
    finally:
        if sock_dir is not None:
            shutil.rmtree(sock_dir, ignore_errors=True)
