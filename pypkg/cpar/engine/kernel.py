"""``bind_kernel()``: an engine also serves the Jupyter kernel protocol, so that
``jupyter console --existing kernel-<pid>.json`` (or any Jupyter client) can attach to it.

Threads. A daemon thread (the *kernel thread*) owns the five Jupyter sockets (shell,
control, stdin, iopub, heartbeat) and answers what needs no user namespace (kernel_info,
is_complete, history, comm_info, interrupt, shutdown). Requests that touch the namespace
(execute, complete, inspect) are queued for the engine's *main thread*, which is where
cpar tasks run and where SIGINT lands. The kernel thread wakes the main thread with a
signal (``SIGURG``, ignored by default); its Python handler runs the queued requests only
when the C main loop calls it while it waits for work (no task, no Python frame running; a
signal handled inside Python code is left for the next poke). A request that arrives
during a task waits for the task's end (the kernel thread signals again every
``_POKE_S``), so kernel executes and cpar tasks never run at the same time in the shared
namespace. An interrupt_request sends SIGINT to the main thread
while a kernel execute runs: ``time.sleep`` and friends end with KeyboardInterrupt.

The main thread never touches the Jupyter sockets: what it sends (replies, stream output,
displays) goes to the kernel thread over an inproc PUSH/PULL pair.

The connection file ``kernel-<pid>.json`` (mode 0600) is written to Jupyter's runtime
directory; it is removed when the kernel is shut down (shutdown_request: the engine
itself goes on), and when the engine exits (atexit, or SIGTERM when that signal had its
default action).
"""

import atexit
import builtins
import json
import os
import pickle
import queue
import re
import signal
import sys
import threading
import traceback
import uuid


__all__ = ["bind_kernel", "connect_info", "KernelBindError"]

PROTOCOL_VERSION = "5.3"
_POKE_SIGNAL = signal.SIGURG
_POKE_S = 0.05  # how often a pending request re-signals the main thread
_CHANNELS = ("shell", "control", "stdin", "iopub", "hb")
_OPTIONS = {"ip", "key", "signature_scheme", "connection_file", "shell_port", "control_port",
            "stdin_port", "iopub_port", "hb_port"}

_server = None  # the running KernelServer of this engine, if any
_bind_lock = threading.Lock()


class KernelBindError(RuntimeError):
    """bind_kernel() cannot run here (not an engine, not the main thread, bad option)."""


def _rt():
    # Imported on the engine only: the runtime module sets engine-wide state on import.
    from cpar.engine import runtime

    return runtime


def _on_engine():
    return "_cpar_engine" in sys.modules


def bind_kernel(**kwargs):
    """Makes this engine also a Jupyter kernel; run it on engines, e.g.
    ``rc[:].apply_sync(cpar.bind_kernel)`` or ``%px cpar.bind_kernel()``.

    Returns the connection info (the connection file's fields, plus ``connection_file``,
    its path). Calling it again returns the running kernel's info. Options: ``ip``
    (default ``127.0.0.1``), ``key`` (default: new random), ``signature_scheme``
    (``hmac-sha256``), ``connection_file`` (path), ``shell_port``/``control_port``/
    ``stdin_port``/``iopub_port``/``hb_port`` (default 0: a free port).
    """
    global _server
    if not _on_engine():
        raise KernelBindError(
            "bind_kernel() must run on a cpar engine (for example "
            "rc[:].apply_sync(cpar.bind_kernel) or %px cpar.bind_kernel()); "
            "this process is not an engine")
    unknown = sorted(set(kwargs) - _OPTIONS)
    if unknown:
        raise TypeError(f"bind_kernel() got unknown option(s) {', '.join(unknown)}; "
                        f"known: {', '.join(sorted(_OPTIONS))}")
    with _bind_lock:
        if _server is not None and _server.alive:
            return _server.info_with_path()
        if _server is not None:
            _server.close()
            _server = None
        server = KernelServer(**kwargs)
        try:
            server.start()
        except BaseException:
            server.close()
            raise
        _server = server
        return server.info_with_path()


def connect_info():
    """The running kernel's connection info (with ``connection_file``), or None."""
    server = _server
    return server.info_with_path() if server is not None and server.alive else None


