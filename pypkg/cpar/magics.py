"""IPython magics for running code on engines: ``%px``, ``%%px``, ``%pxresult``,
``%pxconfig`` and ``%autopx`` (the names and flags of ipyparallel's magics).

They act on an *active view*: the ``DirectView`` last activated with ``view.activate()``
(or ``rc.activate()``), else a view on all the engines of the last ``Client`` made in the
shell (``rc[:]``, blocking, made when first needed). ``view.activate(suffix)`` registers a
second set of magics (``%px<suffix>``, ``%%px<suffix>``, ``%autopx<suffix>``,
``%pxresult<suffix>``, ``%pxconfig<suffix>``) bound to that view.

Code runs on the engines as an EXECUTE request (``view.execute``), through the engines'
IPython shell when they have one, so ``%px %matplotlib inline`` runs the line magic
there. ``%load_ext cpar`` registers the magics without a client.

Nothing here imports IPython unless an IPython shell is already running.
"""

import argparse
import re
import signal
import sys
import time
import weakref

from . import error
from .error import AlreadyDisplayedError
from .client.outputs import clear_output, ipython_shell, publish, show_execute_result

__all__ = ["ParallelMagics", "register_view", "register_client", "load_ipython_extension",
           "parse_targets", "AlreadyDisplayedError"]

_POLL = 0.05  # seconds between looks at the engines' output while a %px cell runs
# Output of a cell that ends within this many seconds is shown at the end, engine by
# engine; a longer cell's output is shown as it arrives.
_STREAM_HOLD = 0.25
_GROUPS = ("type", "engine", "order")

# Views activated while no IPython shell ran: suffix -> view, registered once one does.
_pending = {}


# -- helpers ------------------------------------------------------------------------------


def _usage_error(message):
    try:
        from IPython.core.error import UsageError
    except ImportError:  # pragma: no cover - magics only run inside IPython
        return ValueError(message)
    return UsageError(message)


def parse_targets(text):
    """Engine ids as written after ``--targets``: ``all``, ``3``, ``-1``, ``1,2``,
    ``[1, 2]``, ``::2``, ``1:3`` -> 'all', an int, a list or a slice."""
    if not isinstance(text, str):
        return text
    s = text.strip()
    if s in ("", "all", "None", "'all'", '"all"'):
        return "all"
    bracketed = s[:1] in "[(" and s[-1:] in "])"
    if bracketed:
        s = s[1:-1].strip()
    try:
        if ":" in s:
            parts = s.split(":")
            if len(parts) > 3:
                raise ValueError(s)
            return slice(*(int(p) if p.strip() else None for p in parts))
        if "," in s or bracketed:
            return [int(p) for p in s.split(",") if p.strip()]
        return int(s)
    except ValueError:
        raise _usage_error(f"invalid targets {text!r}: use all, an engine id (3), a list "
                           "(1,2 or [1,2]) or a slice (::2, 1:3)") from None


def _single(ar):
    """True for a result of one engine (its per-engine attributes are not lists)."""
    return not isinstance(ar.engine_id, list)


def _per_engine(ar, name):
    """A per-engine attribute of an AsyncResult, as a list with one entry per engine
    (None where the result has no such attribute)."""
    n = len(_engine_ids(ar))
    value = getattr(ar, name, None)
    if _single(ar):
        return [value]
    if isinstance(value, list) and len(value) == n:
        return value
    return [None] * n


def _display_outputs(ar, groupby):
    """ar's outputs with [stdout:N] headers, a single engine's too."""
    show = getattr(ar, "_display_outputs", None)
    if show is not None:
        show(groupby, headers=True)
    else:
        ar.display_outputs(groupby)


def _engine_ids(ar):
    eids = ar.engine_id
    return [eids] if not isinstance(eids, list) else list(eids)


def _print_block(header, text, stream):
    """``[stdout:N] text`` for one line, the header on its own line above several."""
    text = text.rstrip("\n")
    if not text:
        return
    if "\n" in text:
        stream.write(f"{header}\n{text}\n")
    else:
        stream.write(f"{header} {text}\n")
    stream.flush()


