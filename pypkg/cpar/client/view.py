"""DirectView: requests addressed to chosen engines (ipyparallel's ``DirectView``).

A request to several engines is one message to the controller, which fans it out; each
engine answers with its own reply. ``push``/``pull``/``scatter``/``gather`` are ``apply``
calls of small functions (``remotefunctions``) that act on the engines' namespaces.
"""

import builtins
import contextlib
import dis
import os
import sys
import types

from .. import _core, serialize
from . import remotefunctions as rf
from .asyncresult import AsyncMapResult
from .executereply import _execute_result
from .viewbase import View, _check_label, _fname


def _sliceable(seq, what="scatter"):
    """``seq`` itself when it can be sliced (lists, arrays, DataFrames...), else a list of
    its items; TypeError for what has no order to split by (a scalar, a 0-d array, a
    dict or set)."""
    if isinstance(seq, (dict, set, frozenset)):
        raise TypeError(f"{what} cannot split a {type(seq).__name__} (it has no order to "
                        f"split by): push it whole, or {what} a list of its items")
    if hasattr(seq, "__getitem__") and hasattr(seq, "__len__"):
        try:
            len(seq)
        except TypeError:  # a 0-d numpy array
            raise TypeError(f"{what} needs a sequence to split, not a 0-d "
                            f"{type(seq).__name__}: push it whole") from None
        return seq
    try:
        return list(seq)
    except TypeError:
        raise TypeError(f"{what} needs a sequence to split (a list, an array, ...), not "
                        f"{type(seq).__name__}: push a single value whole") from None


def _need_targets(what, n_items, tlist):
    if n_items and not tlist:
        raise ValueError(f"{what} of {n_items} item(s) needs at least one engine: the "
                         "view's targets are empty")


