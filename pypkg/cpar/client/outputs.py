"""What engines showed, shown here: ``[stdout:N]`` blocks, display outputs (through
IPython's display machinery when a shell runs, else their text), ``Out[N:k]:`` results;
and :class:`OutputsMixin`, the part of ``AsyncResult`` that gives and shows them. The
``%px`` magics use the same functions."""

import sys


def print_block(header, text, stream):
    text = text.rstrip("\n")
    if "\n" in text:
        print(f"{header}\n{text}", file=stream)
    else:
        print(f"{header} {text}", file=stream)



def ipython_shell():
    """The running IPython shell, or None (IPython not imported, without importing it, or
    no shell running)."""
    ipython = sys.modules.get("IPython")
    if ipython is None:
        return None
    try:
        return ipython.get_ipython()
    except Exception:  # noqa: BLE001 - a half-imported or odd IPython: no shell
        return None


def publish(data, metadata, engine_id=None):
    """Shows one display output of an engine here: through IPython's display publisher
    when a shell runs and the output is richer than text (or the shell is a notebook
    kernel's), else its text/plain printed."""
    if not data:
        return
    shell = ipython_shell()
    if shell is None or (set(data) <= {"text/plain"}
                         and type(shell).__name__ != "ZMQInteractiveShell"):
        text = data.get("text/plain")
        if text is not None:
            print(text)
        return
    from IPython.display import publish_display_data

    md = dict(metadata or {})
    if engine_id is not None:
        md.setdefault("engine", engine_id)
    sys.stdout.flush()
    publish_display_data(data=data, metadata=md)


def _rich_shell():
    """True in a shell that shows more than text (a notebook kernel's)."""
    shell = ipython_shell()
    return shell is not None and type(shell).__name__ == "ZMQInteractiveShell"


def clear_output(wait):
    if ipython_shell() is not None:
        from IPython.display import clear_output

        clear_output(wait=wait)


def show_execute_result(engine_id, res):
    """``Out[engine:count]: text`` (ipyparallel's form), or the prompt and the rich
    output."""
    data = res.get("data") or {}
    count = res.get("execution_count")
    prompt = f"Out[{engine_id}:{count}]:" if count is not None else f"Out[{engine_id}]:"
    text = data.get("text/plain")
    line = None if text is None else f"{prompt}\n{text}" if "\n" in text else f"{prompt} {text}"
    if set(data) <= {"text/plain"} or (line is not None and ipython_shell() is None):
        if line is not None:
            print(line)
        return
    if _rich_shell() or line is None:
        print(prompt)
        publish(data, res.get("metadata") or {}, engine_id)
        return
    # a terminal shows text/plain: the prompt goes into it, the rest is kept for capture
    publish(dict(data, **{"text/plain": line}), res.get("metadata") or {}, engine_id)


