"""Engine launchers beyond this machine's processes, each against the real thing it drives:
``mpiexec`` (OpenMPI) with mpi4py across the engines, an ``sshd`` started by the test on a
free port, a single-node Slurm where the machine can run one, and batch systems (PBS, SGE,
a user template) through small submit/cancel programs that the tests write."""

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import textwrap
import time

import pytest

import cpar
from cpar import paths
from cpar.cluster.batch import PBSEngineLauncher, SGEEngineLauncher, SlurmEngineLauncher
from cpar.cluster.ssh import SSHEngineLauncher, parse_hosts, scp_args_from_ssh_args
from launchkit import cpar_cli, fake_batch, squeue, wait_gone


# -- rankexec: the per-rank wrapper ------------------------------------------------------
@pytest.mark.parametrize("var", ["OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK",
                                 "SLURM_PROCID"])
def test_rankexec_asks_for_id_first_id_plus_rank(var):
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")}
    env[var] = "2"
    r = subprocess.run([sys.executable, "-m", "cpar.cluster.rankexec", "--first-id", "3",
                        "--", "/bin/echo", "log-{id}-{rank}"], env=env, capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["log-5-2", "--id", "5"]


def test_rankexec_without_a_rank_says_so():
    env = {k: v for k, v in os.environ.items()
           if k not in ("OMPI_COMM_WORLD_RANK", "PMI_RANK", "PMIX_RANK", "SLURM_PROCID")}
    r = subprocess.run([sys.executable, "-m", "cpar.cluster.rankexec", "--", "/bin/true"],
                       env=env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "no rank in the environment" in r.stderr


# -- MPI -----------------------------------------------------------------------------------
_NO_MPI = None
if shutil.which("mpiexec") is None:
    _NO_MPI = "mpiexec not installed (Debian: openmpi-bin libopenmpi-dev; `make deps`)"
else:
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        _NO_MPI = "mpi4py not installed in this Python (pip install mpi4py)"


@pytest.mark.skipif(_NO_MPI is not None, reason=_NO_MPI or "")
def test_mpi_engines_rank_is_id_and_allreduce_works():
    r = cpar_cli("cluster", "start", "--engines", "mpi", "-n", "4", "--daemonize",
                 "--cluster-id", "mpi")
    assert r.returncode == 0, r.stdout + r.stderr
    info = paths.read_json(paths.cluster_file(cluster_id="mpi"))
    assert info["engine_launcher"] == "mpi"
    mpiexec_pids = info["engines"]["pids"]
    assert len(mpiexec_pids) == 1
    engine_pids = []
    try:
        with cpar.Client(cluster_id="mpi") as rc:
            assert rc.ids == [0, 1, 2, 3]
            engine_pids = rc[:].apply_sync(os.getpid)
            # MPI_Init is collective: every rank imports mpi4py at once.
            rc[:].execute("from mpi4py import MPI; "
                          "s = MPI.COMM_WORLD.allreduce(MPI.COMM_WORLD.Get_rank())",
                          block=True)
            for k in rc.ids:
                assert rc[k].apply_sync(lambda: MPI.COMM_WORLD.Get_rank()) == k  # noqa: F821
                assert rc[k].apply_sync(lambda: MPI.COMM_WORLD.Get_size()) == 4  # noqa: F821
            assert rc[:].pull("s", block=True) == [6, 6, 6, 6]
            # %px works the same way (the magics send execute requests).
            rc[:].execute("t = MPI.COMM_WORLD.allreduce(1)", block=True)
            assert rc[:].pull("t", block=True) == [4] * 4
    finally:
        stop = cpar_cli("cluster", "stop", "--cluster-id", "mpi")
    assert stop.returncode == 0, stop.stderr
    assert wait_gone(mpiexec_pids + engine_pids + info["controller"]["pids"]) == []
    assert not os.path.exists(paths.cluster_file(cluster_id="mpi"))


@pytest.mark.skipif(_NO_MPI is not None, reason=_NO_MPI or "")
def test_mpi_more_engines_get_the_next_ids_and_killed_mpiexec_takes_its_ranks():
    c = cpar.Cluster(engines="mpi", n=2, cluster_id="mpi2")
    with c as rc:
        c.start_engines_sync(2)
        c.wait_for_engines(4, timeout=60)
        assert rc.ids == [0, 1, 2, 3]
        ranks = [rc[k].apply_sync(lambda: int(__import__("os").environ["OMPI_COMM_WORLD_RANK"]))
                 for k in rc.ids]
        assert ranks == [0, 1, 0, 1]
        engine_pids = rc[:].apply_sync(os.getpid)
        mpiexecs = c.engines.pids
        assert len(mpiexecs) == 2
        # SIGINT through the launcher interrupts a task and leaves the job running.
        ar = rc[3].apply_async(time.sleep, 60)
        time.sleep(0.5)
        c.engines.signal(signal.SIGINT)
        with pytest.raises(cpar.RemoteError, match="KeyboardInterrupt"):
            ar.get(timeout=30)
        assert rc[:].apply_sync(lambda: 1) == [1] * 4
        # The launcher's own stop (no controller shutdown first) leaves no rank behind.
        c.engines.launchers[1].stop()
        assert wait_gone(engine_pids[2:] + mpiexecs[1:]) == []
    assert wait_gone(engine_pids + mpiexecs) == []


@pytest.mark.skipif(shutil.which("mpiexec.mpich") is None,
                    reason="MPICH not installed (Debian: mpich; `make deps-test`)")
def test_mpich_controller_and_engines_rank_is_id():
    """MPICH's hydra: no OpenMPI options added, rank from PMI_RANK, the controller as its
    own one-rank job; the launcher's stop (SIGTERM to mpiexec) leaves no rank behind."""
    from cpar.cluster.mpi import mpi_flavour

    assert mpi_flavour(shutil.which("mpiexec.mpich")) == "mpich"
    c = cpar.Cluster(engines="mpi", n=3, cluster_id="mpich", mpiexec="mpiexec.mpich",
                     controller="mpi", controller_options={"mpiexec": "mpiexec.mpich"})
    with c as rc:
        assert rc.ids == [0, 1, 2]
        env = rc[:].apply_sync(lambda: (__import__("os").environ["PMI_RANK"],
                                        __import__("os").environ["PMI_SIZE"]))
        assert env == [("0", "3"), ("1", "3"), ("2", "3")]
        ctl = paths.read_json(c.connection_file)["controller_pid"]
        assert ctl not in c.controller.pids
        engine_pids = rc[:].apply_sync(os.getpid)
        ar = rc[2].apply_async(time.sleep, 60)
        time.sleep(0.5)
        c.engines.signal(signal.SIGINT)  # straight to the engines, not to hydra
        with pytest.raises(cpar.RemoteError, match="KeyboardInterrupt"):
            ar.get(timeout=30)
        assert rc[:].apply_sync(lambda: 1) == [1] * 3
        c.engines.stop()
        assert wait_gone(engine_pids + c.engines.pids) == []
    assert wait_gone([ctl] + c.controller.pids) == []


def test_mpi_launcher_command_line(monkeypatch):
    c = cpar.Cluster(engines="mpi", n=3, cluster_id="mpiargv", mpi_args=["--host", "a,b"],
                     mpi_defaults=False, mpiexec=sys.executable)
    from cpar.cluster.mpi import MPIEngineLauncher

    la = MPIEngineLauncher.for_cluster(c, 3, 5, **c.engine_options)
    argv = la.argvs[0]
    assert argv[:5] == [sys.executable, "-n", "3", "--host", "a,b"]
    assert argv[5:10] == [sys.executable, "-m", "cpar.cluster.rankexec", "--first-id", "5"]
    assert "--connection-file" in argv and c.connection_file in argv
    assert la.engine_logs[0].endswith("engine-5-mpiargv.log")
    d = json.loads(json.dumps(la.to_dict()))
    assert MPIEngineLauncher.from_dict(d).n == 3


# -- SSH -----------------------------------------------------------------------------------
def test_ssh_host_lists_and_scp_options():
    assert parse_hosts({"a": 4, "b": 2}) == {"a": 4, "b": 2}
    assert parse_hosts("a:4,b,b") == {"a": 4, "b": 2}
    assert parse_hosts(["user@a:2", "b"]) == {"user@a": 2, "b": 1}
    with pytest.raises(ValueError):
        parse_hosts({})
    assert scp_args_from_ssh_args(["-p", "2222", "-i", "k", "-T", "-p2200"]) == \
        ["-P", "2222", "-i", "k", "-P2200"]
    with pytest.raises(ValueError, match="needs ssh_hosts"):
        SSHEngineLauncher.for_cluster(cpar.Cluster(engines="ssh", n=1, cluster_id="x"), 1, 0)
    with pytest.raises(ValueError, match="n=3 but ssh_hosts has 2 engines"):
        SSHEngineLauncher.for_cluster(cpar.Cluster(engines="ssh", n=3, cluster_id="x"), 3, 0,
                                      ssh_hosts={"a": 2})


def test_ssh_engines_on_localhost(sshd):
    remote_dir = str(sshd["dir"] / "remote")
    c = cpar.Cluster(engines="ssh", ssh_hosts={"localhost": 2}, cluster_id="ssh",
                     ssh_args=sshd["ssh_args"], ssh_remote_dir=remote_dir)
    assert c.n == 2
    with c as rc:
        assert rc.ids == [0, 1]
        pids = rc[:].apply_sync(os.getpid)
        assert rc[:].apply_sync(lambda x: x * 2, 21) == [42, 42]
        remote_cf = os.path.join(remote_dir, "default-ssh-connection.json")
        assert stat.S_IMODE(os.stat(remote_cf).st_mode) == 0o600
        assert paths.read_json(remote_cf) == paths.read_json(c.connection_file)
        la = c.engines.launchers[0]
        assert sorted(la.remote_pids()["localhost"]) == sorted(pids)
        ar = rc[0].apply_async(time.sleep, 60)
        time.sleep(0.5)
        c.engines.signal(signal.SIGINT)  # through `ssh localhost kill -2 PID`
        with pytest.raises(cpar.RemoteError, match="KeyboardInterrupt"):
            ar.get(timeout=30)
        assert rc[:].apply_sync(lambda: 1) == [1, 1]
        ssh_clients = list(c.engines.pids)
        info = paths.read_json(c.cluster_file)
        assert info["engine_launcher"] == "ssh"
        assert info["engine_options"]["ssh_hosts"] == {"localhost": 2}
    assert wait_gone(pids + ssh_clients) == []
    assert not os.path.exists(remote_cf), "the copied connection file was not removed"


def test_ssh_cli_start_and_stop_from_another_process_kills_remote_engines(sshd):
    remote_dir = str(sshd["dir"] / "remote-cli")
    r = cpar_cli("cluster", "start", "--engines", "ssh", "--ssh-hosts", "localhost:2",
                 "--ssh-args=" + " ".join(sshd["ssh_args"]), "--ssh-remote-dir", remote_dir,
                 "--daemonize", "--cluster-id", "sshcli")
    assert r.returncode == 0, r.stdout + r.stderr
    info = paths.read_json(paths.cluster_file(cluster_id="sshcli"))
    with cpar.Client(cluster_id="sshcli") as rc:
        assert rc.ids == [0, 1]
        pids = rc[:].apply_sync(os.getpid)
    # Kill the controller: the engines can no longer be told to stop, only killed
    # through ssh with the pids they printed.
    for p in info["controller"]["pids"]:
        os.kill(p, 9)
    assert wait_gone(info["controller"]["pids"]) == []
    stop = cpar_cli("cluster", "stop", "--cluster-id", "sshcli")
    assert stop.returncode == 0, stop.stderr
    assert wait_gone(pids + info["engines"]["pids"]) == []


def test_ssh_controller_with_ssh_engines_and_cli_stop(sshd):
    remote_dir = str(sshd["dir"] / "remote-ctl")
    r = cpar_cli("cluster", "start", "--controller", "ssh", "--controller-host", "localhost",
                 "--engines", "ssh", "--ssh-hosts", "localhost:1",
                 "--ssh-args=" + " ".join(sshd["ssh_args"]), "--ssh-remote-dir", remote_dir,
                 "--daemonize", "--cluster-id", "sshctl")
    assert r.returncode == 0, r.stdout + r.stderr
    info = paths.read_json(paths.cluster_file(cluster_id="sshctl"))
    assert info["controller"]["launcher"] == "ssh_controller"
    remote_pid = info["controller"]["remote_pid"]
    conn = paths.read_json(paths.connection_file(cluster_id="sshctl"))
    assert conn["controller_pid"] == remote_pid != info["controller"]["pids"][0]
    assert stat.S_IMODE(os.stat(paths.connection_file(cluster_id="sshctl")).st_mode) == 0o600
    with cpar.Client(cluster_id="sshctl") as rc:
        assert rc.ids == [0]
        pids = rc[:].apply_sync(os.getpid)
    stop = cpar_cli("cluster", "stop", "--cluster-id", "sshctl")
    assert stop.returncode == 0, stop.stderr
    assert wait_gone(pids + [remote_pid] + info["controller"]["pids"]
                     + info["engines"]["pids"]) == []
    assert not os.path.exists(info["controller"]["remote_connection_file"])


# -- batch systems through submit/cancel programs written here -------------------------------
def test_generic_batch_template_runs_engines_and_cli_stop_cancels_the_job(tmp_path):
    submit, cancel, rec = fake_batch(tmp_path, run=True, prefix="Submitted job ")
    template = tmp_path / "job.tmpl"
    template.write_text(textwrap.dedent("""\
        #!/bin/sh
        # queue={queue} n={n} cluster={cluster_id}
        i={first_id}
        while [ $i -lt $(({first_id} + {n})) ]; do
          {engine_command} --id $i &
          i=$((i + 1))
        done
        wait
        """))
    r = cpar_cli("cluster", "start", "--engines", "batch", "-n", "2", "--daemonize",
                 "--cluster-id", "batch", "--batch-template", str(template), "--queue", "short",
                 "--submit-command", f"{submit} --flag", "--cancel-command", cancel)
    assert r.returncode == 0, r.stdout + r.stderr
    job_pid = int((rec / "job.pid").read_text())
    info = paths.read_json(paths.cluster_file(cluster_id="batch"))
    launcher = info["engines"]["sets"][0]
    assert launcher["launcher"] == "batch" and launcher["job_id"] == str(job_pid)
    argv = (rec / "submit.argv").read_text().split("\n")
    assert argv[1] == "--flag" and argv[2] == launcher["script_path"]
    script = (rec / "job.sh").read_text()
    assert "# queue=short n=2 cluster=batch" in script
    with cpar.Client(cluster_id="batch") as rc:
        assert rc.ids == [0, 1]
        pids = rc[:].apply_sync(os.getpid)
    # The controller dies first, so only the cancel command can stop the engines.
    for p in info["controller"]["pids"]:
        os.kill(p, 9)
    stop = cpar_cli("cluster", "stop", "--cluster-id", "batch")
    assert stop.returncode == 0, stop.stderr
    assert (rec / "cancel.argv").read_text().split() == [str(job_pid)]
    assert wait_gone(pids + [job_pid]) == []


def test_cluster_engines_submits_more_jobs_with_the_saved_options(tmp_path):
    submit, cancel, rec = fake_batch(tmp_path, run=True)
    template = tmp_path / "job.tmpl"
    template.write_text("#!/bin/sh\n{engine_command} --id {first_id} &\n"
                        "{engine_command} --id $(({first_id} + 1)) &\nwait\n")
    r = cpar_cli("cluster", "start", "--engines", "batch", "-n", "0", "--daemonize",
                 "--cluster-id", "batchadd", "--batch-template", str(template),
                 "--submit-command", submit, "--cancel-command", cancel)
    assert r.returncode == 0, r.stdout + r.stderr
    assert not (rec / "submit.argv").exists()
    jobs = []
    for _ in range(2):
        r = cpar_cli("cluster", "engines", "--cluster-id", "batchadd", "-n", "2")
        assert r.returncode == 0, r.stdout + r.stderr
        jobs.append(int((rec / "job.pid").read_text()))
    with cpar.Client(cluster_id="batchadd") as rc:
        rc.wait_for_engines(4, timeout=60)
        assert rc.ids == [0, 1, 2, 3]
        pids = rc[:].apply_sync(os.getpid)
    info = paths.read_json(paths.cluster_file(cluster_id="batchadd"))
    assert [s["job_id"] for s in info["engines"]["sets"]] == [str(j) for j in jobs]
    stop = cpar_cli("cluster", "stop", "--cluster-id", "batchadd")
    assert stop.returncode == 0, stop.stderr
    assert wait_gone(pids + jobs) == []


def test_batch_launcher_without_template_or_commands_says_so():
    from cpar.cluster.batch import BatchEngineLauncher

    c = cpar.Cluster(n=1, engines="batch", cluster_id="notemplate")
    with pytest.raises(ValueError, match="needs a template"):
        BatchEngineLauncher.for_cluster(c, 1, 0)
    with pytest.raises(ValueError, match="submit_command"):
        BatchEngineLauncher.for_cluster(c, 1, 0, template="{program_and_args}")
    with pytest.raises(ValueError, match="unknown field"):
        BatchEngineLauncher.for_cluster(c, 1, 0, template="{nosuch}", submit_command="x",
                                        cancel_command="y")
    r = cpar_cli("cluster", "start", "--engines", "batch", "-n", "1", "--cluster-id",
                 "notemplate")
    assert r.returncode != 0 and "needs a template" in r.stderr
    assert not os.path.exists(paths.cluster_file(cluster_id="notemplate"))


def _submit_and_cancel(cls, tmp_path, prefix="", suffix="", **options):
    submit, cancel, rec = fake_batch(tmp_path, prefix=prefix, suffix=suffix)
    c = cpar.Cluster(n=4, engines=cls.name, cluster_id=f"{cls.name}test")
    la = cls.for_cluster(c, 4, 0, submit_command=[submit], cancel_command=[cancel], **options)
    la.start()
    script = (rec / "job.sh").read_text()
    assert (rec / "submit.argv").read_text().split("\n")[1] == la.script_path
    assert stat.S_IMODE(os.stat(la.script_path).st_mode) == 0o700
    back = type(la).from_dict(json.loads(json.dumps(la.to_dict())))
    back.stop()
    return la, script, (rec / "cancel.argv").read_text().split()


def _mpiexec_line(n):
    """How the PBS/SGE scripts start n ranks: mpiexec with the options the mpi launcher
    adds for this machine's MPI (OpenMPI: --oversubscribe; as root --allow-run-as-root)."""
    from cpar.cluster.mpi import default_mpi_args

    exe = shutil.which("mpiexec")
    return " ".join(["mpiexec", *(default_mpi_args(exe) if exe else []), f"-n {n} "])


def test_pbs_script_and_commands(tmp_path):
    la, script, cancelled = _submit_and_cancel(
        PBSEngineLauncher, tmp_path, suffix=".pbs-server", queue="workq", account="proj1",
        time_limit="01:00:00", options=["-l mem=2gb"])
    assert la.job_id == "4242.pbs-server" and cancelled == ["4242.pbs-server"]
    assert PBSEngineLauncher.submit_command == ["qsub"]
    assert PBSEngineLauncher.cancel_command == ["qdel"]
    lines = script.splitlines()
    assert lines[0] == "#!/bin/sh"
    for want in ("#PBS -V", "#PBS -N cpar-pbstest", "#PBS -q workq", "#PBS -A proj1",
                 "#PBS -l walltime=01:00:00", "#PBS -l mem=2gb", "#PBS -l select=4:ncpus=1",
                 f"#PBS -o {la.output}"):
        assert want in lines, want
    launch = lines[-1]
    assert launch.startswith(_mpiexec_line(4))
    assert "-m cpar.cluster.rankexec --first-id 0 --" in launch
    assert "--connection-file" in launch


def test_sge_script_and_commands(tmp_path):
    la, script, cancelled = _submit_and_cancel(
        SGEEngineLauncher, tmp_path, prefix='Your job ', suffix=' ("cpar") has been submitted',
        queue="all.q", time_limit="2:00:00")
    assert la.job_id == "4242" and cancelled == ["4242"]
    assert SGEEngineLauncher.submit_command == ["qsub", "-terse"]
    lines = script.splitlines()
    for want in ("#$ -V", "#$ -cwd", "#$ -N cpar-sgetest", "#$ -q all.q", "#$ -pe mpi 4",
                 "#$ -l h_rt=2:00:00", f"#$ -o {la.output}"):
        assert want in lines, want
    assert lines[-1].startswith(_mpiexec_line(4))
    plain = SGEEngineLauncher.for_cluster(cpar.Cluster(n=4, engines="sge", cluster_id="plain"),
                                          4, 0, mpi_defaults=False)
    assert plain.script.splitlines()[-1].startswith("mpiexec -n 4 ")


def test_slurm_script_and_commands(tmp_path):
    la, script, cancelled = _submit_and_cancel(
        SlurmEngineLauncher, tmp_path, suffix=";cluster1", queue="debug", account="acct",
        qos="normal", time_limit="00:30:00", options=["--mem-per-cpu=1G"])
    assert la.job_id == "4242" and cancelled == ["4242"]
    assert SlurmEngineLauncher.submit_command == ["sbatch", "--parsable"]
    assert SlurmEngineLauncher.cancel_command == ["scancel"]
    lines = script.splitlines()
    for want in ("#SBATCH --job-name=cpar-slurmtest", "#SBATCH --ntasks=4",
                 "#SBATCH --partition=debug", "#SBATCH --account=acct", "#SBATCH --qos=normal",
                 "#SBATCH --time=00:30:00", "#SBATCH --mem-per-cpu=1G",
                 f"#SBATCH --output={la.output}"):
        assert want in lines, want
    assert lines[-1].startswith("srun ") and "cpar.cluster.rankexec --first-id 0" in lines[-1]


# -- a real single-node Slurm ---------------------------------------------------------------
def test_slurm_sbatch_of_engines_rank_is_id(slurm):
    c = cpar.Cluster(engines="slurm", n=3, cluster_id="slurm", queue="debug",
                     time_limit="00:10:00", options=["--mem-per-cpu=100"])
    with c as rc:
        assert rc.ids == [0, 1, 2]
        job = c.engines.launchers[0].job_id
        assert paths.read_json(c.cluster_file)["engines"]["sets"][0]["job_id"] == job
        env = rc[:].apply_sync(lambda: (__import__("os").environ["SLURM_PROCID"],
                                        __import__("os").environ["SLURM_JOB_ID"]))
        assert env == [("0", job), ("1", job), ("2", job)]
        pids = rc[:].apply_sync(os.getpid)
        assert squeue(job) == "RUNNING"
        # A signal reaches the engines through scancel --signal: SIGINT interrupts a task.
        ar = rc[1].apply_async(time.sleep, 60)
        time.sleep(0.5)
        c.engines.signal(signal.SIGINT)
        with pytest.raises(cpar.RemoteError) as err:
            ar.get(timeout=30)
        assert "KeyboardInterrupt" in str(err.value)
        assert rc[:].apply_sync(lambda: 1) == [1, 1, 1]
    assert wait_gone(pids) == []
    deadline = time.monotonic() + 30
    while squeue(job) not in ("", "COMPLETED", "CANCELLED") and time.monotonic() < deadline:
        time.sleep(0.2)
    assert squeue(job) in ("", "COMPLETED", "CANCELLED")


def test_slurm_cli_stop_from_another_process_scancels_the_job(slurm):
    r = cpar_cli("cluster", "start", "--engines", "slurm", "-n", "2", "--partition", "debug",
                 "--time-limit", "5", "--daemonize", "--cluster-id", "slurmcli")
    assert r.returncode == 0, r.stdout + r.stderr
    info = paths.read_json(paths.cluster_file(cluster_id="slurmcli"))
    job = info["engines"]["sets"][0]["job_id"]
    script = open(info["engines"]["sets"][0]["script_path"]).read()
    assert "#SBATCH --partition=debug" in script and "#SBATCH --time=5" in script
    with cpar.Client(cluster_id="slurmcli") as rc:
        pids = rc[:].apply_sync(os.getpid)
    for p in info["controller"]["pids"]:  # only scancel can stop the engines now
        os.kill(p, 9)
    stop = cpar_cli("cluster", "stop", "--cluster-id", "slurmcli")
    assert stop.returncode == 0, stop.stderr
    assert wait_gone(pids, timeout=30) == []
    assert squeue(job) in ("", "COMPLETED", "CANCELLED", "COMPLETING")


def test_real_sbatch_accepts_the_generated_script(slurm, tmp_path):
    """sbatch --test-only checks every #SBATCH line of the script against the controller."""
    submit, cancel, rec = fake_batch(tmp_path)
    c = cpar.Cluster(n=4, engines="slurm", cluster_id="slurmcheck")
    la = SlurmEngineLauncher.for_cluster(c, 4, 0, queue="debug", time_limit="00:30:00",
                                         options=["--mem-per-cpu=100"],
                                         submit_command=[submit], cancel_command=[cancel])
    la.write_script()
    r = subprocess.run(["sbatch", "--test-only", la.script_path], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    bad = SlurmEngineLauncher.for_cluster(c, 4, 0, queue="nosuch", submit_command=[submit],
                                          cancel_command=[cancel])
    bad.write_script()
    r = subprocess.run(["sbatch", "--test-only", bad.script_path], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode != 0 and "partition" in r.stderr


# -- a real single-host Grid Engine ----------------------------------------------------------
def qstat_job(job_id):
    """qstat -j's exit status: 0 while SGE knows the job."""
    return subprocess.run(["qstat", "-j", str(job_id)], capture_output=True,
                          timeout=30).returncode


def test_sge_qsub_of_engines_rank_is_id(sge):
    c = cpar.Cluster(engines="sge", n=2, cluster_id="sge", queue="all.q",
                     time_limit="00:10:00")
    with c as rc:
        assert rc.ids == [0, 1]
        job = c.engines.launchers[0].job_id
        env = rc[:].apply_sync(lambda: (__import__("os").environ["JOB_ID"],
                                        __import__("os").environ["OMPI_COMM_WORLD_RANK"],
                                        __import__("os").environ["PE"]))
        assert env == [(job, "0", "mpi"), (job, "1", "mpi")]
        script = open(c.engines.launchers[0].script_path).read()
        assert "#$ -q all.q" in script and "#$ -pe mpi 2" in script
        assert qstat_job(job) == 0
        pids = rc[:].apply_sync(os.getpid)
    assert wait_gone(pids, timeout=30) == []
    deadline = time.monotonic() + 60
    while qstat_job(job) == 0 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert qstat_job(job) != 0
