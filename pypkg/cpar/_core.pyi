"""Type stubs of cpar._core, cpar's private C extension (cext/module/)."""

from collections.abc import Sequence
from types import TracebackType
from typing import Final, final

from typing_extensions import Buffer, Self

# Message types (docs/protocol.md)
MSG_REGISTER: Final[int]
MSG_REGISTER_REPLY: Final[int]
MSG_HEARTBEAT: Final[int]
MSG_CONNECT: Final[int]
MSG_CONNECT_REPLY: Final[int]
MSG_EXECUTE: Final[int]
MSG_APPLY: Final[int]
MSG_REPLY: Final[int]
MSG_STREAM: Final[int]
MSG_ERROR: Final[int]
MSG_INTERRUPT: Final[int]
MSG_SHUTDOWN: Final[int]
MSG_SHUTDOWN_REPLY: Final[int]
MSG_ENGINE_EVENT: Final[int]
MSG_RELEASE: Final[int]
MSG_PROBE: Final[int]
MSG_TASK: Final[int]
MSG_ABORT: Final[int]
MSG_QUERY: Final[int]
MSG_DB_REQUEST: Final[int]
MSG_DB_REPLY: Final[int]
MSG_RECLAIM: Final[int]
MSG_RECLAIM_REPLY: Final[int]
MSG_QUERY_REPLY: Final[int]
STATUS_UNMET: Final[int]

# Header flags
FLAG_STDOUT: Final[int]
FLAG_STDERR: Final[int]
FLAG_HUB: Final[int]
FLAG_TARGETED: Final[int]
FLAG_SHM: Final[int]
FLAG_SHM_OK: Final[int]
FLAG_DISPLAY: Final[int]
FLAG_COALESCE: Final[int]

# REPLY status
STATUS_OK: Final[int]
STATUS_ERROR: Final[int]

NO_ENGINE: Final[int]
ID_SIZE: Final[int]
MAX_FRAMES: Final[int]
MAX_TARGETS: Final[int]
WIRE_VERSION: Final[int]
ZEROCOPY_MIN_SIZE: Final[int]
SHM_MIN_SIZE: Final[int]

# Error codes (negative; the status of ERROR messages)
E_NOMEM: Final[int]
E_INVAL: Final[int]
E_PROTO: Final[int]
E_SIG: Final[int]
E_VERSION: Final[int]
E_TYPE: Final[int]
E_ZMQ: Final[int]
E_TIMEOUT: Final[int]
E_CLOSED: Final[int]
E_NOENGINE: Final[int]
E_ENGINEDEAD: Final[int]
E_CRYPTO: Final[int]
E_IO: Final[int]
E_AGAIN: Final[int]
E_SHUTDOWN: Final[int]
E_IMPOSSIBLE: Final[int]
E_DEPTIMEOUT: Final[int]
E_ABORTED: Final[int]
E_TASKTIMEOUT: Final[int]

def now_ns() -> int:
    """Nanoseconds since the Unix epoch (the clock of t0/t1)."""

def error_class(code: int, /) -> type[Exception]:
    """The exception class cpar uses for a negative error code."""

def strerror(code: int, /) -> str:
    """A short description of a negative error code."""

def _debug_counts() -> dict[str, int]:
    """Live objects (connections, messages, queued, zerocopy, shm_pinned), for leak checks,
    the shared-memory path's totals (shm_sent, shm_received, shm_failed, shm_denied,
    shm_fallback, shm_enabled) and
    the page pool's (pagepool_hits, pagepool_misses: reads into kept or fresh pages;
    pagepool_kept: mappings kept now)."""

def _shm_token() -> str | None:
    """This process's shared-memory locality token, or None when the path is disabled."""

@final
class Frame:
    """One received frame: a writable buffer owning its memory (no copy)."""

    def __buffer__(self, flags: int, /) -> memoryview: ...
    def __len__(self) -> int: ...
    @property
    def bytes(self) -> bytes:
        """A copy of the frame's bytes."""

    @property
    def buffer(self) -> memoryview:
        """A writable memoryview over the frame, no copy."""

