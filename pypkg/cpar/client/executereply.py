"""ExecuteReply: what ``view.execute(code)`` gives per engine once the cell has run.

``ar.get()`` of an execute returns one ExecuteReply per engine (a single one for a
single-engine view), as ipyparallel does. It bundles the engine's answer with what the
cell showed:

- ``execution_count``: the cell's number on its engine (the ``n`` of ``Out[n]``);
- ``stdout``, ``stderr``, ``outputs`` (display outputs), ``execute_result``, ``engine_id``,
  ``data`` (published data, see cpar.datapub), ``started``, ``completed``... : every key of
  the request's metadata, as attributes and items (``er.stdout``, ``er["stdout"]``);
- the rich representation of the cell's trailing expression: ``_repr_html_``,
  ``_repr_png_``, ``_repr_pretty_`` and the others return its mime data (with its
  metadata, ``(data, metadata)``, when the engine sent some for that type), so an
  ExecuteReply displayed in IPython shows what the engine's ``Out[n]`` would.

``repr(er)`` is ``<ExecuteReply[n]: text>`` with the trailing expression's text (cut at
32 characters).
"""

_MIME_METHODS = {
    "_repr_html_": "text/html",
    "_repr_markdown_": "text/markdown",
    "_repr_svg_": "image/svg+xml",
    "_repr_png_": "image/png",
    "_repr_jpeg_": "image/jpeg",
    "_repr_latex_": "text/latex",
    "_repr_json_": "application/json",
    "_repr_javascript_": "application/javascript",
}


class ExecuteReply:
    """One engine's answer to ``execute``: its execution count, outputs and the rich
    result of the cell's trailing expression."""

    def __init__(self, msg_id, execution_count, metadata):
        self.msg_id = msg_id
        self.execution_count = execution_count
        self.metadata = metadata

    @property
    def execute_result(self):
        return self.metadata.get("execute_result")

    @property
    def data(self):
        """The mime bundle of the trailing expression's value (``{}`` without one)."""
        res = self.execute_result
        return dict(res.get("data") or {}) if res else {}

    @property
    def _result_metadata(self):
        res = self.execute_result
        return dict(res.get("metadata") or {}) if res else {}

    def _repr_mime_(self, mime):
        """The value of ``mime`` in the result (with its metadata as ``(value, md)`` when
        the engine gave some), or None when the result has no such type."""
        data = self.data
        if mime not in data:
            return None
        md = self._result_metadata
        if mime in md:
            return data[mime], md[mime]
        return data[mime]

    def __getattr__(self, key):
        if key in _MIME_METHODS:
            mime = _MIME_METHODS[key]
            return lambda *args, **kwargs: self._repr_mime_(mime)
        if key.startswith("__") or key in ("metadata", "msg_id", "execution_count"):
            raise AttributeError(key)
        md = self.__dict__.get("metadata")
        if md is not None and key in md:
            return md[key]
        raise AttributeError(f"'ExecuteReply' object has no attribute {key!r}")

    def __dir__(self):
        return sorted(set(super().__dir__()) | set(self.metadata) | set(_MIME_METHODS))

    def __getitem__(self, key):
        return self.metadata[key]

    def _plaintext(self):
        text = self.data.get("text/plain", "")
        if not text:
            return ""
        if "\n" in text and not text.startswith("\n"):
            text = "\n" + text
        return f"Out[{self.metadata.get('engine_id')}:{self.execution_count}]: {text}"

    def _repr_pretty_(self, p, cycle):
        p.text(self._plaintext())

    def _repr_mimebundle_(self, include=None, exclude=None):
        data = self.data
        if "text/plain" in data:
            data["text/plain"] = self._plaintext()
        return data, self._result_metadata

    def display(self):
        """Shows the trailing expression's value here (IPython's display machinery)."""
        from IPython.display import publish_display_data

        publish_display_data(self.data, self._result_metadata)

    def __repr__(self):
        text = self.data.get("text/plain", "")
        if len(text) > 32:
            text = text[:29] + "..."
        return f"<ExecuteReply[{self.execution_count}]: {text}>"


def make_execute_reply(ar, slot, value):
    """The ExecuteReply of one engine's successful answer to an execute (``value``: the
    engine's ``{"execution_count": n}``, or None from an engine that sends nothing)."""
    count = value.get("execution_count") if isinstance(value, dict) else None
    return ExecuteReply(slot.msg_id.hex(), count, ar._metadata_of(slot))


def _execute_result(*args, **kwargs):
    """An AsyncResult whose answers become ExecuteReplies (``cls`` of view.execute's
    submit)."""
    from .asyncresult import AsyncResult

    ar = AsyncResult(*args, **kwargs)
    ar._wrap_value = make_execute_reply
    return ar
