"""Batch systems: the engines as one job, from a script this module writes and submits.

``slurm`` (``sbatch --parsable`` / ``scancel``, ``srun`` of the engines), ``pbs``
(``qsub`` / ``qdel``), ``sge`` (``qsub -terse`` / ``qdel``) and a generic ``batch`` with a
user template and submit/cancel commands. The job id is kept in the cluster file so that
``cpar cluster stop`` cancels the job from any process. The controller can be a job too
(``--controller slurm|pbs|sge|batch``): see :class:`ControllerJob`.

A template is a ``str.format`` string with these fields:

``{n}`` engines; ``{first_id}``; ``{queue}``, ``{account}``, ``{qos}``, ``{time_limit}``
(empty when not given); ``{job_name}``; ``{output}`` (the job's log file);
``{directives}`` (the scheduler's header lines built from the options above and
``options``); ``{program_and_args}`` (one engine per rank, id = first id + rank, through
:mod:`cpar.cluster.rankexec`); ``{engine_command}`` (one engine, no id);
``{connection_file}``, ``{cluster_id}``, ``{profile}``, ``{log_dir}``, ``{python}``;
``{launch}``: how the default scripts start the ranks (``srun``; ``mpiexec -n {n}`` with
the ``mpi`` launcher's OpenMPI defaults unless ``mpi_defaults=False``, or ``launch=``).
Literal braces are doubled (``{{`` ``}}``), as always with ``str.format``.

The engines must reach the controller: on a real cluster start it with
``--ip``/``--location`` (and ``--curve``), and keep ``$CPAR_DIR`` on a shared file system.
"""

import os
import re
import shlex
import shutil
import socket
import subprocess
import time

from .launcher import (
    Launcher,
    controller_argv,
    engine_argv,
    pid_alive,
    rankexec_argv,
    read_connection_info,
    tail,
)


