"""Progress bars where a person waits: ``wait_interactive``, ``%px --progress-after`` and
the engines registering in ``cpar cluster start``.

When `tqdm <https://tqdm.github.io>`_ is installed the bar is tqdm's: ``tqdm.auto`` in a
notebook (a widget when ipywidgets is there too), tqdm's text bar on a stream otherwise.
Without tqdm (it is optional) cpar draws its own: a text bar rewritten in place with
``\\r``::

    apply: 100%|##############################| 4/4 tasks [00:01, 3.2 tasks/s]

and in a notebook an ``ipywidgets`` progress bar when ipywidgets is importable, else a
text line updated in place through ``IPython.display``.
"""

import importlib.util
import os
import sys
import time

_BAR_WIDTH = 30


def _shell():
    ip = sys.modules.get("IPython")
    if ip is None:
        return None
    try:
        return ip.get_ipython()
    except Exception:  # noqa: BLE001
        return None


def _in_notebook():
    return type(_shell()).__name__ == "ZMQInteractiveShell"


def _has_ipywidgets():
    if "ipywidgets" in sys.modules:
        return True
    try:
        return importlib.util.find_spec("ipywidgets") is not None
    except (ImportError, ValueError):
        return False


def _clock(seconds):
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def format_bar(label, done, total, elapsed, width=_BAR_WIDTH, unit="tasks"):
    """One line of cpar's own text bar, tqdm-like.

    Parameters
    ----------
    label : str
        What is counted, shown first (``"apply"``, ``"engines"``).
    done, total : int
        How many have finished, out of how many.
    elapsed : float
        Seconds since the start (for the rate).
    width : int
        Characters of the bar itself.
    unit : str
        The name of one item (``"tasks"``, ``"engines"``).

    Returns
    -------
    str
        ``"apply:  50%|#####     | 2/4 tasks [00:01, 2.0 tasks/s]"``.
    """
    frac = done / total if total else 1.0
    filled = int(round(frac * width))
    rate = done / elapsed if elapsed > 0 else 0.0
    return (f"{label}: {frac * 100:3.0f}%|{'#' * filled}{' ' * (width - filled)}| "
            f"{done}/{total} {unit} [{_clock(elapsed)}, {rate:.1f} {unit}/s]")


class _TextBar:
    """cpar's own bar on a stream (tqdm is not installed)."""

    def __init__(self, stream, total, label, unit):
        self.stream = stream
        self.total = total
        self.label = label
        self.unit = unit
        self.t0 = time.monotonic()
        self.last = 0

    def _line(self, done):
        return format_bar(self.label, done, self.total, time.monotonic() - self.t0,
                          unit=self.unit)

    def update(self, done):
        line = self._line(done)
        pad = " " * max(0, self.last - len(line))
        self.stream.write("\r" + line + pad)
        self.stream.flush()
        self.last = len(line)

    def close(self, done):
        self.update(done)
        self.stream.write("\n")
        self.stream.flush()


class _WidgetBar:
    """An ipywidgets bar in a notebook (tqdm is not installed)."""

    def __init__(self, total, label, unit):
        import ipywidgets
        from IPython.display import display

        self.total = total
        self.label = label
        self.unit = unit
        self.t0 = time.monotonic()
        self.bar = ipywidgets.IntProgress(min=0, max=max(total, 1), description=label)
        self.text = ipywidgets.HTML()
        self.box = ipywidgets.HBox([self.bar, self.text])
        display(self.box)

    def update(self, done):
        self.bar.value = done
        self.text.value = format_bar(self.label, done, self.total,
                                     time.monotonic() - self.t0, unit=self.unit)

    def close(self, done):
        self.update(done)
        self.bar.bar_style = "success" if done >= self.bar.max else "warning"


class _DisplayBar:
    """A text line updated in place by ``IPython.display`` (no tqdm, no ipywidgets)."""

    def __init__(self, total, label, unit):
        from IPython.display import display

        self.total = total
        self.label = label
        self.unit = unit
        self.t0 = time.monotonic()
        self.handle = display("", display_id=True)
        if self.handle is None:  # no IPython shell to display in
            raise RuntimeError("no display")

    def update(self, done):
        self.handle.update(format_bar(self.label, done, self.total,
                                      time.monotonic() - self.t0, unit=self.unit))

    def close(self, done):
        self.update(done)


