"""What the launcher tests share: the ``cpar`` command, waiting for processes to end,
batch systems' submit/cancel programs written by the tests, and a real single-node Slurm
(``slurm``, a session fixture: munged, slurmctld and slurmd of its own)."""

import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from cpar.cluster.launcher import _die_with_parent, pid_alive

def cpar_cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "cpar", *args], capture_output=True,
                          text=True, timeout=timeout)


def wait_gone(pids, timeout=15):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
        time.sleep(0.05)
    return [p for p in pids if pid_alive(p)]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


FAKE_SUBMIT = """#!/bin/sh
# Records its argv and the script, starts the job in its own session, prints a job id.
rec={rec}
printf '%s\\n' "$0" "$@" > "$rec/submit.argv"
script=""; for a in "$@"; do script="$a"; done
cp "$script" "$rec/job.sh"
if [ "{run}" = yes ]; then
  setsid sh "$script" > "$rec/job.out" 2>&1 < /dev/null &
  echo "$!" > "$rec/job.pid"
  echo "{prefix}$!{suffix}"
else
  echo "{prefix}4242{suffix}"
fi
"""

FAKE_CANCEL = """#!/bin/sh
rec={rec}
printf '%s\\n' "$@" > "$rec/cancel.argv"
for id in "$@"; do kill -TERM "-${{id%%.*}}" 2>/dev/null; done
exit 0
"""


def fake_batch(tmp_path, run=False, prefix="", suffix=""):
    rec = tmp_path / "rec"
    rec.mkdir()
    submit, cancel = tmp_path / "fake-submit", tmp_path / "fake-cancel"
    submit.write_text(FAKE_SUBMIT.format(rec=rec, run="yes" if run else "no", prefix=prefix,
                                         suffix=suffix))
    cancel.write_text(FAKE_CANCEL.format(rec=rec))
    submit.chmod(0o755)
    cancel.chmod(0o755)
    return str(submit), str(cancel), rec


def _slurm_unusable():
    for exe in ("munged", "slurmctld", "slurmd", "sbatch", "scancel", "squeue"):
        if shutil.which(exe) is None and not os.path.exists(f"/usr/sbin/{exe}"):
            return f"{exe} not installed (Debian: slurm-wlm munge)"
    if os.geteuid() != 0:
        return "the single-node Slurm fixture runs slurmd (which starts jobs) as root"
    return None


def _start(argv, log):
    return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True,
                            preexec_fn=_die_with_parent)  # gone if pytest is killed


@pytest.fixture(scope="session")
def slurm(tmp_path_factory):
    """munged, slurmctld and slurmd of our own (free ports, state in a tmp dir, no cgroups:
    proctrack/linuxproc, task/none), and $SLURM_CONF pointing the commands at them."""
    why = _slurm_unusable()
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("slurm")
    for sub in ("munge", "state", "spool", "run"):
        (d / sub).mkdir()
    (d / "munge").chmod(0o755)
    key = d / "munge.key"
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    sock = d / "munge" / "munge.sock"
    node = socket.gethostname().split(".")[0]
    conf = d / "slurm.conf"
    conf.write_text(textwrap.dedent(f"""\
        ClusterName=cpartest
        SlurmctldHost={node}(127.0.0.1)
        SlurmctldPort={free_port()}
        SlurmdPort={free_port()}
        SlurmUser=root
        SlurmdUser=root
        AuthType=auth/munge
        CredType=cred/munge
        AuthInfo=socket={sock}
        StateSaveLocation={d / 'state'}
        SlurmdSpoolDir={d / 'spool'}
        SlurmctldPidFile={d / 'run' / 'slurmctld.pid'}
        SlurmdPidFile={d / 'run' / 'slurmd.pid'}
        SlurmctldLogFile={d / 'slurmctld.log'}
        SlurmdLogFile={d / 'slurmd.log'}
        ProctrackType=proctrack/linuxproc
        TaskPlugin=task/none
        SelectType=select/cons_tres
        SelectTypeParameters=CR_CPU
        JobAcctGatherType=jobacct_gather/none
        AccountingStorageType=accounting_storage/none
        MpiDefault=none
        SwitchType=switch/none
        ReturnToService=2
        SlurmdParameters=config_overrides
        NodeName={node} NodeAddr=127.0.0.1 CPUs=4 RealMemory=2000 State=UNKNOWN
        PartitionName=debug Nodes={node} Default=YES MaxTime=INFINITE State=UP
        """))
    env_before = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(conf)
    log = open(d / "daemons.log", "ab")
    procs = [_start(["munged", "-F", "-f", f"--socket={sock}", f"--key-file={key}",
                     f"--log-file={d / 'munged.log'}", f"--pid-file={d / 'munged.pid'}",
                     f"--seed-file={d / 'munged.seed'}"], log)]
    try:
        deadline = time.monotonic() + 20
        while not sock.exists():
            if procs[0].poll() is not None or time.monotonic() > deadline:
                pytest.skip("munged does not start here: " + (d / "daemons.log").read_text())
            time.sleep(0.05)
        procs.append(_start(["slurmctld", "-D", "-i", "-f", str(conf)], log))
        procs.append(_start(["slurmd", "-D", "-N", node, "-f", str(conf)], log))
        deadline = time.monotonic() + 30
        while True:
            r = subprocess.run(["sinfo", "-h", "-o", "%T"], capture_output=True, text=True,
                               timeout=30)
            if r.stdout.strip() == "idle":
                break
            if any(p.poll() is not None for p in procs) or time.monotonic() > deadline:
                out = "".join(f"\n--- {f.name}\n{f.read_text()[-3000:]}"
                              for f in d.glob("*.log"))
                pytest.fail(f"single-node Slurm did not come up ({r.stdout}{r.stderr}):{out}")
            time.sleep(0.2)
        yield d
    finally:
        subprocess.run(["scancel", "--user", str(os.geteuid())], capture_output=True,
                       timeout=30)
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        log.close()
        if env_before is None:
            os.environ.pop("SLURM_CONF", None)
        else:
            os.environ["SLURM_CONF"] = env_before


def squeue(job_id):
    r = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True,
                       text=True, timeout=30)
    return r.stdout.strip()
