"""``Client.become_dask()`` / ``Client.stop_dask()``: the engines as workers of a
dask.distributed cluster.

``become_dask`` starts a dask scheduler in this (the client's) process, on a thread of
its own (``distributed.LocalCluster`` without local workers, over TCP), then asks each
engine to start a ``distributed.Worker`` (or ``Nanny``) connected to it. An engine's
worker runs on a thread of the engine with its own asyncio loop, so the engine keeps
answering cpar requests meanwhile; it is bound to ``distributed_worker`` in the engine's
namespace. A ``distributed.Client`` of the scheduler is returned.

``stop_dask`` closes the engines' workers (``distributed_worker`` is unbound again) and
then the scheduler. Closing the cpar client does the same. dask's scheduler and workers
accept connections without authentication: see docs/security.md, "become_dask".

Engine-side helpers (``_start_worker``, ``_stop_worker``) import nothing heavy at module
level, so an engine unpickling a reference to one of them loads only this module.
"""

import ipaddress
import socket
import sys
import threading

_WORKER_NAME = "distributed_worker"
_START_TIMEOUT = 60.0  # seconds an engine waits for its worker to register
_state = {}  # engine side: loop, stop event, thread of this engine's worker


def _user_ns():
    return sys.modules["__main__"].__dict__


def _start_worker(address, nanny, kwargs):
    """Engine side: starts a dask worker (``nanny``: a Nanny) of the scheduler at
    ``address`` on a thread of its own; returns the worker's address."""
    import asyncio

    import distributed

    if _state.get("thread") is not None and _state["thread"].is_alive():
        _stop_worker()
    kwargs = dict(kwargs)
    kwargs.setdefault("nthreads", 1)
    ready = threading.Event()
    box = {}

    async def main():
        cls = distributed.Nanny if nanny else distributed.Worker
        stop = asyncio.Event()
        worker = await cls(address, **kwargs)
        box.update(worker=worker, stop=stop, loop=asyncio.get_running_loop())
        ready.set()
        try:
            await stop.wait()
        finally:
            await worker.close()

    def run():
        try:
            asyncio.run(main())
        except BaseException as exc:  # noqa: BLE001 - handed to the requesting thread
            box["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="cpar-dask-worker", daemon=True)
    thread.start()
    if not ready.wait(_START_TIMEOUT):
        raise TimeoutError(f"the dask worker did not connect to the scheduler at "
                           f"{address} within {_START_TIMEOUT:.0f} s")
    if "worker" not in box:
        raise RuntimeError(f"the dask worker could not start: {box.get('error')!r}") \
            from box.get("error")
    _state.update(thread=thread, loop=box["loop"], stop=box["stop"])
    _user_ns()[_WORKER_NAME] = box["worker"]
    return box["worker"].address


def _stop_worker(timeout=30.0):
    """Engine side: closes this engine's dask worker (if any) and unbinds its name."""
    _user_ns().pop(_WORKER_NAME, None)
    thread, loop, stop = (_state.pop(k, None) for k in ("thread", "loop", "stop"))
    if thread is None:
        return False
    try:
        loop.call_soon_threadsafe(stop.set)
    except RuntimeError:  # the loop already ended
        pass
    thread.join(timeout)
    return not thread.is_alive()


# ---------------------------------------------------------------------------------------
# client side

def _scheduler_host(rc):
    """The address to listen on: loopback when the controller is local, else the
    address this host reaches the controller from (the engines' side of the network)."""
    url = getattr(rc, "url", "") or ""
    host = url.split("://", 1)[-1].rsplit(":", 1)[0].strip("[]")
    try:
        if ipaddress.ip_address(host).is_loopback:
            return "127.0.0.1"
    except ValueError:
        if host in ("localhost", ""):
            return "127.0.0.1"
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, 9))
            return s.getsockname()[0]
    except OSError:
        return "127.0.0.1"


def become_dask(rc, targets="all", port=0, nanny=False, scheduler_args=None,
                worker_args=None):
    try:
        import distributed
    except ImportError:
        raise ImportError("become_dask() needs dask.distributed "
                          "(pip install distributed)") from None
    if getattr(rc, "_dask", None) is not None:
        stop_dask(rc, "all")
    scheduler_args = dict(scheduler_args or {})
    worker_args = dict(worker_args or {})
    host = scheduler_args.pop("host", None) or _scheduler_host(rc)
    scheduler_args.setdefault("dashboard_address", None)
    cluster = distributed.LocalCluster(
        n_workers=0, processes=False, protocol="tcp://", host=host, scheduler_port=port,
        **scheduler_args)
    dview = rc.direct_view(targets)
    try:
        addresses = dview.apply_sync(_start_worker, cluster.scheduler_address, bool(nanny),
                                     worker_args)
        n_workers = 1 if isinstance(addresses, str) else len(addresses)
        client = distributed.Client(cluster.scheduler_address)
        client.wait_for_workers(n_workers, timeout=_START_TIMEOUT)
    except BaseException:
        try:
            dview.apply_sync(_stop_worker)
        except Exception:  # noqa: BLE001 - the original error matters more
            pass
        cluster.close()
        raise
    rc._dask = {"cluster": cluster, "client": client, "targets": targets}
    return client


def stop_dask(rc, targets="all", quiet=False):
    state = getattr(rc, "_dask", None)
    if state is None:
        if quiet:
            return
        raise RuntimeError("no dask cluster to stop: become_dask() was not called (or "
                           "stop_dask() already was)")
    rc._dask = None
    try:
        if not rc.closed:
            rc.direct_view(state["targets"]).apply_sync(_stop_worker)
    except Exception:  # noqa: BLE001
        if not quiet:
            raise
    finally:
        try:
            state["client"].close()
        finally:
            state["cluster"].close()