def _connect_info_text():
    info = connect_info()
    if info is None:
        return ("This engine has no Jupyter kernel bound; run cpar.bind_kernel() on it "
                "first (for example %px cpar.bind_kernel()).")
    path = info.pop("connection_file")
    return (f"Connection file: {path}\n{json.dumps(info, indent=2)}\n\n"
            "Attach a Jupyter console to this engine with:\n"
            f"    jupyter console --existing {path}\n"
            "or, on this machine, with:\n"
            f"    jupyter console --existing {os.path.basename(path)}")


def _connect_info_magic(line=""):
    print(_connect_info_text())


def _register_magic():
    shell = _rt()._ipython_shell()
    if shell is not None:
        shell.register_magic_function(_connect_info_magic, "line", "connect_info")


def _parse_port(name, value):
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 65535:
        raise ValueError(f"bind_kernel: {name} must be a port number 0-65535, got {value!r}")
    return value


class _Stream:
    """sys.stdout/sys.stderr while a kernel request runs: text goes to iopub."""

    encoding = "utf-8"
    errors = "replace"

    def __init__(self, server, name, parent):
        self._server = server
        self.name = name
        self._parent = parent
        self._buf = []
        self._lock = threading.Lock()

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        with self._lock:
            self._buf.append(text)
            flush = "\n" in text or sum(map(len, self._buf)) > 8192
        if flush:
            self.flush()
        return len(text)

    def writelines(self, lines):
        for line in lines:
            self.write(line)

    def flush(self):
        with self._lock:
            text, self._buf = "".join(self._buf), []
        if text:
            self._server.send_iopub("stream", {"name": self.name, "text": text}, self._parent)

    def isatty(self):
        return False

    def writable(self):
        return True

    def readable(self):
        return False

    def fileno(self):
        raise OSError("a kernel stream has no file descriptor")


