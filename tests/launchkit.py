"""What the launcher tests share: the ``cpar`` command, waiting for processes to end,
batch systems' submit/cancel programs written by the tests, and a real single-node Slurm
(``slurm``, a session fixture: munged, slurmctld and slurmd of its own)."""

import os
import shutil
import signal
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


# -- a real single-host Grid Engine (SGE) ------------------------------------------------------
SGE_ROOT = "/var/lib/gridengine"
SGE_QMASTER_PID = "/var/spool/gridengine/qmaster/qmaster.pid"
SGE_EXECD_PID = "/var/spool/gridengine/execd/localhost/execd.pid"

# load_thresholds NONE: the template's np_load_avg=1.75 puts the queue in alarm (no job
# starts) whenever the load passes 3.5 on 2 cores, as a busy test machine's can.
SGE_QUEUE = {"qname": "all.q", "hostlist": "localhost", "slots": "4", "pe_list": "mpi",
             "shell": "/bin/sh", "load_thresholds": "NONE"}
SGE_PE = """pe_name mpi
slots 64
user_lists NONE
xuser_lists NONE
start_proc_args NONE
stop_proc_args NONE
allocation_rule $fill_up
control_slaves TRUE
job_is_first_task FALSE
urgency_slots min
accounting_summary FALSE
qsort_args NONE
"""


def _sge_unusable():
    for exe in ("qconf", "qsub", "qstat", "qdel", "/usr/sbin/sge_qmaster",
                "/usr/sbin/sge_execd"):
        if shutil.which(exe) is None:
            return f"{exe} not installed (Debian: gridengine-master gridengine-exec " \
                   "gridengine-client)"
    if os.geteuid() != 0:
        return "the single-host SGE fixture starts sge_qmaster and sge_execd as root"
    try:
        with open(f"{SGE_ROOT}/default/common/act_qmaster") as f:
            master = f.read().strip()
    except OSError:
        return "no SGE cell 'default' (the gridengine-master package creates it)"
    if master not in ("", "localhost"):  # empty until its qmaster first started
        return (f"the SGE cell 'default' belongs to the master {master!r}; the fixture only "
                "runs the one Debian's package set up on this host")
    return None


def _sge(*args, check=True, timeout=60):
    r = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout,
                       stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(args)}: {r.stdout}{r.stderr}")
    return r


def _sge_pid(path):
    try:
        with open(path) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _sge_running(path):
    pid = _sge_pid(path)
    return pid is not None and pid > 0 and pid_alive(pid)


def _sge_configure(d):
    """Idempotent: a submit host, root may run jobs, the scheduler runs every second, a
    parallel environment `mpi` and a queue `all.q` of 4 slots on localhost."""
    _sge("qconf", "-as", "localhost", check=False)
    conf = _sge("qconf", "-sconf").stdout
    conf = "\n".join("min_uid 0" if line.startswith("min_uid") else
                     "min_gid 0" if line.startswith("min_gid") else line
                     for line in conf.splitlines())
    (d / "conf").mkdir(exist_ok=True)
    (d / "conf" / "global").write_text(conf + "\n")
    subprocess.run(["qconf", "-Mconf", "global"], cwd=d / "conf", capture_output=True,
                   timeout=60)
    sched = _sge("qconf", "-ssconf").stdout
    sched = "\n".join("schedule_interval 0:0:1" if line.startswith("schedule_interval")
                      else line for line in sched.splitlines())
    (d / "sched").write_text(sched + "\n")
    _sge("qconf", "-Msconf", str(d / "sched"))
    if "mpi" not in _sge("qconf", "-spl", check=False).stdout.split():
        (d / "mpi.pe").write_text(SGE_PE)
        _sge("qconf", "-Ap", str(d / "mpi.pe"))
    if "all.q" not in _sge("qconf", "-sql", check=False).stdout.split():
        lines = []
        for line in _sge("qconf", "-sq").stdout.splitlines():  # the queue template
            key = line.split(" ", 1)[0]
            lines.append(f"{key} {SGE_QUEUE[key]}" if key in SGE_QUEUE else line)
        (d / "all.q").write_text("\n".join(lines) + "\n")
        _sge("qconf", "-Aq", str(d / "all.q"))
    else:  # made by an earlier run, perhaps with the template's load threshold
        _sge("qconf", "-rattr", "queue", "load_thresholds", "NONE", "all.q")