# -- option parsing -----------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _usage_error(f"{self.prog}: {message}")

    def exit(self, status=0, message=None):
        raise _usage_error(message or f"{self.prog}: bad arguments")


def _targets_arg(parser):
    parser.add_argument("-t", "--targets", type=parse_targets, default=None,
                        help="engines: all, 3, 1,2, [1,2], ::2, 1:3")


def _block_args(parser):
    parser.add_argument("--block", dest="block", action="store_const", const=True,
                        default=None, help="wait for the engines and show their output")
    parser.add_argument("--noblock", "-a", dest="block", action="store_const", const=False,
                        help="return the AsyncResult at once (shown by %%pxresult)")


def _output_args(parser):
    parser.add_argument("--group-outputs", dest="groupby", choices=_GROUPS, default=None,
                        help="order of the engines' output: by type (default), engine, "
                             "or order of submission")
    parser.add_argument("-o", "--out", dest="save_name", default=None,
                        help="store the AsyncResult in this variable")


def _px_parser(prog):
    p = _Parser(prog=prog, add_help=False)
    _targets_arg(p)
    _block_args(p)
    _output_args(p)
    p.add_argument("--stream", dest="stream", action="store_const", const=True,
                   default=None, help="show output as it arrives (default when blocking)")
    p.add_argument("--no-stream", dest="stream", action="store_const", const=False)
    p.add_argument("--local", action="store_true", help="also run the code here")
    p.add_argument("--verbose", dest="verbose", action="store_const", const=True,
                   default=None, help="say where the code runs")
    p.add_argument("--no-verbose", dest="verbose", action="store_const", const=False)
    p.add_argument("--progress-after", dest="progress_after", type=float, default=None,
                   metavar="SECONDS", help="show a progress bar once the engines took "
                                           "longer than this")
    p.add_argument("--signal-on-interrupt", dest="signal_on_interrupt", type=_signal_arg,
                   default=None, metavar="SIGNAL",
                   help="signal sent to the engines on Ctrl-C (a name such as SIGKILL or "
                        "a number; default SIGINT)")
    return p


