"""Signal names and numbers for ``Client.send_signal`` and ``%%px --signal-on-interrupt``."""

import signal
import struct

__all__ = ["signal_number", "signal_frame"]


def signal_number(sig):
    """The number of ``sig``: a ``signal.Signals``, an int, or a string (``"SIGKILL"``,
    ``"KILL"``, ``"9"``). 0 is allowed (it checks the engines exist and does nothing).
    Anything else raises ValueError naming what was given."""
    if isinstance(sig, bool):
        raise ValueError(f"not a signal: {sig!r}")
    if isinstance(sig, str):
        text = sig.strip()
        if text.lstrip("-").isdigit():
            sig = int(text)
        else:
            name = text.upper()
            if not name.startswith("SIG"):
                name = "SIG" + name
            if name.startswith("SIG_") or not hasattr(signal.Signals, name):
                raise ValueError(f"unknown signal name {text!r} (use e.g. SIGINT, SIGTERM, "
                                 "SIGKILL or a number)")
            return int(signal.Signals[name])
    if isinstance(sig, int):
        n = int(sig)
        if 0 <= n < signal.NSIG:
            return n
        raise ValueError(f"signal number {n} out of range 0..{signal.NSIG - 1}")
    raise ValueError(f"not a signal: {sig!r} (give a name such as 'SIGINT' or a number)")


def signal_frame(sig):
    """The INTERRUPT message's signal frame: the number as a little-endian int32."""
    return struct.pack("<i", signal_number(sig))
