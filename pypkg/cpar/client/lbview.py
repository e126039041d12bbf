"""LoadBalancedView: tasks that the controller hands to whichever engine its scheduler
picks (ipyparallel's ``LoadBalancedView``).

Every call sends TASK messages (docs/protocol.md, "Load-balanced tasks"): a spec frame
(retries, timeout, allowed engines, ``after``/``follow`` dependencies) followed by the
same frames as a DirectView's APPLY. The controller queues the task, waits for its
dependencies, picks an engine by its scheme (``cpar controller --scheme``), retries
where the flags allow, and answers with the engine's REPLY or an ERROR
(``ImpossibleDependency``, ``TaskTimeout``, ``TaskAborted``, ``EngineError``).
"""

import collections
import concurrent.futures
import itertools
import operator
import struct
import threading

from .. import error, serialize
from ..dependency import FLAG_ALL, FLAG_SUCCESS, Dependency, _msg_id_hex
from . import remotefunctions as rf
from .asyncresult import AsyncMapResult
from .executor import LazyMapIterator, ViewExecutor
from .view import _sliceable
from .viewbase import View, _check_label, _fname

_SPEC = struct.Struct("<IiIHHIII")
_SPEC_VERSION = 1
_DEFAULT_DEP_FLAGS = FLAG_ALL | FLAG_SUCCESS
_MAX_TIMEOUT_MS = 2**32 - 1

_SPEC_FLAGS = frozenset(("targets", "after", "follow", "timeout", "retries"))


_pack_call = serialize.pack_call  # the frames of a task's call (tests use the old name)


def _dependency_frame(dep):
    """``(flags, concatenated 16-byte ids, count)`` of an ``after``/``follow`` value."""
    if dep is None:
        return _DEFAULT_DEP_FLAGS, b"", 0
    if isinstance(dep, Dependency):
        flags, ids = dep.flags, sorted(dep)
    else:
        try:
            ids = list(dict.fromkeys(_msg_id_hex(dep)))
        except ValueError as exc:
            raise error.InvalidDependency(f"a dependency names no task: {exc}") from None
        flags = _DEFAULT_DEP_FLAGS
    bad = [h for h in ids if len(h) != 32]
    if bad:
        raise error.InvalidDependency(f"a dependency names no task: {bad[0]!r} is not a "
                                      "msg id (32 hex digits)")
    return flags, b"".join(bytes.fromhex(h) for h in ids), len(ids)


def _check_targets(targets):
    """None (any engine) or a list of engine ids."""
    if targets is None or (isinstance(targets, str) and targets == "all"):
        return None
    if isinstance(targets, (str, bytes)):
        raise TypeError(f"targets must be None, an engine id or a list of them, "
                        f"not {targets!r}")
    try:
        return [operator.index(targets)]
    except TypeError:
        pass
    try:
        out = [operator.index(t) for t in targets]
    except TypeError:
        raise TypeError(f"targets must be None, an engine id or a list of them, "
                        f"not {targets!r}") from None
    if not out:
        raise ValueError("targets: an empty list of engines allows none")
    return out


def _check_timeout(timeout):
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)):
        raise TypeError(f"timeout must be a number of seconds or None, not {timeout!r}")
    if timeout < 0:
        raise ValueError(f"timeout must be >= 0, not {timeout!r}")
    return timeout


def _check_retries(retries):
    if isinstance(retries, bool):
        raise TypeError(f"retries must be an int, not {retries!r}")
    retries = operator.index(retries)
    if retries < 0 or retries > 2**31 - 1:
        raise ValueError(f"retries must be >= 0, not {retries!r}")
    return retries


def _check_dependency(name, dep):
    if dep is None:
        return None
    if isinstance(dep, Dependency):
        return dep
    try:
        _msg_id_hex(dep)  # a TypeError now for something that cannot name a task
    except ValueError:
        pass  # a str that is no msg id: InvalidDependency when a task is sent with it
    return dep


def make_spec(retries=0, timeout=None, targets=None, after=None, follow=None):
    """The spec frame (payload frame 0) of a TASK message."""
    aflags, araw, nafter = _dependency_frame(after)
    fflags, fraw, nfollow = _dependency_frame(follow)
    tlist = targets or ()
    timeout_ms = 0
    if timeout:
        timeout_ms = min(_MAX_TIMEOUT_MS, max(1, round(timeout * 1000)))
    head = _SPEC.pack(_SPEC_VERSION, retries, timeout_ms, aflags, fflags, len(tlist),
                      nafter, nfollow)
    return head + struct.pack(f"<{len(tlist)}i", *tlist) + araw + fraw