def _signal_arg(text):
    """``--signal-on-interrupt``'s value: checked now, kept as written (``"SIGKILL"``,
    ``2``) for the message shown on Ctrl-C."""
    from .client.signals import signal_number

    try:
        signal_number(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return int(text) if text.strip().isdigit() else text.strip()


def _pxresult_parser(prog):
    p = _Parser(prog=prog, add_help=False)
    _output_args(p)
    return p


def _pxconfig_parser(prog):
    p = _Parser(prog=prog, add_help=False)
    _targets_arg(p)
    _block_args(p)
    p.add_argument("--verbose", dest="verbose", action="store_const", const=True,
                   default=None)
    p.add_argument("--no-verbose", dest="verbose", action="store_const", const=False)
    return p


_MAGIC_CALL = re.compile(r"^%%?(\w+)(\s|$)")
_NAMES = ("px", "pxresult", "pxconfig", "autopx")

_TOKEN = re.compile(r"\s*(\S+)")
_VALUE = re.compile(r"\s*(\[[^\]]*\]|\([^)]*\)|\S+)")


def _split_options(parser, line):
    """The leading options of ``line`` (as argv) and the rest of it (code).

    Options are taken from the start of the line as long as they are options of
    ``parser``; the first other word (or ``--``) starts the code."""
    argv = []
    pos = 0
    actions = parser._option_string_actions
    while True:
        m = _TOKEN.match(line, pos)
        if m is None:
            break
        tok = m.group(1)
        if tok == "--":
            pos = m.end()
            break
        name = tok.split("=", 1)[0]
        action = actions.get(name) if tok.startswith("-") else None
        if action is None:
            break
        pos = m.end()
        argv.append(tok)
        if action.nargs != 0 and "=" not in tok:
            v = _VALUE.match(line, pos)
            if v is None:
                raise _usage_error(f"{parser.prog}: {name} needs a value")
            argv.append(re.sub(r"\s+", "", v.group(1)))
            pos = v.end()
    return argv, line[pos:].strip()


# -- the magics ---------------------------------------------------------------------------


class ParallelMagics:
    """The magics of one suffix in one shell, bound to a view (see the module doc)."""

    def __init__(self, shell, suffix=""):
        self.shell = shell
        self.suffix = suffix
        self.verbose = False
        self.last_result = None
        self._view = None
        self._client_ref = None  # the client whose rc[:] is made when first needed
        self._autopx = False
        self._px_parser = _px_parser(f"%px{suffix}")
        self._pxresult_parser = _pxresult_parser(f"%pxresult{suffix}")
        self._pxconfig_parser = _pxconfig_parser(f"%pxconfig{suffix}")

    # -- the view ---------------------------------------------------------------------

    def set_view(self, view):
        self._view = view

    def set_client(self, client):
        """Acts on ``client[:]`` (blocking), made when a magic first needs it."""
        self._view = None
        self._client_ref = weakref.ref(client)

    @property
    def has_live_view(self):
        v = self._view
        return v is not None and not v.client.closed

    @property
    def view(self):
        if self._view is not None and self._view.client.closed:
            fallback = self._client_ref() if self._client_ref is not None else None
            if fallback is not None and not fallback.closed:
                self._view = None  # its client is gone: back to the registered client's
        if self._view is None and self._client_ref is not None:
            client = self._client_ref()
            if client is not None and not client.closed:
                self._view = client.direct_view("all")
                self._view.block = True
        if self._view is None:
            raise _usage_error(
                "no active view for the parallel magics: create a client "
                "(rc = cpar.Client()) or call view.activate()")
        if self._view.client.closed:
            raise _usage_error("the active view's client is closed: create a new client "
                               "or activate another view")
        return self._view

    # -- registration -----------------------------------------------------------------

    def register(self):
        s = self.suffix
        mm = self.shell.magics_manager
        mm.register_function(self.px, "line", f"px{s}")
        mm.register_function(self.cell_px, "cell", f"px{s}")
        mm.register_function(self.pxresult, "line", f"pxresult{s}")
        mm.register_function(self.pxconfig, "line", f"pxconfig{s}")
        mm.register_function(self.autopx, "line", f"autopx{s}")

    def unregister(self):
        self._disable_autopx(quiet=True)
        s = self.suffix
        mm = self.shell.magics_manager
        for kind, name in (("line", "px"), ("cell", "px"), ("line", "pxresult"),
                           ("line", "pxconfig"), ("line", "autopx")):
            mm.magics[kind].pop(f"{name}{s}", None)

    # -- %px / %%px -------------------------------------------------------------------

    def px(self, line=""):
        """Runs one line of code on the engines of the active view.

        %px [options] CODE

        Options (before the code): -t/--targets (all, 3, 1,2, [1,2], ::2, 1:3),
        --block, --noblock/-a (return the AsyncResult, do not wait), --stream/--no-stream,
        --group-outputs=type|engine|order, --local (also run it here), -o/--out NAME
        (store the AsyncResult), --verbose, --progress-after SECONDS."""
        argv, code = _split_options(self._px_parser, line)
        args = self._px_parser.parse_args(argv)
        if not code:
            raise _usage_error(f"%px{self.suffix}: no code to run")
        return self.parallel_execute(code, **vars(args))

    # IPython gives %px its line as written: {x} in the code is the engines' to expand.
    px._ipython_magic_no_var_expand = True

    def cell_px(self, line="", cell=None):
        """Runs the cell on the engines of the active view.

        %%px [options]

        -t/--targets (all, 3, 1,2, [1,2], ::2, 1:3), --block, --noblock/-a (return the
        AsyncResult, do not wait), --stream/--no-stream (show output as it arrives;
        default when blocking, unless --group-outputs is given),
        --group-outputs=type|engine|order (the output at the end, grouped), --local (run the
        cell here too), -o/--out NAME (store the AsyncResult), --verbose,
        --progress-after SECONDS (a progress bar once the engines took that long)."""
        argv, rest = _split_options(self._px_parser, line)
        if rest:
            raise _usage_error(f"%%px{self.suffix}: unrecognized arguments: {rest}")
        args = self._px_parser.parse_args(argv)
        return self.parallel_execute(cell or "", **vars(args))

    def parallel_execute(self, code, targets=None, block=None, stream=None, groupby=None,
                         local=False, save_name=None, verbose=None, progress_after=None,
                         signal_on_interrupt=None):
        """What ``%px`` does: sends ``code`` to the engines, then (blocking) shows what
        they printed and displayed as it arrives, and raises if some failed; non-blocking,
        returns the AsyncResult. ``signal_on_interrupt``: what Ctrl-C sends the engines
        (default SIGINT: the running code gets KeyboardInterrupt)."""
        view = self.view
        block = view.block if block is None else block
        verbose = self.verbose if verbose is None else verbose
        if stream is None:
            stream = block and groupby is None
        groupby = groupby or "type"
        if targets is not None:
            targets = _resolve_targets(view, targets)
        if verbose:
            how = "Parallel" if block else "Async parallel"
            shown = view.targets if targets is None else targets
            print(f"{how} execution on engine(s): {_targets_text(shown)}")
        try:
            ar = view.execute(code, silent=False, targets=targets, block=False)
        except (error.NoSuchEngine, error.NoEnginesRegistered,
                error.ConnectionClosed) as exc:
            raise _usage_error(f"%px{self.suffix}: {exc}") from None
        self.last_result = ar
        if save_name:
            self.shell.user_ns[save_name] = ar
        if local:
            self.shell.run_cell(code, store_history=False)
        if not block:
            return ar
        self._wait_and_show(ar, stream=stream, groupby=groupby,
                            progress_after=progress_after,
                            signal_on_interrupt=signal_on_interrupt)
        return None

    # -- waiting and output -----------------------------------------------------------

    def _wait_and_show(self, ar, stream=False, groupby="type", progress_after=None,
                       signal_on_interrupt=None):
        printer = _StreamPrinter(ar) if stream else None
        try:
            t0 = time.monotonic()
            while not ar.wait(_POLL):
                if printer is not None and time.monotonic() - t0 >= _STREAM_HOLD:
                    printer.poll()
                if progress_after is not None and time.monotonic() - t0 >= progress_after:
                    if printer is not None:
                        printer.poll(final=True)
                    # tqdm's bar when tqdm is installed (a widget in a notebook), else
                    # cpar's text bar; either ends its line, Ctrl-C included
                    ar.wait_interactive()
                    break
        except KeyboardInterrupt:
            self._interrupted(ar, printer, groupby, signal_on_interrupt)
            return
        if printer is not None:
            printer.finish()
        else:
            _display_outputs(ar, groupby)
            if not hasattr(ar, "execute_result"):  # an AsyncResult without rich outputs
                _show_rich(ar)
        self._raise_errors(ar, shown=printer is not None)

    def _interrupted(self, ar, printer, groupby="type", sig=None):
        """Ctrl-C while waiting: sends the engines ``sig`` (SIGINT: interrupts the
        engines' code, which ends with KeyboardInterrupt), shows what they output so far,
        and returns to the prompt."""
        sig = "SIGINT" if sig is None else sig
        sys.stderr.write(f"Received Keyboard Interrupt. Sending signal {sig} to engines...\n")
        sys.stderr.flush()
        interrupt = _is_sigint(sig)
        try:
            if interrupt:
                ar.abort()  # this request only: interrupted where it runs, else dropped
            else:
                ar._client.send_signal(sig, targets=_engine_ids(ar))
        except Exception as exc:  # noqa: BLE001 - still tell the user
            sys.stderr.write(f"could not signal the engines: {exc}\n")
        if printer is not None:
            printer.poll(final=True)
        else:
            _display_outputs(ar, groupby)
        if not interrupt:
            return
        running = [eid for eid, md in zip(_engine_ids(ar), _per_engine(ar, "metadata"))
                   if md is not None and isinstance(md.get("error"), error.TaskAborted)]
        where = f" on engine(s) {', '.join(map(str, running))}" if running else ""
        sys.stderr.write(f"KeyboardInterrupt: interrupted the %px{self.suffix} code{where}"
                         " (the engines are ready for more)\n")
        sys.stderr.flush()

    def _raise_errors(self, ar, shown=False):
        """Raises the request's error, if any: an engine's own error as it is (IPython
        shows its traceback); for several engines, with the output ``shown`` as it came,
        their tracebacks printed here and AlreadyDisplayedError ("N errors"), else the
        CompositeError itself (IPython shows every traceback)."""
        try:
            ar.get(0)
        except error.TimeoutError:
            return
        except error.CompositeError as exc:
            if not shown:
                raise exc from None
            out = sys.stderr
            for e in exc.elist:
                out.write(_format_error(e))
            out.flush()
            raise AlreadyDisplayedError(exc) from None

    # -- %pxresult --------------------------------------------------------------------

    def pxresult(self, line=""):
        """Waits for the last %px result and shows the engines' output (as blocking %px).

        %pxresult [--group-outputs=type|engine|order] [-o NAME]"""
        args = self._pxresult_parser.parse_args(_split_args(self._pxresult_parser, line))
        ar = self.last_result
        if ar is None:
            raise _usage_error(f"%pxresult{self.suffix}: no %px result yet (run "
                               f"%px{self.suffix} --noblock CODE first)")
        if args.save_name:
            self.shell.user_ns[args.save_name] = ar
        self._wait_and_show(ar, stream=False, groupby=args.groupby or "type")

    # -- %pxconfig --------------------------------------------------------------------

    def pxconfig(self, line=""):
        """Changes the defaults of the active view's magics.

        %pxconfig [-t/--targets TARGETS] [--block | --noblock/-a] [--verbose | --no-verbose]

        Without options, shows them."""
        args = self._pxconfig_parser.parse_args(_split_args(self._pxconfig_parser, line))
        view = self.view
        if args.targets is not None:
            view.targets = _resolve_targets(view, args.targets)
        if args.block is not None:
            view.block = args.block
        if args.verbose is not None:
            self.verbose = args.verbose
        if args.targets is None and args.block is None and args.verbose is None:
            print(f"%px{self.suffix}: targets={view.targets!r} block={view.block} "
                  f"verbose={self.verbose}")

    # -- %autopx ----------------------------------------------------------------------

    def autopx(self, line=""):
        """Toggles a mode where every cell runs on the engines (as %%px), until %autopx
        again."""
        if self._autopx:
            self._disable_autopx()
        else:
            self._enable_autopx()

    def _enable_autopx(self):
        self.view  # noqa: B018 - fail now, not at the next cell, when there is no view
        cleanup = self.shell.input_transformers_cleanup
        if self._transform_cell not in cleanup:
            cleanup.append(self._transform_cell)
        self._autopx = True
        print(f"%autopx{self.suffix} enabled")

    def _disable_autopx(self, quiet=False):
        if not self._autopx:
            return
        cleanup = self.shell.input_transformers_cleanup
        while self._transform_cell in cleanup:
            cleanup.remove(self._transform_cell)
        self._autopx = False
        if not quiet:
            print(f"%autopx{self.suffix} disabled")

    def _transform_cell(self, lines):
        """Input transformer of %autopx: the cell becomes a %%px cell, except a cell that
        toggles %autopx itself or uses another parallel magic (%px, %%px, %pxresult,
        %pxconfig: they run here, as written)."""
        if not self._autopx:
            return lines
        text = "".join(lines)
        first = text.lstrip().split("\n", 1)[0].strip()
        if not text.strip() or self._is_parallel_magic(first):
            return lines
        return [f"%%px{self.suffix}\n"] + list(lines)

    # Not run when IPython only checks whether the input is complete.
    _transform_cell.has_side_effects = True

    def _is_parallel_magic(self, line):
        m = _MAGIC_CALL.match(line)
        if m is None:
            return False
        suffixes = list(_magics_of(self.shell)) or [self.suffix]
        return m.group(1) in {f"{name}{sfx}" for name in _NAMES for sfx in suffixes}


def _split_args(parser, line):
    argv, rest = _split_options(parser, line)
    if rest:
        raise _usage_error(f"{parser.prog}: unrecognized arguments: {rest}")
    return argv


def _format_error(exc):
    """One engine's error: ``[Engine N] ename: evalue`` and its remote traceback."""
    eid = getattr(exc, "engine_id", None)
    ename = getattr(exc, "ename", type(exc).__name__)
    evalue = getattr(exc, "evalue", None)
    if evalue is None:
        evalue = getattr(exc, "message", str(exc))
    prefix = f"[Engine {eid}] " if eid is not None else ""
    evalue = str(evalue)
    if prefix and evalue.startswith(prefix):
        evalue = evalue[len(prefix):]
    text = f"{prefix}{ename}: {evalue}\n"
    tb = getattr(exc, "traceback", "") or ""
    if isinstance(tb, (list, tuple)):
        tb = "\n".join(tb)
    tb = tb.rstrip("\n")
    last = f"{ename}: {evalue}"
    if tb.endswith("\n" + last):  # the header above says it already
        tb = tb[:-len(last) - 1]
    if tb.strip():
        text += tb + "\n"
    return text + "\n"


def _is_sigint(sig):
    from .client.signals import signal_number

    return signal_number(sig) == signal.SIGINT


def _resolve_targets(view, targets):
    """``targets`` as engine ids: negative ids and slices taken from the client's ids
    (``-1``: the last engine, ``:``: every engine now); 'all' and the rest unchanged."""
    if isinstance(targets, str) or targets is None:
        return targets
    ids = list(view.client.ids)
    if isinstance(targets, slice):
        return ids[targets]
    if isinstance(targets, int) and targets < 0:
        if -targets > len(ids):
            raise _usage_error(f"no engine {targets}: {len(ids)} engine(s) registered")
        return ids[targets]
    if isinstance(targets, (list, tuple)):
        return [_resolve_targets(view, t) for t in targets]
    return targets


def _targets_text(targets):
    """Targets as the verbose header shows them: ``all``, ``3``, ``0, 1, 2``."""
    if isinstance(targets, (list, tuple, range)):
        t = list(targets)
        if len(t) > 10:
            t = t[:4] + ["..."] + t[-4:]
        return ", ".join(map(str, t))
    return str(targets)


class _StreamPrinter:
    """Shows what the engines output while the request runs: new stdout/stderr whole
    lines at a time (``[stdout:N] ...``), and, when the result records its output events
    (``ar.output_events``), display outputs as they come, in order with the text."""

    def __init__(self, ar):
        self.ar = ar
        self.eids = _engine_ids(ar)
        n = len(self.eids)
        self.use_events = hasattr(ar, "output_events")
        self.shown = {"stdout": [0] * n, "stderr": [0] * n}  # text mode: chars shown
        self.seen = [0] * n  # events mode: events handled
        self.pending = [{"stdout": "", "stderr": ""} for _ in range(n)]

    def poll(self, final=False):
        if self.use_events:
            self._poll_events(final)
        else:
            self._poll_text(final)

    def finish(self):
        """The rest of the output, then the results (``Out[N:k]:``)."""
        self.poll(final=True)
        _show_rich(self.ar, outputs=not self.use_events)

    def _poll_text(self, final):
        for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
            texts = _per_engine(self.ar, name)
            shown = self.shown[name]
            for i, text in enumerate(texts):
                text = text or ""
                if final:
                    end = len(text)
                else:
                    end = text.rfind("\n", shown[i]) + 1
                if end > shown[i]:
                    _print_block(f"[{name}:{self.eids[i]}]", text[shown[i]:end], stream)
                    shown[i] = end

    def _poll_events(self, final):
        for i, events in enumerate(_per_engine(self.ar, "output_events")):
            events = events or []
            new = events[self.seen[i]:]
            self.seen[i] = len(events)
            for kind, value in new:
                if kind in ("stdout", "stderr"):
                    self.pending[i][kind] += value
                    continue
                self._flush_text(i, True)  # what was printed before it goes first
                if kind == "display_data":
                    _show_output(self.eids[i], value)
                elif kind == "clear_output":
                    clear_output(bool((value or {}).get("wait")))
            self._flush_text(i, final)

    def _flush_text(self, i, final):
        for name, stream in (("stdout", sys.stdout), ("stderr", sys.stderr)):
            text = self.pending[i][name]
            end = len(text) if final else text.rfind("\n") + 1
            if end > 0:
                _print_block(f"[{name}:{self.eids[i]}]", text[:end], stream)
                self.pending[i][name] = text[end:]


def _show_rich(ar, outputs=True):
    """Shows what ``display()`` published on the engines (``[output:N]``) and the values
    of their last expressions (``Out[N:k]:``)."""
    eids = _engine_ids(ar)
    if outputs:
        for eid, outs in zip(eids, _per_engine(ar, "outputs")):
            for out in outs or ():
                _show_output(eid, out)
    for eid, res in zip(eids, _per_engine(ar, "execute_result")):
        if res:
            show_execute_result(eid, res)
    sys.stdout.flush()


def _show_output(eid, out):
    print(f"[output:{eid}]")
    publish(out.get("data") or {}, out.get("metadata") or {})


# -- registration -------------------------------------------------------------------------


def _magics_of(shell):
    table = getattr(shell, "_cpar_parallel_magics", None)
    if table is None:
        table = {}
        shell._cpar_parallel_magics = table
    return table


def _magics_for(shell, suffix):
    """The magics of ``suffix`` in ``shell``, made and registered if new (views activated
    before the shell existed are taken up here)."""
    table = _magics_of(shell)
    m = table.get(suffix)
    if m is None:
        m = table[suffix] = ParallelMagics(shell, suffix)
        m.register()
    for sfx in list(_pending):
        view = _pending.pop(sfx)
        if view.client.closed:
            continue  # activated before this shell, and closed since
        if sfx == suffix:
            m.set_view(view)
        else:
            _magics_for(shell, sfx).set_view(view)
    return m


def register_view(view, suffix=""):
    """Makes ``view`` the one ``%px<suffix>`` & co. act on (``DirectView.activate``).

    Without a running IPython shell the view is remembered, for a shell that loads the
    magics later (``%load_ext cpar``)."""
    shell = ipython_shell()
    if shell is None:
        _pending[suffix] = view
        return None
    m = _magics_for(shell, suffix)
    m.set_view(view)
    m.verbose = False  # a view activated starts from the default settings
    return m


def register_client(client):
    """Called by ``Client()``: inside IPython, ``%px`` & co. act on ``client[:]`` unless
    another view was activated explicitly (and its client is still open)."""
    shell = ipython_shell()
    if shell is None:
        return None
    m = _magics_for(shell, "")
    if not m.has_live_view:
        m.set_client(client)
    return m


def load_ipython_extension(ip):
    """``%load_ext cpar``: registers the magics (they act on the next client made, or the
    view activated)."""
    _magics_for(ip, "")


def unload_ipython_extension(ip):
    """``%unload_ext cpar``: removes every parallel magic from the shell."""
    table = _magics_of(ip)
    for m in list(table.values()):
        m.unregister()
    table.clear()