class OutputsMixin:
    """``AsyncResult``'s outputs per engine (``stdout``, ``stderr``, ``outputs``,
    ``execute_result``, ``output_events``) and ``display_outputs``. Uses the result's
    ``_slots`` (one per engine answer), ``_single`` and ``_msg_ids``."""

    @property
    def stdout(self):
        out = ["".join(s.stdout) for s in self._slots]
        return out[0] if self._single else out

    @property
    def stderr(self):
        out = ["".join(s.stderr) for s in self._slots]
        return out[0] if self._single else out

    @property
    def output_dropped(self):
        """Bytes of stdout/stderr text dropped per engine because they went past the
        client's ``max_output`` (0: nothing dropped)."""
        out = [s.dropped for s in self._slots]
        return out[0] if self._single else out

    @property
    def outputs(self):
        """Display outputs per engine (``display(obj)``, matplotlib figures, ...), each a
        dict ``{"data": {mime: value}, "metadata": {...}}`` as in Jupyter's display_data
        (binary values such as image/png base64-encoded), in the order shown."""
        out = [list(s.outputs) for s in self._slots]
        return out[0] if self._single else out

    @property
    def execute_result(self):
        """Per engine, the ``Out[n]`` of an executed cell (the value of its trailing
        expression): ``{"data": {mime: value}, "metadata": {...}, "execution_count": n}``,
        or None."""
        out = [s.execute_result for s in self._slots]
        return out[0] if self._single else out

    @property
    def output_events(self):
        """Per engine, everything it showed in arrival order: ``("stdout", text)``,
        ``("stderr", text)``, ``("display_data", output)``, ``("execute_result", result)``
        or ``("clear_output", {"wait": bool})`` (a list that only grows while the request
        runs, so a renderer can remember how far it got)."""
        out = [list(s.events) for s in self._slots]
        return out[0] if self._single else out

    def display_outputs(self, groupby="type"):
        """Shows what the engines output: ``[stdout:N] text`` / ``[stderr:N] text``
        blocks, their display outputs (through IPython's display machinery when a shell
        runs, else their text/plain after ``[output:N]``), and each engine's ``Out[N:k]:``
        (the value of an executed cell's trailing expression).

        ``groupby='type'`` (default): every engine's stdout, then every engine's stderr,
        then the display outputs, then the results; ``'engine'``: engine by engine, its
        stdout, stderr, display outputs and result; ``'order'``: as 'type', but the
        display outputs collated: every engine's first one, then every engine's second
        one, ... (``output_events`` keeps each engine's output in the order it came).

        A single-engine result (``rc[3].execute(...)``) shows its text as printed,
        without ``[stdout:N]``/``[output:N]`` headers, as ipyparallel does: stdout, stderr,
        display outputs, result (``'order'``: text and displays as they came)."""
        self._display_outputs(groupby, headers=False)

    def _display_outputs(self, groupby="type", headers=True):
        """display_outputs; ``headers``: a single-engine result gets its ``[stdout:N]``
        headers too (the %px magics label every engine's output)."""
        if self._single and not headers and groupby in ("type", "engine", "order"):
            self._show_single(self._slots[0], groupby == "order")
        elif groupby == "type":
            for s in self._slots:
                self._print_slot(s, "stdout")
            for s in self._slots:
                self._print_slot(s, "stderr")
            for s in self._slots:
                self._show_displays(s)
            for s in self._slots:
                self._show_result(s)
        elif groupby == "engine":
            for eid in dict.fromkeys(s.engine_id for s in self._slots):
                for s in self._slots:
                    if s.engine_id == eid:
                        self._print_slot(s, "stdout")
                        self._print_slot(s, "stderr")
                        self._show_displays(s)
                        self._show_result(s)
        elif groupby == "order":
            for s in self._slots:
                self._print_slot(s, "stdout")
            for s in self._slots:
                self._print_slot(s, "stderr")
            # the first display output of every engine, then the second ...
            outputs = [list(s.outputs) for s in self._slots]
            for i in range(max(map(len, outputs), default=0)):
                for s, outs in zip(self._slots, outputs):
                    if i < len(outs):
                        print(f"[output:{s.engine_id}]")
                        publish(outs[i].get("data"), outs[i].get("metadata"), s.engine_id)
            for s in self._slots:
                self._show_result(s)
        else:
            raise ValueError(f"groupby must be 'type', 'engine' or 'order', not {groupby!r}")
        sys.stdout.flush()

    @staticmethod
    def _show_single(slot, ordered):
        def write(name, text):
            if text:
                stream = sys.stderr if name == "stderr" else sys.stdout
                stream.write(text if text.endswith("\n") else text + "\n")

        if ordered:
            run_name, run = None, []
            for kind, value in list(slot.events):
                if kind in ("stdout", "stderr"):
                    if kind != run_name:
                        write(run_name, "".join(run))
                        run_name, run = kind, []
                    run.append(value)
                    continue
                write(run_name, "".join(run))
                run_name, run = None, []
                if kind == "display_data":
                    publish(value.get("data"), value.get("metadata"), slot.engine_id)
                elif kind == "clear_output":
                    clear_output(value.get("wait", False))
            write(run_name, "".join(run))
        else:
            write("stdout", "".join(slot.stdout))
            write("stderr", "".join(slot.stderr))
            for out in list(slot.outputs):
                publish(out.get("data"), out.get("metadata"), slot.engine_id)
        if slot.execute_result is not None:
            show_execute_result(slot.engine_id, slot.execute_result)

    @staticmethod
    def _print_slot(slot, name):
        text = "".join(getattr(slot, name))
        if text:
            stream = sys.stderr if name == "stderr" else sys.stdout
            print_block(f"[{name}:{slot.engine_id}]", text, stream)

    @staticmethod
    def _show_displays(slot):
        outputs = list(slot.outputs)
        if not outputs:
            return
        print(f"[output:{slot.engine_id}]")
        for out in outputs:
            publish(out.get("data"), out.get("metadata"), slot.engine_id)

    @staticmethod
    def _show_result(slot):
        if slot.execute_result is not None:
            show_execute_result(slot.engine_id, slot.execute_result)