def _tqdm_class(rich):
    """tqdm's bar class for this place (``rich``: a notebook widget is wanted), made not
    to start tqdm's monitor thread; None when tqdm cannot be imported."""
    try:
        if rich:
            from tqdm.auto import tqdm as base
        else:
            from tqdm.std import tqdm as base
    except ImportError:
        return None
    # tqdm's monitor thread only tunes miniters of bars that loop by themselves; these
    # bars are updated by their owner, and a thread left behind by a progress bar would
    # outlive it in the user's process.
    return type("CparTqdm", (base,), {"monitor_interval": 0})


def _terminal_size(stream):
    """``{"ncols": ..., "nrows": ...}`` of the terminal ``stream`` writes to; ``{}`` for
    anything else (tqdm then finds out itself). A terminal that reports no size (a new
    pseudo terminal) counts as 80 x 24: tqdm would otherwise draw nothing at all."""
    try:
        if not stream.isatty():
            return {}
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, ValueError, OSError):
        return {}
    return {"ncols": size.columns or 80, "nrows": size.lines or 24}


class _TqdmBar:
    """A tqdm bar whose count is set from outside (``update(done)``)."""

    def __init__(self, cls, total, label, unit, stream, notebook):
        fmt = ("{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} " + unit
               + " [{elapsed}<{remaining}, {rate_fmt}]")
        kwargs = dict(total=total, desc=label, unit=f" {unit}", bar_format=fmt,
                      leave=True, mininterval=0.1)
        if not notebook:
            kwargs.update(file=stream, **_terminal_size(stream))
        self.bar = cls(**kwargs)

    def update(self, done):
        step = done - self.bar.n
        if step > 0:
            self.bar.update(step)

    def close(self, done):
        self.update(done)
        self.bar.close()


def progress_bar(total, label, unit="tasks", stream=None, widget=None):
    """A progress bar counting ``total`` items: tqdm's when tqdm is installed, else
    cpar's own (see the module's description).

    Parameters
    ----------
    total : int
        How many items there are.
    label : str
        Shown before the bar.
    unit : str
        The name of one item, as in ``"4/4 tasks"``.
    stream : file, optional
        Where a text bar goes (default: ``sys.stdout`` as it is when the bar is made).
    widget : bool, optional
        True: a notebook bar (when an IPython shell is there to show it); False: a text
        bar; None (default): a notebook bar when running in a notebook's kernel.

    Returns
    -------
    object
        A bar with ``update(done)`` (the number finished so far) and ``close(done)``
        (the last count; a text bar then ends its line).
    """
    if widget is None:
        widget = _in_notebook()
    rich = bool(widget) and _shell() is not None
    stream = sys.stdout if stream is None else stream
    cls = _tqdm_class(rich and _has_ipywidgets())
    if cls is not None:
        notebook = any(b.__module__ == "tqdm.notebook" for b in cls.__mro__)
        try:
            return _TqdmBar(cls, total, label, unit, stream, notebook)
        except ImportError:  # tqdm.notebook without a usable ipywidgets: a text bar
            cls = _tqdm_class(False)
            return _TqdmBar(cls, total, label, unit, stream, False)
    if rich:
        for make in (_WidgetBar, _DisplayBar):
            try:
                return make(total, label, unit)
            except Exception:  # noqa: BLE001 - no ipywidgets, no shell: a plainer bar
                continue
    return _TextBar(stream, total, label, unit)


def wait_interactive(ar, interval=0.1, timeout=-1, widget=None):
    """Waits for ``ar`` (up to ``timeout`` seconds; negative or None: no limit), showing
    how many of its tasks (one per engine and request) have finished.

    The bar is closed however the wait ends (a timeout, Ctrl-C), showing the count
    reached."""
    sizes = getattr(ar, "_part_sizes", None)  # a direct map: elements, not parts
    total = sum(sizes) if sizes is not None else len(ar._slots)
    deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
    bar = progress_bar(total, ar._fname, unit="tasks", widget=widget)
    try:
        while not ar.done():
            bar.update(ar.progress)
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                break
            ar.wait(interval if left is None else min(interval, left))
    finally:
        bar.close(ar.progress)