class BatchEngineLauncher(Launcher):
    """A job script submitted with ``submit_command``, cancelled with ``cancel_command``."""

    name = "batch"
    submit_command = None
    cancel_command = None
    job_id_regexp = r"(\d+)"
    launch = "mpiexec -n {n}"  # how the template's default body starts the ranks
    default_template = None

    def __init__(self, n=0, script="", script_path=None, output=None, submit_command=None,
                 cancel_command=None, job_id_regexp=None, job_id=None, submit_output=""):
        self.n = n
        self.script = script
        self.script_path = script_path
        self.output = output
        if submit_command is not None:
            self.submit_command = _argv(submit_command)
        if cancel_command is not None:
            self.cancel_command = _argv(cancel_command)
        if job_id_regexp is not None:
            self.job_id_regexp = job_id_regexp
        self.job_id = job_id
        self.submit_output = submit_output

    # -- the script ----------------------------------------------------------------
    @classmethod
    def directives(cls, n, job_name, output, queue, account, qos, time_limit, options):
        return [f"# {opt}" for opt in options]

    @classmethod
    def for_cluster(cls, cluster, n, first_id, template=None, launch=None, mpi_defaults=True,
                    **options):
        tag = f"{first_id}-{first_id + n - 1}"
        engine = engine_argv(cluster.connection_file, None, cluster.engine_args)
        values = dict(
            first_id=first_id,
            python=engine[engine.index("--python") + 1],
            program_and_args=shlex.join(rankexec_argv(first_id) + engine),
            engine_command=shlex.join(engine),
        )
        if launch is None:
            launch = cls.launch
            if mpi_defaults and launch.startswith("mpiexec "):
                launch = _with_mpi_defaults(launch)
        return cls._render(cluster, f"engines-{tag}", n, template, values, launch, **options)

    @classmethod
    def _render(cls, cluster, what, n, template, values, launch, queue="", account="",
                qos="", time_limit="", options=(), job_name=None, submit_command=None,
                cancel_command=None, job_id_regexp=None, **fields):
        """The launcher of a job script for ``what`` (``engines-0-3``, ``controller``):
        ``template`` filled with ``values``, the common fields and ``fields``."""
        template = template or cls.default_template
        if not template:
            raise ValueError(f"the {cls.name!r} launcher needs a template= (a job script "
                             "with {n}, {program_and_args}, ...)")
        if os.path.isfile(template) and "\n" not in template:
            with open(template) as f:
                template = f.read()
        submit = submit_command if submit_command is not None else cls.submit_command
        cancel = cancel_command if cancel_command is not None else cls.cancel_command
        if not submit or not cancel:
            raise ValueError(f"the {cls.name!r} launcher needs submit_command= and "
                             "cancel_command=")
        if isinstance(options, str):
            options = [options]
        cid = cluster.cluster_id or "default"
        job_name = job_name or f"cpar-{cid}"
        kind = cls.name.split("_")[0]
        output = cluster._log(f"{kind}-{what}")
        script_path = os.path.join(os.path.dirname(output), f"{kind}-{what}-{cid}.sh")
        values = dict(
            values, n=n, queue=queue or "", account=account or "", qos=qos or "",
            time_limit=time_limit or "", job_name=job_name, output=output,
            connection_file=cluster.connection_file, cluster_id=cid,
            profile=cluster.profile, log_dir=os.path.dirname(output),
            directives="\n".join(cls.directives(n, job_name, output, queue, account, qos,
                                                time_limit, list(options))),
        )
        values["launch"] = launch.format(**values)
        values.update(fields)
        try:
            script = template.format(**values)
        except KeyError as e:
            raise ValueError(f"unknown field {e} in the {kind} template; known: "
                             + ", ".join(sorted(values))) from None
        return cls(n=n, script=script, script_path=script_path, output=output,
                   submit_command=submit, cancel_command=cancel,
                   job_id_regexp=job_id_regexp)

    # -- the interface -------------------------------------------------------------
    def write_script(self):
        with open(self.script_path, "w") as f:
            f.write(self.script)
        os.chmod(self.script_path, 0o700)

    def start(self):
        self.write_script()
        argv = list(self.submit_command) + [self.script_path]
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                           timeout=120, cwd=os.path.dirname(self.script_path))
        self.submit_output = (r.stdout + r.stderr).strip()
        if r.returncode != 0:
            raise RuntimeError(f"{shlex.join(argv)} failed ({r.returncode}): "
                               f"{self.submit_output}")
        m = re.search(self.job_id_regexp, r.stdout)
        if not m:
            raise RuntimeError(f"no job id in the output of {shlex.join(argv)}: "
                               f"{r.stdout.strip()!r} (job_id_regexp={self.job_id_regexp!r})")
        self.job_id = m.group(1) if m.groups() else m.group(0)

    def cancel(self):
        if not self.job_id:
            return None
        return subprocess.run(list(self.cancel_command) + [self.job_id],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True,
                              timeout=60)

    def stop(self, timeout=5.0):
        try:
            self.cancel()
        except (OSError, subprocess.SubprocessError):
            pass

    def signal(self, sig):
        """Batch systems signal jobs themselves (``scancel -s``); only a stop is sent."""
        import signal as _signal

        if sig in (_signal.SIGTERM, _signal.SIGKILL, _signal.SIGINT):
            self.stop()

    def wait(self, timeout):
        # Whether a job has ended is the scheduler's to say; after the controller's
        # shutdown the cluster cancels the job anyway (harmless when it has ended).
        return False

    def get_output(self):
        return (f"--- {self.name} job {self.job_id} (submitted: {self.submit_output})\n"
                f"--- {self.output}\n{tail(self.output)}")

    def to_dict(self):
        return {"launcher": self.name, "n": self.n, "pids": [], "job_id": self.job_id,
                "script_path": self.script_path, "output": self.output,
                "submit_command": self.submit_command, "cancel_command": self.cancel_command}

    @classmethod
    def from_dict(cls, d):
        return cls(n=d.get("n", 0), script_path=d.get("script_path"),
                   output=d.get("output"), submit_command=d.get("submit_command"),
                   cancel_command=d.get("cancel_command"), job_id=d.get("job_id"))


