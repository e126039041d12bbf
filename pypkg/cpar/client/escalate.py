"""Aborting what an interrupt cannot stop: ``AsyncResult.abort(force=True)``.

An engine whose task is stuck in C code that holds the GIL (or blocks every signal) never
sees the ``KeyboardInterrupt`` a polite abort raises: its task stays listed on it at the
controller. After ``grace`` seconds, the engines still holding aborted requests are
killed (SIGKILL), and, when a ``Cluster`` of this process launched them on this machine,
replaced by a new engine process that registers with the same id. Engines elsewhere
(another host, another launcher) cannot be killed from here: their requests' errors say
so.
"""

import os
import signal
import socket
import time

from .. import error

_POLL = 0.05  # s between looks at the controller's queues while waiting


def _stuck(client, msg_ids, grace):
    """``{engine_id: {msg_id, ...}}`` of the ``msg_ids`` the controller still lists on an
    engine ``grace`` seconds after the abort (sooner when none is left)."""
    wanted = {m.hex(): m for m in msg_ids}
    deadline = time.monotonic() + grace
    while True:
        status = client.queue_status(verbose=True)
        stuck = {}
        for eid, info in status.items():
            if not isinstance(eid, int) or not isinstance(info, dict):
                continue
            held = {wanted[h] for h in list(info.get("queue", ())) + list(info.get("tasks", ()))
                    if h in wanted}
            if held:
                stuck[eid] = held
        if not stuck or time.monotonic() >= deadline:
            return stuck
        time.sleep(_POLL)


def _wait_ids(client, eid, present, timeout):
    """Waits until engine ``eid`` is (``present``) or is not registered; True if so."""
    d = client._dispatcher
    deadline = time.monotonic() + timeout
    with d.engines_changed:
        while (eid in d.ids) != present and not d.closed:
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            d.engines_changed.wait(left)
    return (eid in d.ids) == present


def _local(host):
    return host in ("", "localhost", socket.gethostname(), socket.getfqdn())


def _is_engine_process(pid):
    """True when ``pid`` runs a cpar-engine binary: the pid comes from the engine's own
    registration, and a signal must never reach some other process that has it."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0", 1)[0]
    except OSError:
        return False
    return os.path.basename(argv0).startswith(b"cpar-engine")


def kill_engine(client, eid, timeout):
    """Kills engine ``eid`` and, where a Cluster of this process launched it, starts its
    replacement with the same id. Returns what happened, for error messages."""
    info = client.engine_info.get(eid) or {}
    try:
        pid = int(info.get("pid", -1))
    except ValueError:
        pid = -1
    host = info.get("host", "")
    if pid <= 0 or not _local(host):
        return (f"engine {eid} (pid {pid if pid > 0 else '?'} on host {host or '?'}) could "
                "not be killed from this process: stop it on its host")

    def gone():
        if not _wait_ids(client, eid, False, timeout):
            raise error.TimeoutError(f"the controller did not notice engine {eid}'s death "
                                     f"within {timeout} s")

    from ..cluster.cluster import _live_clusters

    for cluster in list(_live_clusters):
        if cluster.replace_engine(eid, pid, before_start=gone):
            if _wait_ids(client, eid, True, timeout):
                return f"engine {eid} was killed; a replacement registered as engine {eid}"
            return (f"engine {eid} was killed; its replacement did not register within "
                    f"{timeout} s (see its log)")
    if not _is_engine_process(pid):
        return (f"engine {eid} could not be killed: process {pid} on this host is not a "
                "cpar-engine (gone already, or a wrong pid)")
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    except PermissionError:
        return f"engine {eid} (pid {pid}) could not be killed: permission denied"
    gone()
    return (f"engine {eid} was killed; it was not started by a Cluster of this process, "
            "so nothing replaced it")


def force_abort(ar, msg_ids, grace, timeout):
    """After ``ar.abort()`` of ``msg_ids``: kills (and replaces) the engines that still
    hold them ``grace`` seconds later, and rewrites those requests' errors to say so.
    Returns ``{engine_id: what happened}``."""
    from .asyncresult import _PENDING

    client = ar._client
    stuck = _stuck(client, msg_ids, grace)
    outcome = {}
    for eid in sorted(stuck):
        outcome[eid] = kill_engine(client, eid, timeout)
    if not outcome:
        return outcome
    with ar._lock:
        for slot in ar._slots:
            for eid, held in stuck.items():
                if slot.msg_id in held and slot.engine_id in (eid, -1):
                    slot.engine_id = eid
                    slot.error = error.TaskAborted(
                        f"[Engine {eid}] {ar._fname}: aborted; the interrupt did not stop it "
                        f"within {grace} s (stuck in C code holding the GIL?), so "
                        f"{outcome[eid]}", eid)
                    slot.value = _PENDING  # deserialized again, with this error
        ar._exception = None
        ar._value = _PENDING
    return outcome