class KernelServer:
    """One engine's Jupyter kernel (see the module docstring)."""

    def __init__(self, ip="127.0.0.1", key=None, signature_scheme="hmac-sha256",
                 connection_file=None, **ports):
        import zmq
        from jupyter_client.session import Session

        if not isinstance(ip, str) or not ip:
            raise ValueError(f"bind_kernel: ip must be an address string, got {ip!r}")
        if signature_scheme != "hmac-sha256":
            raise ValueError(f"bind_kernel: signature_scheme {signature_scheme!r} is not "
                             "supported (use 'hmac-sha256')")
        if key is None:
            key = str(uuid.uuid4()).encode("ascii")
        elif isinstance(key, str):
            key = key.encode("utf-8")
        if not isinstance(key, bytes) or not key:
            raise ValueError("bind_kernel: key must be a non-empty str or bytes")
        self.ports = {ch: _parse_port(f"{ch}_port", ports.get(f"{ch}_port", 0))
                      for ch in _CHANNELS}
        self.ip = ip
        self.key = key
        self.session = Session(key=key, signature_scheme=signature_scheme,
                               username="cpar-engine")
        self.path = connection_file
        self.alive = False
        self._zmq = zmq
        self._ctx = zmq.Context()
        self._socks = {}
        self._push = None
        self._push_lock = threading.Lock()
        self._requests = queue.Queue()
        self._inputs = queue.Queue()
        self._busy = False  # the main thread is handling requests
        self._executing = False  # ... and runs user code of an execute_request
        self._stop = threading.Event()
        self._thread = None
        self._main_ident = None
        self._old_handlers = {}
        self._count = 0  # execution count without IPython
        self._wrote_file = False
        self._inproc = f"inproc://cpar-kernel-{uuid.uuid4().hex}"
        self._completer = None

    # -- setup / teardown (main thread) ---------------------------------------------------

    def start(self):
        zmq = self._zmq
        self._main_ident = threading.get_ident()
        try:
            old = signal.signal(_POKE_SIGNAL, self._on_poke)
        except ValueError:
            raise KernelBindError("bind_kernel() must run on the engine's main thread "
                                  "(as a task or %px cell)") from None
        self._old_handlers[_POKE_SIGNAL] = old
        signal.siginterrupt(_POKE_SIGNAL, False)  # slow system calls of tasks restart
        kinds = {"shell": zmq.ROUTER, "control": zmq.ROUTER, "stdin": zmq.ROUTER,
                 "iopub": zmq.PUB, "hb": zmq.REP}
        for ch in _CHANNELS:
            sock = self._ctx.socket(kinds[ch])
            sock.linger = 1000
            addr = f"tcp://{self.ip}"
            try:
                if self.ports[ch]:
                    sock.bind(f"{addr}:{self.ports[ch]}")
                else:
                    self.ports[ch] = sock.bind_to_random_port(addr)
            except zmq.ZMQError as exc:
                sock.close(0)
                raise OSError(f"bind_kernel: cannot bind the {ch} socket on {addr}:"
                              f"{self.ports[ch] or '*'}: {exc}") from None
            self._socks[ch] = sock
        pull = self._ctx.socket(zmq.PULL)
        pull.rcvhwm = 0
        pull.bind(self._inproc)
        self._socks["pull"] = pull
        self._push = self._ctx.socket(zmq.PUSH)
        self._push.sndhwm = 0
        self._push.linger = 0
        self._push.connect(self._inproc)
        self._write_connection_file()
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            self._old_handlers[signal.SIGTERM] = signal.SIG_DFL
            signal.signal(signal.SIGTERM, self._on_sigterm)
        atexit.register(self.close)
        _register_magic()
        self.alive = True
        self._thread = threading.Thread(target=self._serve, name="cpar-kernel", daemon=True)
        self._thread.start()

    def info(self):
        d = {f"{ch}_port": self.ports[ch] for ch in _CHANNELS}
        d.update(ip=self.ip, key=self.key.decode("utf-8", "replace"), transport="tcp",
                 signature_scheme="hmac-sha256", kernel_name="")
        return d

    def info_with_path(self):
        d = self.info()
        d["connection_file"] = self.path
        return d

    def _write_connection_file(self):
        if self.path is None:
            from jupyter_core.paths import jupyter_runtime_dir

            rdir = jupyter_runtime_dir()
            os.makedirs(rdir, mode=0o700, exist_ok=True)
            self.path = os.path.join(rdir, f"kernel-{os.getpid()}.json")
        self.path = os.path.abspath(os.fspath(self.path))
        tmp = f"{self.path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, json.dumps(self.info(), indent=2).encode("utf-8"))
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self._wrote_file = True

    def _remove_connection_file(self):
        if self._wrote_file:
            self._wrote_file = False
            try:
                os.remove(self.path)
            except OSError:
                pass

    def close(self):
        """Stops the kernel (if running), removes its file, frees its sockets; from the
        main thread (atexit, SIGTERM, a new bind_kernel)."""
        self._stop.set()
        self._wake()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(5)
        if self._thread is None:  # never started: the sockets are ours to close
            for sock in self._socks.values():
                sock.close(0)
            self._socks.clear()
        self.alive = False
        self._remove_connection_file()
        with self._push_lock:
            if self._push is not None:
                self._push.close(0)
                self._push = None
        for sig, old in self._old_handlers.items():
            try:
                if signal.getsignal(sig) in (self._on_poke, self._on_sigterm):
                    signal.signal(sig, old if old is not None else signal.SIG_DFL)
            except (ValueError, TypeError):
                pass
        self._old_handlers.clear()
        if self._thread is None or not self._thread.is_alive():
            self._ctx.term()
        try:
            atexit.unregister(self.close)
        except Exception:  # noqa: BLE001
            pass

    def _on_sigterm(self, signum, frame):
        # Runs at whatever bytecode the main thread was at, perhaps inside _post holding
        # _push_lock: close() would wait for that lock for ever. The process is about to
        # die (its sockets with it), so only the connection file needs removing.
        self._remove_connection_file()
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)

    # -- main thread -> kernel thread --------------------------------------------------------

    def _post(self, item):
        data = pickle.dumps(item)
        with self._push_lock:
            if self._push is None:
                return
            try:
                self._push.send(data, self._zmq.NOBLOCK)
            except self._zmq.ZMQError:
                pass  # the kernel thread has gone: nobody to tell

    def _wake(self):
        self._post(("wake",))

    def send_iopub(self, msg_type, content, parent):
        self._post(("iopub", msg_type, content, _header_only(parent)))

    def _reply(self, channel, idents, msg_type, content, parent):
        self._post(("reply", channel, idents, msg_type, content, _header_only(parent)))

    # -- the kernel thread -------------------------------------------------------------------

    def _serve(self):
        zmq = self._zmq
        try:
            signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
        except (AttributeError, OSError, ValueError):
            pass  # signals for the process then may land here; the main thread still runs
        poller = zmq.Poller()
        for name in ("shell", "control", "stdin", "hb", "pull"):
            poller.register(self._socks[name], zmq.POLLIN)
        self._publish("status", {"execution_state": "starting"}, None)
        try:
            while not self._stop.is_set():
                pending = not self._requests.empty() and not self._busy
                events = dict(poller.poll(int(_POKE_S * 1000) if pending else 1000))
                if self._socks["hb"] in events:
                    self._socks["hb"].send_multipart(self._socks["hb"].recv_multipart())
                if self._socks["pull"] in events:
                    self._drain_pull()
                for ch in ("control", "shell", "stdin"):
                    if self._socks[ch] in events:
                        self._recv(ch)
                if not self._requests.empty() and not self._busy:
                    self._poke()
        except Exception as exc:  # noqa: BLE001 - log, then let the engine go on
            _log(f"the Jupyter kernel thread failed: {exc!r}")
        finally:
            self._drain_pull()
            self.alive = False
            for name in ("shell", "control", "stdin", "iopub", "hb", "pull"):
                sock = self._socks.pop(name, None)
                if sock is not None:
                    sock.close()
            self._remove_connection_file()

    def _poke(self):
        try:
            signal.pthread_kill(self._main_ident, _POKE_SIGNAL)
        except (OSError, ProcessLookupError):
            pass

    def _drain_pull(self):
        zmq = self._zmq
        pull = self._socks.get("pull")
        while pull is not None:
            try:
                data = pull.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            item = pickle.loads(data)
            if item[0] == "iopub":
                self._publish(*item[1:])
            elif item[0] == "reply":
                _, channel, idents, msg_type, content, parent = item
                self.session.send(self._socks[channel], msg_type, content, parent=parent,
                                  ident=idents)

    def _publish(self, msg_type, content, parent):
        topic = f"kernel.{os.getpid()}.{msg_type}".encode("ascii")
        self.session.send(self._socks["iopub"], msg_type, content, parent=parent,
                          ident=[topic])

    def _send(self, channel, idents, msg_type, content, parent):
        self.session.send(self._socks[channel], msg_type, content, parent=parent,
                          ident=idents)

    def _recv(self, channel):
        sock = self._socks[channel]
        frames = sock.recv_multipart(copy=True)
        try:
            idents, rest = self.session.feed_identities(frames, copy=True)
            msg = self.session.deserialize(rest, content=True, copy=True)
        except Exception as exc:  # noqa: BLE001 - a bad signature or a malformed message
            _log(f"Jupyter kernel: dropped an invalid message on {channel}: {exc}")
            return
        msg_type = msg["header"].get("msg_type", "")
        if channel == "stdin":
            if msg_type == "input_reply":
                self._inputs.put(msg["content"].get("value", ""))
            return
        handler = getattr(self, f"_do_{msg_type}", None)
        if msg_type in ("execute_request", "complete_request", "inspect_request"):
            self._requests.put((channel, idents, msg))
            if not self._busy:
                self._poke()
        elif handler is not None:
            self._publish("status", {"execution_state": "busy"}, msg)
            try:
                handler(channel, idents, msg)
            finally:
                self._publish("status", {"execution_state": "idle"}, msg)
        else:
            _log(f"Jupyter kernel: ignored a {msg_type!r} request")

    def _do_kernel_info_request(self, channel, idents, msg):
        import platform

        content = {
            "status": "ok",
            "protocol_version": PROTOCOL_VERSION,
            "implementation": "cpar-engine",
            "implementation_version": _cpar_version(),
            "language_info": {
                "name": "python",
                "version": platform.python_version(),
                "mimetype": "text/x-python",
                "file_extension": ".py",
                "pygments_lexer": "ipython3",
                "codemirror_mode": {"name": "ipython", "version": 3},
                "nbconvert_exporter": "python",
            },
            "banner": (f"cpar engine {_rt().engine_id} (pid {os.getpid()}) as a Jupyter "
                       f"kernel\nPython {sys.version}\n"),
            "help_links": [],
        }
        self._send(channel, idents, "kernel_info_reply", content, msg)

    def _do_is_complete_request(self, channel, idents, msg):
        code = msg["content"].get("code", "")
        status, indent = "unknown", ""
        try:
            from IPython.core.inputtransformer2 import TransformerManager

            if self._completer is None:
                self._completer = TransformerManager()
            status, spaces = self._completer.check_complete(code)
            indent = " " * (spaces or 0)
        except ImportError:
            import codeop

            try:
                status = "complete" if codeop.compile_command(code) else "incomplete"
            except (SyntaxError, ValueError, OverflowError):
                status = "invalid"
        content = {"status": status}
        if status == "incomplete":
            content["indent"] = indent
        self._send(channel, idents, "is_complete_reply", content, msg)

    def _do_history_request(self, channel, idents, msg):
        self._send(channel, idents, "history_reply", {"status": "ok", "history": []}, msg)

    def _do_comm_info_request(self, channel, idents, msg):
        self._send(channel, idents, "comm_info_reply", {"status": "ok", "comms": {}}, msg)

    def _do_interrupt_request(self, channel, idents, msg):
        if self._executing:
            try:
                signal.pthread_kill(self._main_ident, signal.SIGINT)
            except OSError:
                pass
        self._send(channel, idents, "interrupt_reply", {"status": "ok"}, msg)

    def _do_shutdown_request(self, channel, idents, msg):
        restart = bool(msg["content"].get("restart", False))
        content = {"status": "ok", "restart": restart}
        self._send(channel, idents, "shutdown_reply", content, msg)
        self._publish("shutdown_reply", content, msg)
        self._stop.set()  # only the kernel ends; the engine goes on serving tasks

    # -- the main thread: requests that use the namespace -----------------------------------

    def _on_poke(self, signum, frame):
        # Requests run only where the engine's C loop checks for signals between tasks:
        # there no Python frame runs (frame is None). Anywhere else the handler would run
        # inside whatever Python code the main thread was in, perhaps holding a lock the
        # request needs (_post's, when the poke lands in the _wake below: a deadlock).
        # The kernel thread signals again every _POKE_S while a request waits.
        if frame is not None or _rt().task_running or self._busy or not self.alive:
            return
        self._busy = True
        try:
            while True:
                try:
                    channel, idents, msg = self._requests.get_nowait()
                except queue.Empty:
                    break
                self._handle(channel, idents, msg)
        finally:
            self._busy = False
            self._wake()

    def _handle(self, channel, idents, msg):
        msg_type = msg["header"]["msg_type"]
        self.send_iopub("status", {"execution_state": "busy"}, msg)
        try:
            if msg_type == "execute_request":
                self._execute(channel, idents, msg)
            elif msg_type == "complete_request":
                self._reply(channel, idents, "complete_reply", _complete(msg["content"]), msg)
            elif msg_type == "inspect_request":
                self._reply(channel, idents, "inspect_reply", _inspect(msg["content"]), msg)
        except BaseException as exc:  # noqa: B036 - a request must not end the engine
            self._reply(channel, idents, msg_type.replace("_request", "_reply"),
                        _error_content(exc), msg)
        finally:
            self.send_iopub("status", {"execution_state": "idle"}, msg)

    def _execute(self, channel, idents, msg):
        content = msg["content"]
        code = content.get("code", "")
        silent = bool(content.get("silent", False))
        shell = _rt()._ipython_shell()
        count = shell.execution_count if shell is not None else self._count + 1
        if not silent:
            self.send_iopub("execute_input", {"code": code, "execution_count": count}, msg)
        error = None
        with self._redirect(msg, idents, bool(content.get("allow_stdin", False)), count):
            try:
                self._executing = True
                if shell is not None:
                    _rt()._run_ipython_cell(shell, code)
                else:
                    self._count += 1
                    exec(_rt()._compile_cell(code), _rt().namespace())
            except BaseException as exc:  # noqa: B036 - KeyboardInterrupt included
                error = exc
            finally:
                self._executing = False
        if error is None:
            reply = {"status": "ok", "execution_count": count, "payload": [],
                     "user_expressions": {}}
        else:
            reply = _error_content(error)
            reply["execution_count"] = count
            self.send_iopub("error", {k: reply[k] for k in ("ename", "evalue", "traceback")},
                            msg)
        self._reply(channel, idents, "execute_reply", reply, msg)

    def _redirect(self, parent, idents, allow_stdin, count):
        server = self

        class Redirect:
            def __enter__(self):
                self.saved = (sys.stdout, sys.stderr, _rt().display_hook, builtins.input)
                self.out = _Stream(server, "stdout", parent)
                self.err = _Stream(server, "stderr", parent)
                sys.stdout, sys.stderr = self.out, self.err
                _rt().display_hook = lambda m: server._display(m, parent, count)
                if allow_stdin:
                    builtins.input = lambda prompt="": server._input(prompt, parent, idents)
                else:
                    builtins.input = _no_stdin
                return self

            def __exit__(self, *exc):
                for stream in (self.out, self.err):
                    try:
                        stream.flush()
                    except Exception:  # noqa: BLE001
                        pass
                sys.stdout, sys.stderr, _rt().display_hook, builtins.input = self.saved
                return False

        return Redirect()

    def _display(self, m, parent, count):
        m = json.loads(json.dumps(m, default=_rt()._json_default))
        kind = m.pop("type", "display_data")
        sys.stdout.flush()
        sys.stderr.flush()
        if kind == "clear_output":
            self.send_iopub("clear_output", {"wait": bool(m.get("wait"))}, parent)
            return True
        content = {"data": m.get("data", {}), "metadata": m.get("metadata", {}),
                   "transient": m.get("transient", {})}
        if kind == "execute_result":
            content["execution_count"] = m.get("execution_count", count)
            self.send_iopub("execute_result", content, parent)
        else:
            self.send_iopub("update_display_data" if m.get("update") else "display_data",
                            content, parent)
        return True

    def _input(self, prompt, parent, idents):
        sys.stdout.flush()
        sys.stderr.flush()
        while not self._inputs.empty():
            self._inputs.get_nowait()
        self._reply("stdin", idents, "input_request",
                    {"prompt": str(prompt), "password": False}, parent)
        while True:
            if not self.alive:
                raise EOFError("the Jupyter kernel was shut down")
            try:
                return self._inputs.get(timeout=0.5)
            except queue.Empty:
                continue