@pytest.fixture(scope="session")
def sge(tmp_path_factory):
    """sge_qmaster and sge_execd of Debian's cell `default` on localhost (the package made
    it; the fixture names this host's aliases, configures a queue and a parallel
    environment, starts both daemons and stops them at the end)."""
    why = _sge_unusable()
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("sge")
    before = {k: os.environ.get(k) for k in ("SGE_ROOT", "SGE_CELL")}
    os.environ.update(SGE_ROOT=SGE_ROOT, SGE_CELL="default")
    host = socket.gethostname()
    with open(f"{SGE_ROOT}/default/common/host_aliases", "w") as f:
        # Every name of this host resolves to 127.0.0.1, which reads back as localhost.
        f.write(f"localhost {host} {host.split('.')[0]}\n")
    daemons = []
    try:
        if not _sge_running(SGE_QMASTER_PID):
            _sge("/usr/sbin/sge_qmaster")
        deadline = time.monotonic() + 60
        while _sge("qstat", check=False).returncode != 0:
            if time.monotonic() > deadline:
                pytest.fail("sge_qmaster did not answer within 60 s")
            time.sleep(0.5)
        daemons.append(SGE_QMASTER_PID)
        _sge_configure(d)
        if not _sge_running(SGE_EXECD_PID):
            _sge("/usr/sbin/sge_execd")
        daemons.append(SGE_EXECD_PID)
        deadline = time.monotonic() + 60
        while True:  # the queue instance is up once the execd reports (no 'a'/'u'/'E')
            _sge("qmod", "-c", "all.q@localhost", check=False)
            rows = _sge("qstat", "-f", "-q", "all.q", check=False).stdout.splitlines()
            row = next((r for r in rows if r.startswith("all.q@")), "")
            if row and len(row.split()) == 5:  # name, type, slots, load, arch: no states
                break
            if time.monotonic() > deadline:
                pytest.fail(f"the SGE queue did not come up: {row!r}")
            time.sleep(0.5)
        yield d
    finally:
        _sge("qdel", "-u", "root", "*", check=False)
        if SGE_EXECD_PID in daemons:
            _sge("qconf", "-ke", "localhost", check=False)
        if SGE_QMASTER_PID in daemons:
            _sge("qconf", "-km", check=False)
        for path in daemons:
            pid = _sge_pid(path)
            deadline = time.monotonic() + 30
            while _sge_running(path) and time.monotonic() < deadline:
                time.sleep(0.2)
            if pid and pid > 0 and pid_alive(pid):
                os.kill(pid, signal.SIGKILL)
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# -- an sshd of our own (ssh engines and controllers, client tunnels) ----------------------
def _ssh_unusable():
    for exe in ("sshd", "ssh", "scp", "ssh-keygen"):
        if shutil.which(exe) is None and not os.path.exists(f"/usr/sbin/{exe}"):
            return f"{exe} not installed (Debian: openssh-server openssh-client)"
    return None


@pytest.fixture(scope="module")
def sshd(tmp_path_factory):
    """An sshd of our own on 127.0.0.1:PORT with a throwaway host key and client key."""
    why = _ssh_unusable()
    if why:
        pytest.skip(why)
    d = tmp_path_factory.mktemp("sshd")
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(d / name)],
                       check=True, timeout=30)
    auth = d / "authorized_keys"
    shutil.copy(d / "client_key.pub", auth)
    auth.chmod(0o600)
    port = free_port()
    cfg = d / "sshd_config"
    cfg.write_text(textwrap.dedent(f"""\
        Port {port}
        ListenAddress 127.0.0.1
        HostKey {d / 'host_key'}
        PidFile {d / 'sshd.pid'}
        AuthorizedKeysFile {auth}
        PubkeyAuthentication yes
        PasswordAuthentication no
        KbdInteractiveAuthentication no
        PermitRootLogin prohibit-password
        UsePAM no
        StrictModes no
        Subsystem sftp internal-sftp
        LogLevel ERROR
        """))
    if os.geteuid() == 0:
        os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
    sshd_exe = shutil.which("sshd") or "/usr/sbin/sshd"
    log = open(d / "sshd.log", "wb")
    proc = subprocess.Popen([sshd_exe, "-D", "-e", "-f", str(cfg)], stdout=log,
                            stderr=subprocess.STDOUT, preexec_fn=_die_with_parent)
    ssh_args = ["-p", str(port), "-i", str(d / "client_key"), "-o", "StrictHostKeyChecking=no",
                "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
                "-o", "LogLevel=ERROR"]
    deadline = time.monotonic() + 20
    while True:
        r = subprocess.run(["ssh", *ssh_args, "localhost", "echo ok"], capture_output=True,
                           text=True, timeout=30)
        if r.stdout.strip() == "ok":
            break
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            log.close()
            pytest.fail(f"our sshd did not accept a login: {r.stderr}\n"
                        + (d / "sshd.log").read_text())
        time.sleep(0.2)
    try:
        yield {"ssh_args": ssh_args, "dir": d, "port": port}
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()