@final
class Message:
    """A message received on a Connection (read-only)."""

    @property
    def type(self) -> int: ...
    @property
    def flags(self) -> int: ...
    @property
    def target(self) -> int: ...
    @property
    def engine(self) -> int: ...
    @property
    def status(self) -> int: ...
    @property
    def msg_id(self) -> bytes: ...
    @property
    def parent(self) -> bytes: ...
    @property
    def t0(self) -> int: ...
    @property
    def t1(self) -> int: ...
    @property
    def frames(self) -> list[Frame]: ...

@final
def curve_keypair() -> tuple[str, str]: ...

class Connection:
    """A client's connection to the controller; a C I/O thread owns the socket.

    Besides messages from the controller, recv() returns locally made ERROR messages: for
    a message that could not be sent (parent = its msg_id) and when the connection drops
    (parent = 16 zero bytes, status E_CLOSED)."""

    def __new__(
        cls,
        url: str,
        key: bytes | str,
        curve_serverkey: str | None = None,
        curve_publickey: str | None = None,
        curve_secretkey: str | None = None,
        *,
        shm: bool = True,
    ) -> Self: ...
    @property
    def handshake_failed(self) -> int: ...
    def send(
        self,
        type: int,
        frames: Sequence[Buffer | str] = (),
        *,
        msg_id: bytes,
        parent: bytes = b"",
        target: int = -1,
        engine: int = -1,
        status: int = 0,
        flags: int = 0,
        t0: int = 0,
        t1: int = 0,
    ) -> None:
        """Queues one message; the I/O thread signs and sends it. Never blocks."""

    def recv(self, timeout: float | None = None, max: int = 10000) -> list[Message]:
        """Waits (GIL released) for messages; [] on timeout. ConnectionClosed when closed."""

    def close(self) -> None:
        """Stops the I/O thread and closes the socket (idempotent)."""

    def __enter__(self) -> Self: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    @property
    def url(self) -> str: ...
    @property
    def closed(self) -> bool: ...
    @property
    def connected(self) -> bool: ...
    @property
    def sent(self) -> int: ...
    @property
    def received(self) -> int: ...
    @property
    def bad_signature(self) -> int: ...
    @property
    def malformed(self) -> int: ...
    @property
    def send_failed(self) -> int: ...
    @property
    def disconnects(self) -> int: ...
    @property
    def shm(self) -> int: ...
    @property
    def shm_sent(self) -> int: ...
    @property
    def shm_received(self) -> int: ...
    @property
    def shm_failed(self) -> int: ...
    @property
    def shm_denied(self) -> int: ...
    @property
    def shm_fallback(self) -> int: ...
    @property
    def shm_probing(self) -> int: ...

@final
class Controller:
    """The C controller; binds at creation, serves in run() (GIL released)."""

    def __new__(
        cls,
        client_url: str,
        engine_url: str,
        key: bytes | str,
        log_path: str | None = None,
        hb_period_ms: int = 500,
        hb_timeout_ms: int = 3000,
        scheme: str | None = None,
        hwm: int = 0,
        max_records: int = 0,
        *,
        curve_secret: str | None = None,
        curve_allowed: str | None = None,
        replay_window_ms: int = 0,
        replay_ids: int = 0,
        max_message: int = 0,
        db: str | None = None,
        db_file: str | None = None,
        db_max_records: int = 0,
        db_max_bytes: int = 0,
        db_keep_bytes: int = 0,
        cluster_id: str = "",
        recover: bool = False,
        recover_grace_ms: int = 60000,
    ) -> Self: ...
    @property
    def client_url(self) -> str: ...
    @property
    def engine_url(self) -> str: ...
    @property
    def running(self) -> bool: ...
    def run(self) -> None:
        """Serves until a hub SHUTDOWN completes or stop() is called (runs once)."""

    def stop(self) -> None:
        """Asks the loop to stop; thread-safe."""

    def install_signal_stop(self) -> None:
        """Makes SIGINT/SIGTERM stop this controller."""

    def close(self) -> None:
        """Unbinds and frees the controller (not while running); idempotent."""
