"""The `cpar controller` process: binds the C controller, publishes its connection file,
and runs its event loop (GIL released) until a hub shutdown or SIGINT/SIGTERM."""

import os
import secrets
import socket

from . import paths


def new_key():
    """A fresh signing key: 64 hex characters (its UTF-8 bytes are the HMAC key)."""
    return secrets.token_hex(32)


def run_controller(
    profile="default",
    cluster_id="",
    ip="127.0.0.1",
    client_port=0,
    engine_port=0,
    hb_period_ms=500,
    hb_timeout_ms=3000,
    log_path=None,
    connection_file=None,
):
    """Binds, writes the connection file (mode 0600), serves until stopped, then removes
    the connection file. Returns the process exit status."""
    from . import _core

    key = new_key()
    cf = connection_file or paths.connection_file(profile, cluster_id)
    if log_path is None:
        log_path = os.path.join(paths.log_dir(profile), f"controller-{cluster_id or 'default'}.log")
    ctrl = _core.Controller(
        client_url=f"tcp://{ip}:{client_port or '*'}",
        engine_url=f"tcp://{ip}:{engine_port or '*'}",
        key=key.encode(),
        log_path=log_path,
        hb_period_ms=hb_period_ms,
        hb_timeout_ms=hb_timeout_ms,
    )
    info = {
        "client_url": ctrl.client_url,
        "engine_url": ctrl.engine_url,
        "key": key,
        "signature_scheme": "hmac-sha256",
        "profile": profile,
        "cluster_id": cluster_id,
        "controller_pid": os.getpid(),
        "hostname": socket.gethostname(),
        "hb_period_ms": hb_period_ms,
        "hb_timeout_ms": hb_timeout_ms,
    }
    paths.write_private_json(cf, info)
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