class DirectView(View):
    """A view on ``targets``: an engine id (results unwrapped), a list of ids, or 'all'
    (the engines live at the time of each request).

    ``block`` (inherited from the client when the view is made) says whether ``apply``,
    ``push``, ``pull``, ``scatter``, ``gather``, ``execute`` and ``map`` wait for their
    results or return an ``AsyncResult`` at once.
    """

    def __init__(self, client, targets="all", block=None):
        super().__init__(client, block=block)
        self.targets = targets

    def _submit(self, *args, label=None, **kwargs):
        return self._sent(self.client._submit(*args, **kwargs), _check_label(label))

    def _submit_many(self, *args, label=None, **kwargs):
        return self._sent(self.client._submit_many(*args, **kwargs), _check_label(label))

    def get_result(self, indices_or_msg_ids=None, block=None, owner=True):
        """The AsyncResult of earlier requests: indices into this view's ``history``
        (None: the last request sent through it), msg ids, or a list of those; see
        ``Client.get_result``."""
        if indices_or_msg_ids is None:
            indices_or_msg_ids = -1
        jobs = indices_or_msg_ids
        if not isinstance(jobs, (list, tuple, set)):
            jobs = [jobs]
        ids = []
        for job in jobs:
            if isinstance(job, int) and not isinstance(job, bool):
                try:
                    job = self._history[job]
                except IndexError:
                    raise IndexError(f"no request {job} in this view's history "
                                     f"({len(self._history)} remembered)") from None
            ids.append(job)
        if not isinstance(indices_or_msg_ids, (list, tuple, set)):
            ids = ids[0]
        return self.client.get_result(ids, block=block, owner=owner)

    # -- targets ------------------------------------------------------------------------

    def _resolve(self, targets=None):
        return self.client._build_targets(self.targets if targets is None else targets)

    def _block(self, block):
        return self.block if block is None else block

    def __len__(self):
        if isinstance(self.targets, int):
            return 1
        if self.targets == "all" or self.targets is None:
            return len(self.client.ids)
        return len(self._resolve()[1])

    def __repr__(self):
        t = self.targets
        if isinstance(t, (list, tuple)) and len(t) > 16:
            shown = f"[{', '.join(map(str, t[:4]))}, ..., {', '.join(map(str, t[-4:]))}]"
        else:
            shown = str(list(t)) if isinstance(t, (list, tuple, range)) else str(t)
        return f"<DirectView {shown}>"

    # -- apply --------------------------------------------------------------------------

    def _apply(self, f, args=(), kwargs=None, block=None, targets=None, what=None,
               labels=None):
        single, tlist = self._resolve(targets)
        payload = serialize.pack_apply_message(f, args, kwargs or {}, what=what,
                                               labels=labels)
        ar = self._submit(_core.MSG_APPLY, tlist, payload, _fname(f), single)
        return ar.get() if self._block(block) else ar

    def execute(self, code, silent=True, targets=None, block=None, label=None):
        """Runs the code string on every target; returns its AsyncResult (finished when
        ``block``; remote errors raise then), whose ``get()`` gives an ExecuteReply per
        engine (cpar.client.executereply). ``silent`` (the default, as in ipyparallel):
        no ``Out[n]`` (``execute_result``) and no execution count increment; pass
        ``silent=False`` for the value of the cell's trailing expression. ``label``: the
        task database's label of this request (default: the view's ``label``)."""
        if not isinstance(code, str):
            raise TypeError(f"execute needs the code as a str, not {type(code).__name__}")
        single, tlist = self._resolve(targets)
        opts = b'{"silent": true}' if silent else b'{"silent": false}'
        ar = self._submit(_core.MSG_EXECUTE, tlist, [code.encode("utf-8"), opts],
                          "execute", single, cls=_execute_result, label=label)
        if self._block(block):
            ar.get()
        return ar

    def run(self, filename, targets=None, block=None, label=None):
        """Executes the Python file ``filename`` (read here) on every target."""
        with open(os.fspath(filename), encoding="utf-8") as f:
            code = f.read()
        return self.execute(code, targets=targets, block=block, label=label)

    def parallel(self, dist="b", block=None):
        """Decorator: calling the function runs it on partitions of its arguments, one per
        engine, and joins the results; ``.map`` maps it element-wise."""
        return lambda f: rf.ParallelFunction(self, f, dist=dist, block=block)

    # -- map ----------------------------------------------------------------------------

    def _map_partitions(self, helper, f, seqs, block=None, fname=None,
                        return_exceptions=False, label=None):
        if not seqs:
            raise TypeError("map needs at least one sequence")
        _, tlist = self._resolve()
        seqs = [_sliceable(s, "map") for s in seqs]
        n_items = min(len(s) for s in seqs)
        _need_targets("map", n_items, tlist)
        parts = []
        sizes = []
        for eid, (lo, hi) in zip(tlist, rf.partition_bounds(n_items, len(tlist))):
            if hi > lo:
                sizes.append((hi, lo))
                chunks = tuple(s[lo:hi] for s in seqs)
                parts.append((eid, serialize.pack_apply_message(
                    helper, (f,) + chunks, {}, what=f"map({_fname(f)})",
                    labels=["the mapped function"]
                    + [f"sequence {i} (items {lo}-{hi - 1})" for i in range(len(chunks))])))
        ar = self._submit_many(_core.MSG_APPLY, parts, fname or _fname(f),
                                      reduce=rf.join_partitions, cls=AsyncMapResult,
                                      n_items=n_items if helper is rf._map_chunk else None,
                                      label=label)
        ar._return_exceptions = bool(return_exceptions)
        if helper is rf._map_chunk:  # progress counts elements, as len does
            ar._part_sizes = [hi - lo for hi, lo in sizes]
        return ar.get() if self._block(block) else ar

    def map(self, f, *sequences, block=None, return_exceptions=False, label=None,
            **kwargs):
        """``f`` over the sequences, split in one contiguous part per engine; the result
        is a list (an AsyncResult of one unless ``block``). With ``return_exceptions``
        a part that failed gives its error (once) in place of its elements. ``label``:
        the task database's label of its requests (default: the view's)."""
        return self._map_partitions(rf._map_chunk, f, sequences, block=block,
                                    return_exceptions=return_exceptions, label=label)

    def imap(self, f, *sequences, **kwargs):
        """Like ``map``, as an iterator over the results (each engine's part as soon as
        it and the parts before it arrived)."""
        from .executor import LazyMapIterator

        return LazyMapIterator(iter(self.map_async(f, *sequences)))

    # -- namespaces ---------------------------------------------------------------------

    def push(self, ns, targets=None, block=None, track=None):
        """Binds every name of the dict ``ns`` in the engines' namespaces."""
        if not isinstance(ns, dict):
            raise TypeError(f"push needs a dict, not {type(ns).__name__}")
        return self._apply(rf._push, (ns,), None, block=block, targets=targets, what="push",
                           labels=["ns"])

    def pull(self, names, targets=None, block=None):
        """The value of ``names`` (a name, or a list of names) on each engine."""
        if not isinstance(names, (str, list, tuple, set)):
            raise TypeError(f"names must be a str or a list of str, not {names!r}")
        if not isinstance(names, str):
            names = list(names)
        return self._apply(rf._pull, (names,), None, block=block, targets=targets)

    def update(self, ns):
        """``push(ns)`` with the view's ``block``."""
        return self.push(ns)

    def get(self, key_s):
        """``pull(key_s, block=True)``."""
        return self.pull(key_s, block=True)

    def __getitem__(self, key):
        if isinstance(key, str):
            return self.get(key)
        raise TypeError(f"view[name] needs a str name, not {key!r}")

    def __setitem__(self, key, value):
        self.update({key: value})

    def scatter(self, key, seq, dist="b", flatten=False, targets=None, block=None,
                track=None):
        """Splits ``seq`` (a list, a numpy array along axis 0, any sequence) into one
        contiguous part per engine and binds each part to ``key`` on its engine. With
        ``flatten``, parts of length one are bound as their single element."""
        if dist != "b":
            raise ValueError(f"only block distribution ('b') is supported, not {dist!r}")
        single, tlist = self._resolve(targets)
        seq = _sliceable(seq)
        _need_targets("scatter", len(seq), tlist)
        parts = []
        for eid, (lo, hi) in zip(tlist, rf.partition_bounds(len(seq), len(tlist))):
            part = seq[lo:hi]
            if flatten and hi - lo == 1:
                part = part[0]
            parts.append((eid, serialize.pack_apply_message(
                rf._push, ({key: part},), {}, what=f"scatter (items {lo}-{hi - 1})",
                labels=["ns"])))
        ar = self._submit_many(_core.MSG_APPLY, parts, "scatter",
                                      reduce=lambda results: None)
        if self._block(block):
            ar.get()
            return None
        return ar

    def gather(self, key, dist="b", targets=None, block=None):
        """Pulls ``key`` from every engine and joins the parts (numpy arrays along axis
        0, sequences into one list): the inverse of ``scatter``."""
        if dist != "b":
            raise ValueError(f"only block distribution ('b') is supported, not {dist!r}")
        _, tlist = self._resolve(targets)
        payload = serialize.pack_apply_message(rf._pull, (key,), {})
        ar = self._submit(_core.MSG_APPLY, tlist, payload, "gather", False,
                                 reduce=rf.join_partitions, cls=AsyncMapResult)
        return ar.get() if self._block(block) else ar

    @contextlib.contextmanager
    def sync_imports(self, local=True, quiet=False):
        """``with view.sync_imports(): import numpy`` imports here and on the engines.

        Only the import statements written directly in the ``with`` block count. Each is
        repeated on the engines as written: ``import a.b as c``, ``from a import b as d``
        and ``from a import *`` bind the same names there. With ``local=False`` the
        imports happen on the engines only (a module missing here is then tolerated)."""
        user_frame = sys._getframe(2)  # generator <- contextlib __enter__ <- user code
        real_import = builtins.__import__
        requests = []

        def sync_import(name, globals=None, locals=None, fromlist=(), level=0):
            caller = sys._getframe(1)
            if caller is user_frame and level == 0:
                fl = tuple(fromlist or ())
                if not quiet:
                    if fl:
                        print(f"importing {','.join(fl)} from {name} on engine(s)")
                    else:
                        print(f"importing {name} on engine(s)")
                stmt = _import_statement(name, fl, caller)
                requests.append(self._apply(rf._exec_import, (stmt,), None, block=False))
            if local or caller is not user_frame or name in sys.modules:
                return real_import(name, globals, locals, fromlist, level)
            return _Absent(name.partition(".")[0])

        builtins.__import__ = sync_import
        try:
            yield
        finally:
            builtins.__import__ = real_import
        for ar in requests:
            ar.get()

    @property
    def importer(self):
        """``with view.importer: import re`` imports here and on the engines (the
        ``sync_imports()`` context manager, as a property)."""
        return self.sync_imports(True)

    def clear(self, targets=None, block=None):
        """Empties the engines' namespaces (``Client.clear`` on this view's targets)."""
        return self.client.clear(targets=self.targets if targets is None else targets,
                                 block=self._block(block))

    def activate(self, suffix=""):
        """Makes this view the one the ``%px`` magics (``%px<suffix>`` etc.) act on.

        The view is recorded in ``client.active_views[suffix]``; when the magics are
        available (``cpar.magics``) and an IPython shell runs, they are registered."""
        views = getattr(self.client, "active_views", None)
        if views is None:
            views = self.client.active_views = {}
        views[suffix] = self
        try:
            from .. import magics
        except ImportError:
            return
        register = getattr(magics, "register_view", None)
        if register is not None:
            register(self, suffix)

    # -- serialization ------------------------------------------------------------------

    def use_cloudpickle(self):
        """Serializes with cloudpickle here and on the engines."""
        serialize.use_cloudpickle()
        return self._apply(serialize.use_cloudpickle)

    def use_dill(self):
        """Serializes with dill here and on the engines."""
        serialize.use_dill()
        return self._apply(serialize.use_dill)

    def use_pickle(self):
        """Back to the standard pickler (the default) here and on the engines."""
        serialize.use_pickle()
        return self._apply(serialize.use_pickle)

    # -- housekeeping -------------------------------------------------------------------

    def abort(self, jobs=None, targets=None, block=None, force=False, grace=3.0):
        """Aborts ``jobs`` (AsyncResults or msg ids; None: every outstanding request of
        the client): see ``AsyncResult.abort``, ``force=True`` included."""
        return self.client.abort(jobs, force=force, grace=grace)

    def shutdown(self, targets=None, hub=False, block=True):
        """Stops this view's engines (with ``hub=True`` the controller too)."""
        _, tlist = self._resolve(targets)
        return self.client.shutdown(targets=tlist, hub=hub, block=block)