def _header_only(msg):
    return {"header": msg["header"]} if msg else None


def _no_stdin(prompt=""):
    raise EOFError("input() is not available: the Jupyter client that sent this request "
                   "does not accept input requests")


def _error_content(exc):
    tb = traceback.format_exception(type(exc), exc, exc.__traceback__)
    return {"status": "error", "ename": type(exc).__name__, "evalue": _rt()._safe_str(exc),
            "traceback": [line.rstrip("\n") for line in tb]}


def _token_at(code, pos):
    """The dotted name around cursor position pos of code, and where it starts."""
    start = pos
    while start > 0 and (code[start - 1].isalnum() or code[start - 1] in "_."):
        start -= 1
    return code[start:pos], start


def _complete(content):
    code = content.get("code", "")
    pos = content.get("cursor_pos")
    pos = len(code) if pos is None else max(0, min(int(pos), len(code)))
    shell = _rt()._ipython_shell()
    if shell is not None:
        from IPython.core.completer import provisionalcompleter

        with provisionalcompleter():
            comps = list(shell.Completer.completions(code, pos))
        start = min((c.start for c in comps), default=pos)
        end = max((c.end for c in comps), default=pos)
        matches = []
        for c in comps:  # all made to replace the same span code[start:end]
            m = code[start:c.start] + c.text + code[c.end:end]
            if m not in matches:
                matches.append(m)
        return {"status": "ok", "matches": matches, "cursor_start": start,
                "cursor_end": end, "metadata": {}}
    import rlcompleter

    text, start = _token_at(code, pos)
    comp = rlcompleter.Completer(_rt().namespace())
    matches, i = [], 0
    while (m := comp.complete(text, i)) is not None and i < 1000:
        matches.append(m)
        i += 1
    return {"status": "ok", "matches": list(matches), "cursor_start": start,
            "cursor_end": pos, "metadata": {}}


