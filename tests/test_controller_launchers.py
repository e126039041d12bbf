"""Controller launchers (``--controller NAME``) against the real thing each drives: the
controller as the one rank of its own ``mpiexec -n 1`` (OpenMPI), as a job of a real
single-node Slurm, and as a job of PBS, SGE or a user template through submit/cancel
programs the tests write; state in the cluster file, so ``cpar cluster stop`` and ``cpar
cluster list`` work from other processes."""

import os
import shutil
import signal
import time

import pytest

import cpar
from cpar import paths
from cpar.cluster import list_clusters
from cpar.cluster.launcher import launcher_from_dict
from launchkit import cpar_cli, fake_batch, squeue, wait_gone


def environ_of(pid):
    with open(f"/proc/{pid}/environ", "rb") as f:
        return dict(e.decode().split("=", 1) for e in f.read().split(b"\0") if b"=" in e)


def listed(cluster_id):
    return {c["cluster_id"]: c for c in list_clusters()}.get(cluster_id)


def test_unknown_controller_launcher_names_the_known_ones():
    with pytest.raises(ValueError, match=r"unknown controller launcher 'lsf'.*'slurm'"):
        cpar.Cluster(n=1, controller="lsf")
    r = cpar_cli("cluster", "start", "--controller", "lsf", "-n", "1")
    assert r.returncode != 0 and "invalid choice: 'lsf'" in r.stderr


# -- mpi -----------------------------------------------------------------------------------
@pytest.mark.skipif(shutil.which("mpiexec") is None,
                    reason="mpiexec not installed (Debian: openmpi-bin; `make deps-test`)")
def test_mpi_controller_is_its_own_rank_and_cli_stop_ends_it():
    r = cpar_cli("cluster", "start", "--controller", "mpi", "--engines", "mpi", "-n", "2",
                 "--daemonize", "--cluster-id", "mpictl")
    assert r.returncode == 0, r.stdout + r.stderr
    info = paths.read_json(paths.cluster_file(cluster_id="mpictl"))
    assert info["controller"]["launcher"] == "mpi_controller"
    mpiexec_pid = info["controller"]["pids"][0]
    ctl = paths.read_json(paths.connection_file(cluster_id="mpictl"))["controller_pid"]
    assert ctl != mpiexec_pid and f"controller pid {ctl}" in r.stdout
    env = environ_of(ctl)  # rank 0 of a world of one, apart from the engines' world
    assert (env["OMPI_COMM_WORLD_RANK"], env["OMPI_COMM_WORLD_SIZE"]) == ("0", "1")
    assert listed("mpictl")["running"]
    with cpar.Client(cluster_id="mpictl") as rc:
        assert rc.ids == [0, 1]
        ranks = rc[:].apply_sync(lambda: __import__("os").environ["OMPI_COMM_WORLD_RANK"])
        assert ranks == ["0", "1"]
        pids = rc[:].apply_sync(os.getpid)
    stop = cpar_cli("cluster", "stop", "--cluster-id", "mpictl")
    assert stop.returncode == 0, stop.stderr
    assert wait_gone(pids + [ctl, mpiexec_pid]) == []
    assert listed("mpictl") is None


# -- a user's template, PBS and SGE, through submit/cancel programs written here --------------
STATUS = "#!/bin/sh\nkill -0 \"${1%%.*}\" 2>/dev/null\n"  # 0 while the job's process lives


def status_program(tmp_path):
    path = tmp_path / "fake-status"
    path.write_text(STATUS)
    path.chmod(0o755)
    return str(path)


def test_batch_controller_from_a_template_and_cli_stop(tmp_path):
    submit, cancel, rec = fake_batch(tmp_path, run=True, prefix="job ")
    template = tmp_path / "controller.tmpl"
    template.write_text("#!/bin/sh\n# queue={queue} job={job_name}\nexec {controller_command}\n")
    r = cpar_cli("cluster", "start", "--controller", "batch", "--controller-template",
                 str(template), "--submit-command", submit, "--cancel-command", cancel,
                 "--status-command", status_program(tmp_path), "--queue", "short", "-n", "2",
                 "--daemonize", "--cluster-id", "batchctl")
    assert r.returncode == 0, r.stdout + r.stderr
    job = int((rec / "job.pid").read_text())
    assert "# queue=short job=cpar-batchctl" in (rec / "job.sh").read_text()
    info = paths.read_json(paths.cluster_file(cluster_id="batchctl"))
    ctl = info["controller"]
    assert ctl["launcher"] == "batch_controller" and ctl["job_id"] == str(job)
    assert ctl["pids"] == [] and ctl["controller_pid"] == job  # the job's shell exec'd it
    assert listed("batchctl")["running"]
    with cpar.Client(cluster_id="batchctl") as rc:
        assert rc.ids == [0, 1]
        pids = rc[:].apply_sync(os.getpid)
    stop = cpar_cli("cluster", "stop", "--cluster-id", "batchctl")
    assert stop.returncode == 0, stop.stderr
    assert wait_gone(pids + [job]) == []
    assert listed("batchctl") is None