class LoadBalancedView(View):
    """Tasks go to whichever engine the controller's scheduler picks.

    Flags (attributes, ``set_flags``, ``temp_flags``):

    - ``block``: ``apply``/``map`` wait for the result (else return an AsyncResult);
    - ``targets``: None (any engine) or the list of engine ids tasks may run on;
    - ``after``: tasks (AsyncResults, msg ids, a ``Dependency``) that must have ended
      before a task starts (by default: all of them, successfully);
    - ``follow``: tasks whose engine a task must run on;
    - ``timeout``: seconds, counted from submission, a task may wait for its
      dependencies and an engine (None or 0: no limit), then ``TaskTimeout`` (for
      dependencies: one that is also a ``DependencyTimeout``);
    - ``retries``: how many times a task that failed (or whose engine died) is
      resubmitted, each time to an engine not tried yet; a task that failed on every
      engine with retries left waits for another engine until its ``timeout``, then
      ends in ``TaskTimeout`` (without a timeout: its last error);
    - ``track``: accepted for compatibility (sends never need tracking here);
    - ``label``: a str the controller's task database records with each task (None: no
      label).
    """

    _flags = View._flags + ("after", "follow", "timeout", "retries")

    def __init__(self, client, targets=None, block=None, **flags):
        super().__init__(client, block=block)
        self.targets = None
        self.after = None
        self.follow = None
        self.timeout = None
        self.retries = 0
        self._spec = None
        self.set_flags(targets=targets, **flags)

    def __setattr__(self, name, value):
        if name in _SPEC_FLAGS:
            if name == "targets":
                value = _check_targets(self._absolute_targets(value))
            elif name == "timeout":
                value = _check_timeout(value)
            elif name == "retries":
                value = _check_retries(value)
            else:
                value = _check_dependency(name, value)
            object.__setattr__(self, "_spec", None)
        object.__setattr__(self, name, value)

    def _submit_tasks(self, *args, label=None, **kwargs):
        ar = self._sent(self.client._submit_tasks(*args, **kwargs), _check_label(label))
        ar._view = self
        return ar

    def __len__(self):
        """The number of engines tasks may run on (the targets, or every engine)."""
        return len(self.targets) if self.targets is not None else len(self.client.ids)

    def _absolute_targets(self, targets):
        """A slice or negative ids resolved against the client's engines now (as
        ipyparallel does): ``targets=-1`` is the last engine registered."""
        if isinstance(targets, slice):
            return self.client._build_targets(targets)[1]
        if targets is None or isinstance(targets, (str, bytes)):
            return targets
        try:
            one = [operator.index(targets)]
        except TypeError:
            try:
                one = [operator.index(t) for t in targets]
            except TypeError:
                return targets  # _check_targets explains
        if any(t < 0 for t in one):
            return [self.client._build_targets(t)[1][0] for t in one]
        return targets

    def __repr__(self):
        t = "any engine" if self.targets is None else f"engines {self.targets}"
        return f"<LoadBalancedView {t}>"

    # -- flags --------------------------------------------------------------------------

    def _block(self, block):
        """Whether to wait for the result. Waiting while no engine is registered would
        wait forever: that raises NoEnginesRegistered before anything is sent (without
        waiting, tasks queue at the controller until engines register)."""
        block = self.block if block is None else block
        if block and not self.client._dispatcher.ids:
            self.client._dispatcher.check_connected()
            raise error.NoEnginesRegistered(
                "no engines are registered: a blocking call would wait forever "
                "(rc.wait_for_engines(n) waits for them; block=False queues the task "
                "until one registers)")
        return block

    def _get_spec(self):
        spec = self._spec
        if spec is None:
            spec = make_spec(self.retries, self.timeout, self.targets, self.after,
                             self.follow)
            object.__setattr__(self, "_spec", spec)
        return spec

    # -- apply --------------------------------------------------------------------------

    def _apply(self, f, args=(), kwargs=None, block=None):
        block = self._block(block)
        payload = _pack_call(f, tuple(args), kwargs or {})
        ar = self._submit_tasks(self._get_spec(), [payload], _fname(f), single=True)
        return ar.get() if block else ar

    # -- map ----------------------------------------------------------------------------

    def _map_partitions(self, helper, f, seqs, block=None, fname=None, chunksize=None,
                        ordered=True, return_exceptions=False, label=None):
        """One task per chunk of the sequences: ``helper(f, *chunks)`` each; chunks of
        ``chunksize`` items, or one per engine when None."""
        if not seqs:
            raise TypeError("map needs at least one sequence")
        block = self._block(block)
        seqs = [_sliceable(s, "map") for s in seqs]
        n_items = min(len(s) for s in seqs)
        if chunksize is None:
            n_parts = max(1, len(self.targets) if self.targets else len(self.client.ids))
            bounds = [b for b in rf.partition_bounds(n_items, n_parts) if b[1] > b[0]]
        else:
            if isinstance(chunksize, bool):
                raise TypeError("chunksize must be a positive int")
            chunksize = operator.index(chunksize)
            if chunksize < 1:
                raise ValueError(f"chunksize must be >= 1, not {chunksize}")
            bounds = [(lo, min(lo + chunksize, n_items)) for lo in range(0, n_items,
                                                                         chunksize)]
        pack = _pack_call
        if len(seqs) == 1:
            s0 = seqs[0]
            payloads = [pack(helper, (f, s0[lo:hi]), {}) for lo, hi in bounds]
        else:
            payloads = [pack(helper, (f,) + tuple(s[lo:hi] for s in seqs), {})
                        for lo, hi in bounds]
        ar = self._submit_tasks(
            self._get_spec(), payloads, fname or _fname(f), reduce=rf.join_partitions,
            cls=AsyncMapResult, n_items=n_items if helper is rf._map_chunk else None,
            ordered=ordered, label=label)
        ar._return_exceptions = bool(return_exceptions)
        return ar.get() if block else ar

    def map(self, f, *sequences, block=None, chunksize=1, ordered=True,
            return_exceptions=False, label=None):
        """``f`` over the sequences (element-wise, as the builtin ``map``), one task per
        ``chunksize`` elements. Returns the list of results when ``block``, else an
        AsyncMapResult: ``len`` is the number of elements, iterating yields them in order
        (``ordered=False``: as their tasks finish), ``progress`` counts finished tasks.
        With ``return_exceptions`` a failed task gives its error (once) in place of its
        elements instead of raising. ``label``: the task database's label of its tasks
        (default: the view's ``label`` flag)."""
        return self._map_partitions(rf._map_chunk, f, sequences, block=block,
                                    chunksize=chunksize, ordered=ordered,
                                    return_exceptions=return_exceptions, label=label)

    def imap(self, f, *iterables, chunksize=1, ordered=True, max_outstanding="auto",
             return_exceptions=False):
        """An iterator (``LazyMapIterator``) of ``f`` over the iterables that reads them
        lazily (generators and endless iterators are fine) and keeps at most ``max_outstanding`` tasks in flight
        ('auto': twice the engines, at least 2). Yields the results in order, or
        (``ordered=False``) as their tasks finish. A task's error is raised where its
        results would be yielded, or yielded itself with ``return_exceptions``.
        ``cancel()`` on the iterator sends no more tasks and ends it."""
        if not iterables:
            raise TypeError("imap needs at least one iterable")
        if isinstance(chunksize, bool) or operator.index(chunksize) < 1:
            raise ValueError(f"chunksize must be a positive int, not {chunksize!r}")
        if max_outstanding == "auto":
            max_outstanding = max(2, 2 * len(self.targets or self.client.ids))
        elif isinstance(max_outstanding, bool) or operator.index(max_outstanding) < 1:
            raise ValueError(f"max_outstanding must be 'auto' or a positive int, "
                             f"not {max_outstanding!r}")
        stopped = threading.Event()
        return LazyMapIterator(
            self._imap(f, iterables, operator.index(chunksize), ordered,
                       operator.index(max_outstanding), return_exceptions, stopped),
            on_cancel=stopped.set)

    def _imap(self, f, iterables, chunksize, ordered, max_outstanding, return_exceptions,
              stopped):
        items = zip(*iterables)
        fname = _fname(f)
        spec = self._get_spec()
        submit = self._submit_tasks
        pack = _pack_call
        helper = rf._map_chunk

        def send_next():
            if stopped.is_set():
                return None
            chunk = list(itertools.islice(items, chunksize))
            if not chunk:
                return None
            columns = tuple(list(c) for c in zip(*chunk))
            return submit(spec, [pack(helper, (f,) + columns, {})], fname, single=True)

        def results_of(ar):
            try:
                return ar.get()
            except Exception as exc:  # handed to the caller
                if not return_exceptions:
                    raise
                return [exc]

        # ordered: results in sending order (a queue); else as tasks finish (a set)
        in_flight = collections.deque() if ordered else set()
        add = in_flight.append if ordered else in_flight.add
        exhausted = False
        while True:
            while not exhausted and len(in_flight) < max_outstanding:
                ar = send_next()
                if ar is None:
                    exhausted = True
                else:
                    add(ar)
            if not in_flight:
                return
            if ordered:
                yield from results_of(in_flight.popleft())
                continue
            done, _ = concurrent.futures.wait(
                in_flight, return_when=concurrent.futures.FIRST_COMPLETED)
            for ar in sorted(done, key=lambda a: a._finished_mono):
                in_flight.discard(ar)
                yield from results_of(ar)

    # -- decorators ---------------------------------------------------------------------

    def parallel(self, dist="b", block=None, chunksize=None, ordered=True):
        """Decorator: calling the function runs it on chunks of its arguments (one task
        per ``chunksize`` elements, or one chunk per engine) and joins the results;
        ``.map`` maps it element-wise."""
        return lambda f: _ParallelFunction(self, f, dist=dist, block=block,
                                           chunksize=chunksize, ordered=ordered)

    # -- housekeeping -------------------------------------------------------------------

    def _own_jobs(self):
        """This view's results that are not finished."""
        return [ar for ar in self.client._dispatcher.pending_results()
                if getattr(ar, "_view", None) is self]

    @property
    def outstanding(self):
        """msg ids (hex) of this view's tasks not answered yet."""
        return {s.msg_id.hex() for ar in self._own_jobs() for s in ar._slots if not s.done}

    def abort(self, jobs=None, targets=None, block=None, force=False, grace=3.0):
        """Aborts ``jobs`` (AsyncResults or msg ids; None: this view's outstanding
        tasks): queued ones are dropped, running ones interrupted; each ends with
        TaskAborted. ``force=True``: see ``AsyncResult.abort``."""
        out = {}
        for ar in (self._own_jobs() if jobs is None else self.client._resolve_jobs(jobs)):
            out.update(ar.abort(force=force, grace=grace))
        return out

    def shutdown(self, targets=None, hub=False, block=True):
        """Stops this view's engines (all when targets is None; ``hub``: the controller
        too)."""
        if targets is None:
            targets = self.targets if self.targets is not None else "all"
        return self.client.shutdown(targets=targets, hub=hub, block=block)

    def use_cloudpickle(self):
        """Serializes with cloudpickle here and on every engine."""
        return self.client.direct_view().use_cloudpickle()

    def use_dill(self):
        """Serializes with dill here and on every engine."""
        return self.client.direct_view().use_dill()

    def use_pickle(self):
        """Back to the standard pickler here and on every engine."""
        return self.client.direct_view().use_pickle()


class _ParallelFunction(rf.ParallelFunction):
    """``@lview.parallel()``: the function on chunks of its arguments, one task each."""

    def __init__(self, view, f, dist="b", block=None, chunksize=None, ordered=True,
                 **flags):
        super().__init__(view, f, dist=dist, block=block, **flags)
        self.chunksize = chunksize
        self.ordered = ordered

    def __call__(self, *seqs):
        with self._flagged():
            return self.view._map_partitions(rf._call_on_chunk, self.func, seqs,
                                             block=self._block_flag(), fname=self.__name__,
                                             chunksize=self.chunksize, ordered=self.ordered)

    def map(self, *seqs):
        with self._flagged():
            return self.view.map(self.func, *seqs, block=self._block_flag(),
                                 chunksize=self.chunksize or 1, ordered=self.ordered)


__all__ = ["LazyMapIterator", "LoadBalancedView", "ViewExecutor", "make_spec"]
