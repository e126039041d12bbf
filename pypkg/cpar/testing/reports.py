"""What the engines printed and logged during one test, for the report of a test that
failed: :class:`RequestLog` notes the requests a client sends and keeps their engines'
stdout and stderr; :class:`LogMarks` notes where each log file of a cluster ended when
the test began, and gives what was written after that.
"""

import os
import weakref

# How much of each kind goes into a report: enough to see what happened, bounded so that a
# test printing without end does not make a report of gigabytes.
MAX_LINES_PER_STREAM = 40
MAX_REQUESTS = 200
MAX_LOG_LINES = 30


def _last_lines(text, limit):
    """The last ``limit`` lines of ``text``, with a line saying how many were left out."""
    lines = text.splitlines()
    if len(lines) <= limit:
        return lines
    return [f"... ({len(lines) - limit} earlier lines left out)"] + lines[-limit:]


def _streams_of(slots):
    """``[(engine_id, stream name, text)]`` of the answers in ``slots`` that printed."""
    out = []
    for slot in slots:
        for name in ("stdout", "stderr"):
            text = "".join(getattr(slot, name, ()) or ())
            if text:
                out.append((slot.engine_id, name, text))
    return out


class _Request:
    """One request of the test: its AsyncResult while somebody holds it, its output
    once the AsyncResult is gone (copied by the weak reference's callback)."""

    __slots__ = ("label", "ref", "frozen", "__weakref__")

    def __init__(self, ar):
        self.label = getattr(ar, "_fname", "request")
        self.frozen = None
        slots = ar._slots
        me = weakref.ref(self)

        def freeze(_ref, slots=slots):
            # The AsyncResult was collected: keep the text, let its results go.
            req = me()
            if req is not None:
                req.frozen = _streams_of(slots)
                req.ref = None

        self.ref = weakref.ref(ar, freeze)

    def streams(self):
        """``[(engine_id, stream name, text)]`` of the engines that printed."""
        if self.frozen is not None:
            return self.frozen
        ar = self.ref() if self.ref is not None else None
        return _streams_of(ar._slots) if ar is not None else []


class RequestLog:
    """The requests ``client`` sends from now on (until :meth:`detach`), with what their
    engines wrote to stdout and stderr.

    The AsyncResults stay the test's: the log holds them weakly, and copies an
    AsyncResult's output text when it is collected (so a result's values are freed as
    they would be without the log).

    Parameters
    ----------
    client : cpar.Client
        The client whose requests are noted (the pytest plugin's ``cpar_client``).
    """

    def __init__(self, client):
        self.requests = []
        self.dropped = 0
        self._client = client
        original = client._remember

        def remember(ar, msg_ids):
            original(ar, msg_ids)
            self._note(ar)

        client._remember = remember

    def _note(self, ar):
        if len(self.requests) >= MAX_REQUESTS:
            # the oldest go: a failure is most often explained by the last requests
            del self.requests[0]
            self.dropped += 1
        self.requests.append(_Request(ar))

    def rename(self, ar, label):
        """Shows the output of the request ``ar`` under ``label`` (e.g. the test's name
        rather than the function the request ran)."""
        for req in reversed(self.requests):
            if req.ref is not None and req.ref() is ar:
                req.label = label
                return

    def detach(self):
        """Stops noting the client's requests (what was noted stays readable)."""
        client, self._client = self._client, None
        if client is not None:
            client.__dict__.pop("_remember", None)

    def text(self):
        """The engines' output, one block per request and engine that printed; '' when
        nothing was printed."""
        blocks = []
        for req in self.requests:
            for engine_id, name, text in req.streams():
                where = f"engine {engine_id}" if engine_id is not None and engine_id >= 0 \
                    else "engine ?"
                lines = _last_lines(text, MAX_LINES_PER_STREAM)
                blocks.append(f"[{name}:{where}] {req.label}\n" + "\n".join(lines))
        if blocks and self.dropped:
            blocks.insert(0, f"({self.dropped} earlier requests left out)")
        return "\n".join(blocks)


def _local_files(launcher):
    """The log files on this machine that ``launcher`` (an engine set, or one launcher)
    writes; launchers whose logs are elsewhere give none."""
    sets = getattr(launcher, "launchers", None)
    if sets is not None:
        return [p for la in sets for p in _local_files(la)]
    paths = list(getattr(launcher, "log_paths", ()) or ())
    paths += list(getattr(launcher, "engine_logs", ()) or ())
    output = getattr(launcher, "output", None)
    if isinstance(output, str):
        paths.append(output)
    return [p for p in paths if isinstance(p, str)]


def _size(path):
    try:
        return os.path.getsize(path)
    except OSError:
        return 0


class LogMarks:
    """Where the cluster's log files (engines, then controller) end now, so that
    :meth:`text` gives what was logged after.

    Parameters
    ----------
    cluster : cpar.Cluster
        A started cluster.
    """

    def __init__(self, cluster):
        self.cluster = cluster
        self.marks = {p: _size(p) for p in self._files()}

    def _files(self):
        files = []
        for launcher in (self.cluster.engines, self.cluster.controller):
            if launcher is not None:
                files += [p for p in _local_files(launcher) if p not in files]
        return files

    def text(self):
        """The last lines each log file got since the marks were taken (files made since
        then included); '' when nothing was logged."""
        blocks = []
        for path in self._files():
            start = self.marks.get(path, 0)
            try:
                with open(path, "rb") as f:
                    if _size(path) < start:  # rewritten since: all of it is new
                        start = 0
                    f.seek(start)
                    new = f.read().decode("utf-8", "replace")
            except OSError:
                continue
            if new.strip():
                lines = _last_lines(new.rstrip("\n"), MAX_LOG_LINES)
                blocks.append(f"--- {path}\n" + "\n".join(lines))
        return "\n".join(blocks)
