"""Helpers shared by the LoadBalancedView tests (test_lbview*.py): functions that run
on engines, polling helpers and a private cluster.

Functions sent to engines travel by code (this module is not importable there): each
one is marked interactive and imports what it uses inside its body, so it resolves
nothing from this module's globals on the engine."""

import time

import cpar

@cpar.interactive
def engine_id():
    import cpar.engine.runtime as rt

    return rt.engine_id


@cpar.interactive
def sleep_then(seconds, value=None):
    import time

    time.sleep(seconds)
    return value


@cpar.interactive
def fail(message="boom"):
    raise ValueError(message)


@cpar.interactive
def fail_first_time(marker):
    """Raises the first time any engine runs it (leaving ``marker``, a file naming that
    engine), and returns ``(failed engine, this engine)`` after that."""
    import os

    import cpar.engine.runtime as rt

    try:
        fd = os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        with open(marker) as f:
            return int(f.read()), rt.engine_id
    with os.fdopen(fd, "w") as f:
        f.write(str(rt.engine_id))
    raise RuntimeError(f"failing on engine {rt.engine_id} the first time")


@cpar.interactive
def wait_file_then(path, value=None, limit=60.0):
    """Returns value once the file `path` exists (the test creates it: an event, not a
    guess at how long something takes); raises after `limit` seconds without it."""
    import os
    import time

    end = time.monotonic() + limit
    while not os.path.exists(path):
        if time.monotonic() > end:
            raise TimeoutError(f"{path} never appeared")
        time.sleep(0.005)
    return value


@cpar.interactive
def touch_then_sleep(path, seconds):
    """Creates `path` (the test sees the task running), then sleeps."""
    import time

    open(path, "w").close()
    time.sleep(seconds)


def wait_until(fn, timeout=30.0):
    """Polls fn() until it is true or `timeout` passes; returns its last value."""
    deadline = time.monotonic() + timeout
    value = fn()
    while not value and time.monotonic() < deadline:
        time.sleep(0.02)
        value = fn()
    return value


def started(ar):
    return ar.metadata["started"]


def completed(ar):
    return ar.metadata["completed"]


def own_cluster(cluster_id, n=2, **kwargs):
    c = cpar.Cluster(n=n, cluster_id=cluster_id, **kwargs)
    rc = c.start_and_connect_sync()
    rc.wait_for_engines(n, timeout=30)
    return c, rc