def _with_mpi_defaults(launch):
    """``mpiexec -n {n}`` with the options the ``mpi`` launcher adds for this machine's
    mpiexec (OpenMPI: ``--oversubscribe``, and ``--allow-run-as-root`` as root)."""
    from .mpi import default_mpi_args

    exe = shutil.which("mpiexec")
    extra = default_mpi_args(exe) if exe else []
    return " ".join(["mpiexec", *extra, launch[len("mpiexec "):]])


def _argv(cmd):
    return shlex.split(cmd) if isinstance(cmd, str) else list(cmd)


_SCRIPT = "#!/bin/sh\n{directives}\n{launch} {program_and_args}\n"


def _directive_lines(prefix, fixed, optional, options):
    """A scheduler's header lines, each ``prefix`` and an option: the ``fixed`` ones,
    each ``(value, format)`` of ``optional`` whose value is set, then the user's
    ``options``."""
    lines = list(fixed) + [fmt.format(value) for value, fmt in optional if value]
    return [f"{prefix} {opt}" for opt in lines + list(options)]


class SlurmEngineLauncher(BatchEngineLauncher):
    name = "slurm"
    submit_command = ["sbatch", "--parsable"]
    cancel_command = ["scancel"]
    job_id_regexp = r"^(\d+)"
    launch = "srun"
    default_template = _SCRIPT

    def signal(self, sig):
        """``scancel --signal``: delivered to the engines (the job's steps)."""
        import signal as _signal

        if not self.job_id:
            return
        name = _signal.Signals(sig).name[3:]
        subprocess.run([*self.cancel_command, f"--signal={name}", self.job_id],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=60)

    @classmethod
    def directives(cls, n, job_name, output, queue, account, qos, time_limit, options):
        return _directive_lines(
            "#SBATCH", [f"--job-name={job_name}", f"--ntasks={n}", f"--output={output}"],
            [(queue, "--partition={}"), (account, "--account={}"), (qos, "--qos={}"),
             (time_limit, "--time={}")], options)


class PBSEngineLauncher(BatchEngineLauncher):
    name = "pbs"
    submit_command = ["qsub"]
    cancel_command = ["qdel"]
    job_id_regexp = r"^(\S+)"
    default_template = _SCRIPT

    @classmethod
    def directives(cls, n, job_name, output, queue, account, qos, time_limit, options):
        return _directive_lines(
            "#PBS", ["-V", f"-N {job_name}", "-j oe", f"-o {output}", f"-l select={n}:ncpus=1"],
            [(queue, "-q {}"), (account, "-A {}"), (time_limit, "-l walltime={}")], options)


class SGEEngineLauncher(BatchEngineLauncher):
    name = "sge"
    submit_command = ["qsub", "-terse"]
    cancel_command = ["qdel"]
    job_id_regexp = r"(\d+)"
    default_template = _SCRIPT
    parallel_environment = "mpi"

    @classmethod
    def directives(cls, n, job_name, output, queue, account, qos, time_limit, options):
        return _directive_lines(
            "#$", ["-V", "-cwd", "-S /bin/sh", f"-N {job_name}", "-j y", f"-o {output}",
                   f"-pe {cls.parallel_environment} {n}"],
            [(queue, "-q {}"), (account, "-P {}"), (time_limit, "-l h_rt={}")], options)


# -- the controller as a one-task job ------------------------------------------------------
_CONTROLLER_SCRIPT = "#!/bin/sh\n{directives}\nexec {controller_command}\n"