def test_batch_controller_that_fails_at_start_up_says_why(tmp_path):
    submit, cancel, rec = fake_batch(tmp_path, run=True)
    c = cpar.Cluster(n=1, cluster_id="batchbad", controller="batch",
                     controller_args=["--hwm", "lots"], start_timeout=60,
                     controller_options=dict(template="#!/bin/sh\n{controller_command} > {output} 2>&1\n",
                                             submit_command=submit, cancel_command=cancel,
                                             status_command=status_program(tmp_path)))
    t0 = time.monotonic()
    with pytest.raises(cpar.ClusterError, match=r"(?s)exited during start-up.*lots"):
        c.start_cluster_sync()
    assert time.monotonic() - t0 < 30  # the status command said so; no time-out
    assert not os.path.exists(c.cluster_file)


@pytest.mark.parametrize("kind", ["pbs", "sge"])
def test_pbs_and_sge_controller_jobs_and_a_cancel_that_ends_them(tmp_path, kind):
    """The job's state comes from a status program standing in for qstat until the
    controller, on this host, has a pid to check. Cancelling the job is what stops a
    controller that does not answer."""
    submit, cancel, rec = fake_batch(tmp_path, run=True,
                                     suffix=".server" if kind == "pbs" else "")
    c = cpar.Cluster(n=1, cluster_id=f"{kind}ctl", controller=kind,
                     controller_options=dict(submit_command=[submit], cancel_command=[cancel],
                                             status_command=[status_program(tmp_path)],
                                             queue="workq", time_limit="00:10:00"))
    with c as rc:
        assert rc[0].apply_sync(lambda: 6 * 7) == 42
        script = (rec / "job.sh").read_text()
        job = (rec / "job.pid").read_text().strip()
        if kind == "pbs":
            assert c.controller.job_id == job + ".server"
            for line in ("#PBS -q workq", "#PBS -l select=1:ncpus=1",
                         "#PBS -l walltime=00:10:00"):
                assert line in script
        else:
            assert c.controller.job_id == job
            for line in ("#$ -q workq", "#$ -pe mpi 1", "#$ -l h_rt=00:10:00"):
                assert line in script
        assert "exec " in script and " -m cpar controller " in script
        back = launcher_from_dict(paths.read_json(c.cluster_file)["controller"])
        assert back.controller_pid == int(job) and back.running == [c.controller.job_id]
        back.stop()  # the cancel command, as `cpar cluster stop` sends it
        assert (rec / "cancel.argv").read_text().split() == [c.controller.job_id]
        assert wait_gone([int(job)]) == []
        assert not back.running and listed(f"{kind}ctl")["running"] is False
        engine = c.engines.pids
    assert wait_gone(engine) == []
    assert not os.path.exists(c.cluster_file)


