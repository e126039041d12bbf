"""Denies process_vm_readv of any other process, as a container's seccomp profile, Yama
ptrace_scope or another uid would: a seccomp filter makes the call fail with EPERM unless
its pid is the caller's own (so the shared-memory self-test still passes, and only reads
of peers are refused).

As a module: ``install()`` filters the calling process (and the threads it starts later).
As a program: ``noptrace.py ENGINE ARGS...`` installs the filter, then execs ENGINE (the
filter and the pid survive exec), for use as $CPAR_ENGINE through a small shell wrapper."""

import ctypes
import os
import platform
import sys

_PR_SET_NO_NEW_PRIVS = 38
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_AUDIT_ARCH_X86_64 = 0xC000003E
_NR_PROCESS_VM_READV = 310  # x86_64
_RET_ALLOW = 0x7FFF0000
_RET_ERRNO_EPERM = 0x00050000 | 1
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ_K = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_RET_K = 0x06  # BPF_RET | BPF_K


class _Filter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte),
                ("k", ctypes.c_uint)]


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(_Filter))]


def install():
    if platform.machine() != "x86_64":
        raise RuntimeError("noptrace: only x86_64 syscall numbers are known")
    pid = os.getpid()
    code = [
        (_LD_W_ABS, 0, 0, 4),  # seccomp_data.arch
        (_JEQ_K, 0, 5, _AUDIT_ARCH_X86_64),  # another ABI: allow
        (_LD_W_ABS, 0, 0, 0),  # seccomp_data.nr
        (_JEQ_K, 0, 3, _NR_PROCESS_VM_READV),  # another call: allow
        (_LD_W_ABS, 0, 0, 16),  # args[0], low 32 bits: the pid read from
        (_JEQ_K, 1, 0, pid),  # our own: allow
        (_RET_K, 0, 0, _RET_ERRNO_EPERM),
        (_RET_K, 0, 0, _RET_ALLOW),
    ]
    filters = (_Filter * len(code))(*[_Filter(*c) for c in code])
    prog = _Prog(len(code), filters)
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong,
                           ctypes.c_ulong]
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, None, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.addressof(prog), 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_SECCOMP)")


if __name__ == "__main__":
    install()
    os.execv(sys.argv[1], sys.argv[1:])