class _Absent(types.ModuleType):
    """What ``sync_imports(local=False)`` binds here for a module imported on the engines
    only: a stand-in whose attributes are stand-ins too."""

    def __getattr__(self, attr):
        if attr.startswith("__"):
            raise AttributeError(attr)
        return _Absent(f"{self.__name__}.{attr}")

    def __repr__(self):
        return f"<module {self.__name__!r} (imported on the engines only)>"


_STORES = frozenset({"STORE_NAME", "STORE_FAST", "STORE_GLOBAL", "STORE_DEREF"})


def _import_statement(name, fromlist, frame):
    """The import statement the frame is executing (its IMPORT_NAME of ``name``), as
    source: the bytecode after IMPORT_NAME shows the names it binds."""
    plain = f"from {name} import {', '.join(fromlist)}" if fromlist else f"import {name}"
    try:
        instrs = [i for i in dis.get_instructions(frame.f_code)]
        at = next(k for k, ins in enumerate(instrs) if ins.offset == frame.f_lasti)
    except (StopIteration, TypeError, ValueError):
        return plain
    if instrs[at].opname != "IMPORT_NAME" or instrs[at].argval != name:
        return plain
    rest = instrs[at + 1:]
    if fromlist:
        if "*" in fromlist:
            return f"from {name} import *"
        pairs = []
        k = 0
        while k + 1 < len(rest) and rest[k].opname == "IMPORT_FROM" \
                and rest[k + 1].opname in _STORES:
            pairs.append((rest[k].argval, rest[k + 1].argval))
            k += 2
        if not pairs:
            return plain
        return f"from {name} import " + ", ".join(
            a if a == b else f"{a} as {b}" for a, b in pairs)
    k = 0
    while k < len(rest) and rest[k].opname in ("IMPORT_FROM", "SWAP", "POP_TOP", "ROT_TWO"):
        k += 1
    if k < len(rest) and rest[k].opname in _STORES:
        target = rest[k].argval
        if k == 0 and target == name.partition(".")[0]:
            return f"import {name}"
        return f"import {name} as {target}"
    return plain
