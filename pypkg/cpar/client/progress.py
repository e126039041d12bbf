"""``AsyncResult.wait_interactive``: wait for a result while showing its progress.

In a terminal (or any plain stream) a text bar on stdout, rewritten in place with ``\\r``::

    apply: 100%|##############################| 4/4 tasks [00:01, 3.2 tasks/s]

In a notebook (an ipykernel shell) an ``ipywidgets`` progress bar when ipywidgets is
importable, else a text line updated in place through ``IPython.display``.
"""

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


def _clock(seconds):
    seconds = int(seconds)
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h:d}:{m:02d}:{s:02d}" if h else f"{m:02d}:{s:02d}"


def format_bar(label, done, total, elapsed, width=_BAR_WIDTH):
    """One line of the text bar, tqdm-like."""
    frac = done / total if total else 1.0
    filled = int(round(frac * width))
    rate = done / elapsed if elapsed > 0 else 0.0
    return (f"{label}: {frac * 100:3.0f}%|{'#' * filled}{' ' * (width - filled)}| "
            f"{done}/{total} tasks [{_clock(elapsed)}, {rate:.1f} tasks/s]")


class _TextBar:
    def __init__(self, stream):
        self.stream = stream
        self.last = 0

    def update(self, line):
        pad = " " * max(0, self.last - len(line))
        self.stream.write("\r" + line + pad)
        self.stream.flush()
        self.last = len(line)

    def close(self, line):
        self.update(line)
        self.stream.write("\n")
        self.stream.flush()


class _WidgetBar:
    def __init__(self, total, label):
        import ipywidgets
        from IPython.display import display

        self.bar = ipywidgets.IntProgress(min=0, max=max(total, 1), description=label)
        self.text = ipywidgets.HTML()
        self.box = ipywidgets.HBox([self.bar, self.text])
        display(self.box)

    def update(self, line, done=0):
        self.bar.value = done
        self.text.value = line

    def close(self, line, done=0):
        self.update(line, done)
        self.bar.bar_style = "success" if done >= self.bar.max else "warning"


class _DisplayBar:
    def __init__(self):
        from IPython.display import display

        self.handle = display("", display_id=True)
        if self.handle is None:  # no IPython shell to display in
            raise RuntimeError("no display")

    def update(self, line, done=0):
        self.handle.update(line)

    def close(self, line, done=0):
        self.update(line, done)


def _make_bar(total, label, widget):
    if widget is None:
        widget = _in_notebook()
    if widget and _shell() is not None:
        for make in (lambda: _WidgetBar(total, label), _DisplayBar):
            try:
                return make(), True
            except Exception:  # noqa: BLE001 - no ipywidgets, no shell: a plainer bar
                continue
    return _TextBar(sys.stdout), False


def wait_interactive(ar, interval=0.1, timeout=-1, widget=None):
    """Waits for ``ar`` (up to ``timeout`` seconds; negative or None: no limit), showing
    how many of its tasks (one per engine and request) have finished."""
    sizes = getattr(ar, "_part_sizes", None)  # a direct map: elements, not parts
    total = sum(sizes) if sizes is not None else len(ar._slots)
    label = ar._fname
    deadline = None if timeout is None or timeout < 0 else time.monotonic() + timeout
    bar, rich = _make_bar(total, label, widget)

    def show(final=False):
        done = ar.progress
        line = format_bar(label, done, total, ar.elapsed)
        if rich:
            (bar.close if final else bar.update)(line, done)
        else:
            (bar.close if final else bar.update)(line)

    while not ar.done():
        show()
        left = None if deadline is None else deadline - time.monotonic()
        if left is not None and left <= 0:
            break
        ar.wait(interval if left is None else min(interval, left))
    show(final=True)