class ControllerJob:
    """The controller as a one-task job; mixed in before a batch launcher class, whose
    header lines and submit/cancel commands it uses (``class
    SlurmControllerLauncher(ControllerJob, SlurmEngineLauncher)``).

    A template may use ``{controller_command}`` (the same as ``{program_and_args}``)
    besides the common fields. The controller writes its connection file into
    ``$CPAR_DIR``, which must be on a file system shared with this machine; the cluster
    removes the old file before the submit, so a file that appears is this job's.

    Whether the job still runs: the controller's pid when it runs on this host; else the
    scheduler's ``status_command`` (given the job id, it exits 0 while the job is queued or
    running); without one the job counts as running until it is cancelled.
    """

    status_command = None

    def __init__(self, *args, status_command=None, controller_pid=None, hostname=None,
                 controller_log=None, **kw):
        super().__init__(*args, **kw)
        self.controller_log = controller_log
        if status_command is not None:
            self.status_command = _argv(status_command)
        self.controller_pid = controller_pid
        self.hostname = hostname
        self._checked = (float("-inf"), None)  # (when, state) of the last status query

    @classmethod
    def for_cluster(cls, cluster, log, extra, template=None, status_command=None, **options):
        argv = controller_argv(cluster.profile, cluster.cluster_id, log, extra)
        command = shlex.join(argv)
        values = dict(first_id=0, python=argv[0], controller_command=command,
                      program_and_args=command)
        la = cls._render(cluster, "controller", 1, template, values, "", **options)
        if status_command is not None:
            la.status_command = _argv(status_command)
        la.controller_log = log
        return la

    def connection_ready(self, path):
        info = read_connection_info(path)
        if info is None:
            return False
        self.controller_pid, self.hostname = info["controller_pid"], info.get("hostname")
        return True

    def job_alive(self, result):
        """From the status command's CompletedProcess: True/False, or None (unknown)."""
        return result.returncode == 0

    def job_state(self):
        """True while the controller's job is queued or running, False once it has ended,
        None when nobody can say."""
        if self.controller_pid and self.hostname == socket.gethostname():
            return pid_alive(self.controller_pid)
        if not self.job_id:
            return False
        if not self.status_command:
            return None
        now = time.monotonic()
        if now - self._checked[0] < 1.0:  # the scheduler is asked at most once a second
            return self._checked[1]
        try:
            r = subprocess.run([*self.status_command, self.job_id], stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=60)
            state = self.job_alive(r)
        except (OSError, subprocess.SubprocessError):
            state = None
        self._checked = (now, state)
        return state

    @property
    def running(self):
        return [self.job_id] if self.job_id and self.job_state() is not False else []

    def exited(self):
        if self.job_id and self.job_state() is False:
            return [(self.job_id, None, self.output)]
        return []

    def wait(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            state = self.job_state()
            if state is False:
                return True
            if state is None or time.monotonic() >= deadline:
                return False
            time.sleep(0.1)

    def to_dict(self):
        d = super().to_dict()
        d.update(status_command=self.status_command, controller_pid=self.controller_pid,
                 hostname=self.hostname, controller_log=self.controller_log)
        return d

    @classmethod
    def from_dict(cls, d):
        la = super().from_dict(d)
        la.status_command = d.get("status_command")
        la.controller_pid, la.hostname = d.get("controller_pid"), d.get("hostname")
        la.controller_log = d.get("controller_log")
        return la

    def get_output(self):
        return (super().get_output()
                + f"\n--- {self.controller_log}\n{tail(self.controller_log or '')}")


class BatchControllerLauncher(ControllerJob, BatchEngineLauncher):
    name = "batch_controller"


class SlurmControllerLauncher(ControllerJob, SlurmEngineLauncher):
    name = "slurm_controller"
    default_template = _CONTROLLER_SCRIPT
    status_command = ["squeue", "-h", "-o", "%T", "-j"]
    _ALIVE = {"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED",
              "REQUEUE_HOLD", "REQUEUE_FED", "RESIZING", "SIGNALING", "STAGE_OUT",
              "STOPPED", "RESV_DEL_HOLD"}

    def job_alive(self, result):
        # squeue forgets a job some minutes after it ends ("Invalid job id"): ended too.
        return result.returncode == 0 and result.stdout.strip() in self._ALIVE


class PBSControllerLauncher(ControllerJob, PBSEngineLauncher):
    name = "pbs_controller"
    default_template = _CONTROLLER_SCRIPT
    status_command = ["qstat"]


class SGEControllerLauncher(ControllerJob, SGEEngineLauncher):
    name = "sge_controller"
    default_template = _CONTROLLER_SCRIPT
    status_command = ["qstat", "-j"]
