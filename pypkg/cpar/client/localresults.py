"""The client's local caches as ipyparallel users know them: ``rc.results`` and
``rc.metadata`` (dicts by msg id you may also write to), ``rc.purge_local_results``, and
``rc.clear`` (empty the engines' namespaces). ``Client`` takes these from ``_LocalResults``.

cpar keeps no result nobody can ask for: ``rc.results`` shows the finished requests whose
AsyncResult something still holds and that were published there (as in ipyparallel, the
AsyncResult a view returns owns its request and takes it out of the client's caches when it
finishes; ``rc.get_result(..., owner=False)`` publishes it), read through to the
AsyncResult, plus what was stored into it by hand; ``rc.metadata`` also the pending ones. ``rc.metadata`` is like ipyparallel's ``defaultdict(Metadata)``: an unknown key gives
(and stores) an empty ``Metadata``.
"""

import collections.abc

from .arinfo import Metadata
from .asyncresult import AsyncResult
from .records import _PerMessage


def _raw(key):
    """The msg id bytes a key names, or None (not a msg id)."""
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    if isinstance(key, str):
        try:
            return bytes.fromhex(key)
        except ValueError:
            return None
    return None


def _hex(key):
    return key.hex() if isinstance(key, (bytes, bytearray)) else key


class _LocalDict(_PerMessage, collections.abc.MutableMapping):
    """msg id (hex) -> the request's result / metadata: a local dict over the table of
    held results. Writes go to the local dict; deleting a held request's entry forgets
    it here (as ``purge_local_results`` does)."""

    def __init__(self, table, what, local, default=None):
        super().__init__(table, what)
        self._local = local
        self._default = default

    def _held(self, key):
        raw = _raw(key)
        if raw is None:
            raise KeyError(key)
        return self._entry(raw)

    def __getitem__(self, key):
        key = _hex(key)
        try:
            return self._local[key]
        except (KeyError, TypeError):
            pass
        try:
            return self._held(key)
        except KeyError:
            if self._default is None:
                raise
        value = self._local[key] = self._default()
        return value

    def __contains__(self, key):
        key = _hex(key)
        try:
            if key in self._local:
                return True
        except TypeError:
            return False
        try:
            self._held(key)
        except KeyError:
            return False
        return True

    def __setitem__(self, key, value):
        self._local[_hex(key)] = value

    def __delitem__(self, key):
        key = _hex(key)
        if key in self._local:
            del self._local[key]
            return
        self._held(key)  # KeyError if unknown
        self._table.pop(_raw(key))

    def __iter__(self):
        keys = dict.fromkeys(self._local)
        keys.update(dict.fromkeys(self._keys()))
        return iter(list(keys))

    def __len__(self):
        return len(list(iter(self)))

    def __repr__(self):
        return f"<{self._what} of {len(self)} request(s)>"


class _LocalResults:
    """``results``, ``metadata``, ``purge_local_results`` and ``clear`` of ``Client``
    (needs its ``_results`` table, ``_dispatcher``, ``block`` and ``direct_view``)."""

    def _local(self, what):
        name = f"_local_{what}"
        local = self.__dict__.get(name)
        if local is None:
            local = self.__dict__[name] = {}
        return local

    @property
    def results(self):
        """msg id (hex) -> result (or error) of each finished request whose AsyncResult
        is still held, and whatever was stored here by hand (a dict you may write)."""
        return _LocalDict(self._results, "results", self._local("results"))

    @property
    def metadata(self):
        """msg id (hex) -> ``Metadata`` (engine_id, submitted, started, completed, status
        ...) of each request whose AsyncResult is still held; an unknown msg id gives a
        new empty ``Metadata`` (stored), as ipyparallel's ``defaultdict`` does."""
        return _LocalDict(self._results, "metadata", self._local("metadata"), Metadata)

    def _msg_keys(self, jobs):
        """The keys (hex msg ids, or other keys stored by hand) ``jobs`` names."""
        if isinstance(jobs, (AsyncResult, str, bytes)):
            jobs = [jobs]
        keys = []
        for job in jobs:
            if isinstance(job, AsyncResult):
                keys.extend(m.hex() for m in job._msg_ids)
            elif isinstance(job, (str, bytes, bytearray)):
                keys.append(_hex(job))
            else:
                raise TypeError(f"purge_local_results: not a msg id or AsyncResult: "
                                f"{job!r}")
        return keys

    def purge_local_results(self, jobs=(), targets=()):
        """Forgets results and metadata kept here: of ``jobs`` (AsyncResults, msg ids, or
        'all') and/or of every request answered by the ``targets`` engines. A request not
        finished yet cannot be purged: ``RuntimeError``. Held AsyncResults keep their
        values; only the client's caches (``results``, ``metadata``, ``get_result``)
        forget them."""
        pending = set(self._dispatcher.pending_ids())
        table = self._results
        local_r, local_m = self._local("results"), self._local("metadata")
        if (isinstance(jobs, str) and jobs == "all") or \
                (isinstance(targets, str) and targets == "all"):
            if pending:
                raise RuntimeError(f"cannot purge the local results: {len(pending)} "
                                   "request(s) are outstanding (wait for them, or abort)")
            local_r.clear()
            local_m.clear()
            for ar in table.results():
                for m in ar._msg_ids:
                    table.pop(m)
            return
        if jobs:
            keys = self._msg_keys(jobs)
            busy = [k for k in keys if (raw := _raw(k)) is not None and raw in pending]
            if busy:
                raise RuntimeError(f"cannot purge outstanding request(s): "
                                   f"{', '.join(busy[:5])}")
            for k in keys:
                local_r.pop(k, None)
                local_m.pop(k, None)
                raw = _raw(k)
                if raw is not None:
                    table.pop(raw)
        if targets:
            if isinstance(targets, int):
                targets = [targets]
            tset = {int(t) for t in targets}
            for ar in table.results():
                for s in ar._slots:
                    if s.done and s.engine_id in tset:
                        table.pop(s.msg_id)
            for k, md in list(local_m.items()):
                if isinstance(md, dict) and md.get("engine_id") in tset:
                    local_m.pop(k, None)
                    local_r.pop(k, None)

    def clear(self, targets=None, block=None):
        """Empties the namespaces of the ``targets`` engines (None: all of them): every
        name the user's code, pushes or imports bound goes. Waits when ``block`` (None:
        the client's ``block``); otherwise returns the AsyncResult."""
        from . import remotefunctions as rf

        view = self.direct_view("all" if targets is None else targets)
        ar = view.apply_async(rf._clear)
        if self.block if block is None else block:
            ar.get()
            return None
        return ar