def _inspect(content):
    code = content.get("code", "")
    pos = content.get("cursor_pos")
    pos = len(code) if pos is None else max(0, min(int(pos), len(code)))
    level = int(content.get("detail_level", 0) or 0)
    name, _ = _token_at(code, pos)
    if not name:
        m = re.search(r"([\w.]+)\s*\(?\s*$", code[:pos])
        name = m.group(1) if m else ""
    shell = _rt()._ipython_shell()
    data = {}
    if name and shell is not None:
        try:
            data = shell.object_inspect_mime(name, detail_level=level)
        except Exception:  # noqa: BLE001 - not found
            data = {}
    elif name:
        obj = _rt().namespace().get(name.split(".")[0])
        for part in name.split(".")[1:]:
            obj = getattr(obj, part, None)
        if obj is not None:
            data = {"text/plain": f"{name}: {type(obj).__name__}\n{obj.__doc__ or ''}"}
    return {"status": "ok", "found": bool(data), "data": data, "metadata": {}}


def _cpar_version():
    try:
        import cpar

        return cpar.__version__
    except Exception:  # noqa: BLE001
        return ""


def _log(text):
    try:
        import _cpar_engine

        _cpar_engine.log(text)
    except (ImportError, AttributeError):
        print(text, file=sys.__stderr__)