# -- a real single-node Slurm --------------------------------------------------------------
def test_slurm_controller_and_engines_as_jobs_and_cli_stop(slurm):
    r = cpar_cli("cluster", "start", "--controller", "slurm", "--engines", "slurm", "-n", "2",
                 "--partition", "debug", "--time-limit", "10", "--daemonize",
                 "--cluster-id", "slurmctl")
    assert r.returncode == 0, r.stdout + r.stderr
    info = paths.read_json(paths.cluster_file(cluster_id="slurmctl"))
    ctl_job = info["controller"]["job_id"]
    engine_job = info["engines"]["sets"][0]["job_id"]
    assert info["controller"]["launcher"] == "slurm_controller" and ctl_job != engine_job
    script = open(info["controller"]["script_path"]).read()
    for line in ("#SBATCH --ntasks=1", "#SBATCH --partition=debug", "#SBATCH --time=10"):
        assert line in script
    ctl = paths.read_json(paths.connection_file(cluster_id="slurmctl"))["controller_pid"]
    assert environ_of(ctl)["SLURM_JOB_ID"] == ctl_job
    assert squeue(ctl_job) == "RUNNING" and listed("slurmctl")["running"]
    # Seen from a host where the controller's pid means nothing, squeue decides.
    elsewhere = launcher_from_dict({**info["controller"], "hostname": "elsewhere"})
    assert elsewhere.job_state() is True
    with cpar.Client(cluster_id="slurmctl") as rc:
        assert rc.ids == [0, 1]
        jobs = rc[:].apply_sync(lambda: __import__("os").environ["SLURM_JOB_ID"])
        assert jobs == [engine_job, engine_job]
        pids = rc[:].apply_sync(os.getpid)
    stop = cpar_cli("cluster", "stop", "--cluster-id", "slurmctl")
    assert stop.returncode == 0, stop.stderr
    assert wait_gone(pids + [ctl], timeout=30) == []
    deadline = time.monotonic() + 30
    while elsewhere.job_state() is not False and time.monotonic() < deadline:
        time.sleep(0.5)
    assert elsewhere.job_state() is False
    for job in (ctl_job, engine_job):  # COMPLETING (epilog, cleanup) is on its way out
        while squeue(job) not in ("", "COMPLETED", "CANCELLED") and time.monotonic() < deadline:
            time.sleep(0.2)
        assert squeue(job) in ("", "COMPLETED", "CANCELLED")
    assert listed("slurmctl") is None


def test_slurm_controller_killed_outside_cpar_is_seen_stopped(slurm):
    c = cpar.Cluster(n=1, cluster_id="slurmgone", controller="slurm",
                     controller_options={"queue": "debug"})
    c.start_cluster_sync()
    try:
        job = c.controller.job_id
        ctl = c.controller.controller_pid
        r = cpar_cli("cluster", "start", "--controller", "slurm", "--partition", "debug",
                     "-n", "1", "--cluster-id", "slurmgone")
        assert r.returncode != 0 and "already running" in r.stderr
        os.kill(ctl, signal.SIGKILL)
        assert wait_gone([ctl]) == []
        assert listed("slurmgone")["running"] is False
        deadline = time.monotonic() + 30
        while squeue(job) not in ("", "COMPLETED", "FAILED", "CANCELLED") \
                and time.monotonic() < deadline:
            time.sleep(0.5)
        assert squeue(job) in ("", "COMPLETED", "FAILED", "CANCELLED")
    finally:
        c.stop_cluster_sync()
    assert not c.engines.running


# -- a real single-host Grid Engine ----------------------------------------------------------
def test_sge_controller_and_engines_as_jobs_and_cli_stop(sge):
    r = cpar_cli("cluster", "start", "--controller", "sge", "--engines", "sge", "-n", "2",
                 "--queue", "all.q", "--daemonize", "--cluster-id", "sgectl")
    assert r.returncode == 0, r.stdout + r.stderr
    info = paths.read_json(paths.cluster_file(cluster_id="sgectl"))
    ctl_job = info["controller"]["job_id"]
    engine_job = info["engines"]["sets"][0]["job_id"]
    assert info["controller"]["launcher"] == "sge_controller" and ctl_job != engine_job
    ctl = paths.read_json(paths.connection_file(cluster_id="sgectl"))["controller_pid"]
    assert environ_of(ctl)["JOB_ID"] == ctl_job
    assert listed("sgectl")["running"]
    # Seen from a host where the controller's pid means nothing, qstat -j decides.
    elsewhere = launcher_from_dict({**info["controller"], "hostname": "elsewhere"})
    assert elsewhere.job_state() is True
    with cpar.Client(cluster_id="sgectl") as rc:
        assert rc.ids == [0, 1]
        jobs = rc[:].apply_sync(lambda: __import__("os").environ["JOB_ID"])
        assert jobs == [engine_job, engine_job]
        pids = rc[:].apply_sync(os.getpid)
    stop = cpar_cli("cluster", "stop", "--cluster-id", "sgectl")
    assert stop.returncode == 0, stop.stderr
    assert wait_gone(pids + [ctl], timeout=30) == []
    deadline = time.monotonic() + 60
    while elsewhere.job_state() is not False and time.monotonic() < deadline:
        time.sleep(0.5)
    assert elsewhere.job_state() is False
    assert listed("sgectl") is None
