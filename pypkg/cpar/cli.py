"""The `cpar` command: `cpar cluster start|stop|list|engines`, `cpar controller`, `cpar engine`."""

import argparse
import os
import shlex
import signal
import sys
import time


def _add_cluster_ids(p):
    p.add_argument("--profile", default="default", help="profile name (default: %(default)s)")
    p.add_argument("--cluster-id", default="", help="cluster id within the profile")


def _hwm(value):
    import argparse

    from .controller import parse_hwm

    try:
        parse_hwm(value)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return value


def _add_scheduling(p):
    from .controller import DEFAULT_HWM, SCHEMES

    p.add_argument("--scheme", choices=SCHEMES, default="leastload",
                   help="how load-balanced tasks pick an engine (default: %(default)s)")
    p.add_argument("--hwm", type=_hwm, default=DEFAULT_HWM,
                   help="unanswered load-balanced tasks per engine: 'auto' (about 5 ms of "
                        "queued work), N, or 0 for no limit (default: %(default)s)")


def _add_db(p):
    from .controller import DB_MODES

    g = p.add_argument_group("task database (docs/taskdb.md)")
    g.add_argument("--db", choices=DB_MODES, default=None,
                   help="where the controller records tasks: a SQLite file, memory, or none "
                        "(default: $CPAR_DB or sqlite)")
    g.add_argument("--db-file", default=None,
                   help="the database file (default: $CPAR_DB_FILE or "
                        "<profile dir>/db/<cluster id>.sqlite)")
    g.add_argument("--db-max-records", type=int, default=None,
                   help="records kept; the oldest ended ones go first (default: 100000)")
    g.add_argument("--db-max-bytes", type=int, default=None,
                   help="payload bytes kept (default: 1 GiB)")
    g.add_argument("--db-keep-bytes", type=int, default=None,
                   help="largest request or reply payload kept per record (default: 1 MiB)")


def _add_recover_grace(p):
    p.add_argument("--recover-grace", type=float, default=None, metavar="SECONDS",
                   help="how long engines and clients wait for a controller that died, "
                        "for `cpar cluster recover` (default: $CPAR_RECOVER_GRACE or 60; "
                        "0: no waiting; docs/recovery.md)")


def _db_kwargs(args):
    return {"db": args.db, "db_file": args.db_file, "db_max_records": args.db_max_records,
            "db_max_bytes": args.db_max_bytes, "db_keep_bytes": args.db_keep_bytes}


def _cmd_controller(args):
    from .controller import run_controller

    try:
        return run_controller(
            profile=args.profile,
            cluster_id=args.cluster_id,
            ip=args.ip,
            client_port=args.client_port,
            engine_port=args.engine_port,
            hb_period_ms=args.hb_period_ms,
            hb_timeout_ms=args.hb_timeout_ms,
            log_path=args.log,
            scheme=args.scheme,
            hwm=args.hwm,
            max_records=args.max_records,
            curve=args.curve,
            insecure=args.insecure,
            location=args.location,
            curve_allow=args.curve_allow,
            recover=args.recover,
            recover_grace=args.recover_grace,
            **_db_kwargs(args),
        )
    except ValueError as e:  # a refused configuration (e.g. --ip without --curve)
        print(f"cpar controller: {e}", file=sys.stderr)
        return 2


def _cmd_engine(args):
    from . import paths
    from .cluster.launcher import engine_binary

    cf = args.connection_file or paths.connection_file(args.profile, args.cluster_id)
    argv = [engine_binary(), "--connection-file", cf, "--python", sys.executable]
    if args.log:
        argv += ["--log", args.log]
    os.execv(argv[0], argv)


def _cmd_start(args):
    from . import paths
    from .cluster import Cluster, ClusterError

    try:
        c = Cluster(
            n=args.n,
            profile=args.profile,
            cluster_id=args.cluster_id,
            daemonize=args.daemonize,
            hb_timeout_ms=args.hb_timeout_ms,
            controller_args=["--scheme", args.scheme, "--hwm", str(args.hwm),
                             *args.controller_arg],
            engine_args=args.engine_arg,
            engines=args.engines,
            controller=args.controller,
            engine_options=_engine_options(args),
            controller_options=_controller_options(args),
            recover_grace=args.recover_grace,
            **_db_kwargs(args),
        )
    except (ValueError, OSError) as e:
        print(f"cpar cluster start: {e}", file=sys.stderr)
        return 2
    bar = _RegistrationBar(sys.stderr)
    try:
        c.start_cluster_sync(progress=bar.show)
    except (ClusterError, ValueError, OSError) as e:
        bar.close()
        print(f"cpar cluster start: {e}", file=sys.stderr)
        return 1
    bar.close()
    ids = c.connect_client_sync().ids
    conn = paths.read_json(c.connection_file)
    print(f"cluster {args.cluster_id or 'default'} (profile {args.profile}) running: "
          f"controller pid {conn['controller_pid']} on {conn.get('hostname', '?')}, "
          f"{len(ids)} engines {ids}")
    if args.daemonize:
        c._client.close()
        c._client = None
        return 0
    print("press Ctrl-C to stop it")
    stop = []
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
    try:
        while not stop and c.controller.running:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    c.stop_cluster_sync()
    print("cluster stopped")
    return 0


class _RegistrationBar:
    """The engines registering, as a progress bar on ``stream`` when it is a terminal
    (tqdm's when tqdm is installed, else cpar's text bar); nothing otherwise, so that
    output read by a program stays as it was."""

    def __init__(self, stream):
        self.stream = stream
        self.bar = None
        self.done = 0
        try:
            self.on_tty = stream.isatty()
        except (AttributeError, ValueError):
            self.on_tty = False

    def show(self, registered, total):
        """``Cluster.wait_for_engines``' progress callback."""
        if not self.on_tty:
            return
        if self.bar is None:
            from .client.progress import progress_bar

            self.bar = progress_bar(total, "engines registered", unit="engines",
                                    stream=self.stream, widget=False)
        self.done = registered
        self.bar.update(registered)

    def close(self):
        if self.bar is not None:
            self.bar.close(self.done)
            self.bar = None


def _engine_options(args):
    """The --engines launcher's options from the command line (only those given)."""
    opts = {}
    if args.engines == "mpi":
        opts = _mpi_options(args)
    elif args.engines == "ssh":
        opts = _ssh_options(args)
        if args.ssh_hosts:
            opts["ssh_hosts"] = args.ssh_hosts
    elif args.engines in ("slurm", "pbs", "sge", "batch"):
        opts = _batch_options(args)
        if args.batch_template:
            with open(args.batch_template) as f:
                opts["template"] = f.read()
    return opts


def _controller_options(args):
    """The --controller launcher's options from the command line (only those given); the
    ssh, mpi and batch options are those the engines' launchers take, shared."""
    opts = {}
    if args.controller == "ssh":
        opts = _ssh_options(args)
        opts["ssh_host"] = args.controller_host
    elif args.controller == "mpi":
        opts = _mpi_options(args)
    elif args.controller in ("slurm", "pbs", "sge", "batch"):
        opts = _batch_options(args)
        if args.status_command:
            opts["status_command"] = args.status_command
        if args.controller_template:
            with open(args.controller_template) as f:
                opts["template"] = f.read()
    return opts


def _mpi_options(args):
    opts = {}
    if args.mpi_args is not None:
        opts["mpi_args"] = shlex.split(args.mpi_args)
    if args.mpiexec:
        opts["mpiexec"] = args.mpiexec
    if args.no_mpi_defaults:
        opts["mpi_defaults"] = False
    return opts


def _ssh_options(args):
    opts = {}
    if args.ssh_args is not None:
        opts["ssh_args"] = shlex.split(args.ssh_args)
    if args.scp_args is not None:
        opts["scp_args"] = shlex.split(args.scp_args)
    if args.ssh_remote_dir:
        opts["ssh_remote_dir"] = args.ssh_remote_dir
    return opts


def _batch_options(args):
    opts = {}
    for key in ("queue", "account", "qos", "time_limit", "submit_command", "cancel_command",
                "job_id_regexp"):
        if getattr(args, key):
            opts[key] = getattr(args, key)
    if args.batch_option:
        opts["options"] = args.batch_option
    return opts


def _add_launcher_options(p):
    from .cluster.launcher import controller_launchers, engine_launchers

    p.add_argument("--engines", default="local", choices=sorted(engine_launchers()),
                   help="how the engines start (default: %(default)s)")
    p.add_argument("--controller", default="local", choices=sorted(controller_launchers()),
                   help="how the controller starts (default: %(default)s)")
    p.add_argument("--controller-host", default=None,
                   help="(--controller ssh) the host the controller runs on")
    p.add_argument("--controller-arg", action="append", default=[], metavar="ARG",
                   help="extra argument of `cpar controller` (e.g. --controller-arg=--curve)")
    p.add_argument("--engine-arg", action="append", default=[], metavar="ARG",
                   help="extra argument of each cpar-engine (e.g. --engine-arg=--quiet)")
    g = p.add_argument_group("--engines mpi, --controller mpi")
    g.add_argument("--mpi-args", default=None,
                   help="arguments of mpiexec, one string (e.g. '--host a,b')")
    g.add_argument("--mpiexec", default=None, help="the mpiexec to run (default: mpiexec)")
    g.add_argument("--no-mpi-defaults", action="store_true",
                   help="do not add --allow-run-as-root (as root) and --oversubscribe "
                        "for OpenMPI")
    g = p.add_argument_group("--engines ssh, --controller ssh")
    g.add_argument("--ssh-hosts", default=None,
                   help="hosts and engine counts: 'host1:4,host2:2' (-n is their sum)")
    g.add_argument("--ssh-args", default=None,
                   help="options of ssh, one string (e.g. '-p 2222 -i key')")
    g.add_argument("--scp-args", default=None,
                   help="options of scp (default: --ssh-args, -p PORT as -P PORT)")
    g.add_argument("--ssh-remote-dir", default=None,
                   help="where the connection file goes on the hosts (default .cpar/remote)")
    g = p.add_argument_group("--engines/--controller slurm|pbs|sge|batch")
    g.add_argument("--queue", "--partition", dest="queue", default=None,
                   help="queue (Slurm partition)")
    g.add_argument("--account", default=None)
    g.add_argument("--qos", default=None)
    g.add_argument("--time-limit", default=None, help="wall time, e.g. 01:00:00")
    g.add_argument("--batch-option", action="append", default=[], metavar="OPT",
                   help="an extra scheduler option, one header line each "
                        "(e.g. --batch-option=--mem=2G)")
    g.add_argument("--batch-template", default=None, metavar="FILE",
                   help="the job script template ({n}, {queue}, {program_and_args}, ...)")
    g.add_argument("--submit-command", default=None, help="e.g. 'sbatch --parsable'")
    g.add_argument("--cancel-command", default=None, help="e.g. scancel")
    g.add_argument("--job-id-regexp", default=None,
                   help=r"finds the job id in the submit output (default '(\d+)')")
    g.add_argument("--controller-template", default=None, metavar="FILE",
                   help="(--controller batch) the controller's job script template "
                        "({controller_command}, {queue}, ...)")
    g.add_argument("--status-command", default=None,
                   help="(--controller batch) given the job id, exits 0 while the job is "
                        "queued or running (e.g. 'qstat -j')")


def _cmd_stop(args):
    from . import paths
    from .cluster import Cluster

    if not os.path.exists(paths.cluster_file(args.profile, args.cluster_id)):
        print(f"no cluster {args.cluster_id or 'default'} in profile {args.profile}",
              file=sys.stderr)
        return 1
    Cluster.from_file(profile=args.profile, cluster_id=args.cluster_id).stop_cluster_sync()
    print(f"cluster {args.cluster_id or 'default'} (profile {args.profile}) stopped")
    return 0


def _cmd_recover(args):
    from . import paths
    from .cluster import Cluster, ClusterError

    name = f"cluster {args.cluster_id or 'default'} (profile {args.profile})"
    try:
        c = Cluster.from_file(profile=args.profile, cluster_id=args.cluster_id)
        c.recover_sync()
    except (ClusterError, ValueError, OSError) as e:
        print(f"cpar cluster recover: {name}: {e}", file=sys.stderr)
        return 1
    conn = paths.read_json(c.connection_file)
    print(f"{name} recovered: controller pid {conn['controller_pid']} on "
          f"{conn.get('hostname', '?')}; engines re-register within "
          f"{conn.get('recover_grace_ms', 0) / 1000:g} s")
    return 0


def _cmd_list(args):
    from .cluster import list_clusters

    rows = list_clusters()
    if not rows:
        print("no clusters")
        return 0
    print(f"{'profile':<12} {'cluster id':<14} {'state':<8} engines")
    for r in rows:
        state = "running" if r["running"] else "stopped"
        print(f"{r['profile']:<12} {r['cluster_id'] or 'default':<14} {state:<8} "
              f"{r['engines_running']}")
    return 0


def _cmd_engines(args):
    from .cluster import Cluster, ClusterError

    c = Cluster.from_file(profile=args.profile, cluster_id=args.cluster_id)
    try:
        c.start_engines_sync(args.n)
    except (ClusterError, ValueError, OSError) as e:
        print(f"cpar cluster engines: {e}", file=sys.stderr)
        return 1
    print(f"started {args.n} engines")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="cpar", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("controller", help="run a controller in this process")
    _add_cluster_ids(p)
    p.add_argument("--ip", default=None,
                   help="address to bind over TCP, for engines and clients on other hosts "
                        "(default: no TCP; ipc:// sockets in a private directory, this "
                        "user on this host only; a port alone binds loopback)")
    p.add_argument("--client-port", type=int, default=0)
    p.add_argument("--engine-port", type=int, default=0)
    p.add_argument("--hb-period-ms", type=int, default=500)
    p.add_argument("--hb-timeout-ms", type=int, default=3000)
    p.add_argument("--log", default=None, help="log file")
    _add_scheduling(p)
    p.add_argument("--curve", action="store_true",
                   help="encrypt all connections with CurveZMQ (keys in the connection file)")
    p.add_argument("--insecure", action="store_true",
                   help="allow binding a non-loopback --ip without --curve")
    p.add_argument("--location", default=None,
                   help="host name or address clients and engines connect to (default: --ip)")
    p.add_argument("--curve-allow", action="append", default=[], metavar="PUBLIC_KEY",
                   help="with --curve, also let in a client or engine with this public key "
                        "(Z85; repeatable); other keys fail the handshake")
    p.add_argument("--max-records", type=int, default=100000,
                   help="ended task records kept for dependencies (default: %(default)s)")
    _add_db(p)
    _add_recover_grace(p)
    p.add_argument("--recover", action="store_true",
                   help="start in place of this cluster's controller that died: the same "
                        "addresses and key (from its connection file), the work its task "
                        "database holds (docs/recovery.md)")
    p.set_defaults(func=_cmd_controller)

    p = sub.add_parser("engine", help="run one engine in this process")
    _add_cluster_ids(p)
    p.add_argument("--connection-file", default=None)
    p.add_argument("--log", default=None)
    p.set_defaults(func=_cmd_engine)

    cl = sub.add_parser("cluster", help="start, stop and list clusters")
    csub = cl.add_subparsers(dest="action", required=True)
    p = csub.add_parser("start", help="start a controller and engines")
    _add_cluster_ids(p)
    p.add_argument("-n", type=int, default=None, help="engines (default: one per core)")
    p.add_argument("--daemonize", action="store_true", help="return once the cluster is up")
    p.add_argument("--hb-timeout-ms", type=int, default=3000)
    _add_scheduling(p)
    _add_db(p)
    _add_recover_grace(p)
    _add_launcher_options(p)
    p.set_defaults(func=_cmd_start)
    p = csub.add_parser("stop", help="stop a running cluster")
    _add_cluster_ids(p)
    p.set_defaults(func=_cmd_stop)
    p = csub.add_parser("recover", help="start a new controller in place of one that died "
                                        "(docs/recovery.md)")
    _add_cluster_ids(p)
    p.set_defaults(func=_cmd_recover)
    p = csub.add_parser("list", help="list clusters")
    p.set_defaults(func=_cmd_list)
    p = csub.add_parser("engines", help="add engines to a running cluster")
    _add_cluster_ids(p)
    p.add_argument("-n", type=int, default=1)
    p.set_defaults(func=_cmd_engines)
    return parser


def _join_key_values(argv):
    """Z85 public keys may begin with '-', which argparse takes for an option: glue the
    value of each ``--curve-allow KEY`` to its flag (``--curve-allow=KEY``)."""
    out, it = [], iter(argv)
    for a in it:
        if a == "--curve-allow":
            value = next(it, None)
            out.append(a if value is None else f"{a}={value}")
        else:
            out.append(a)
    return out


def main(argv=None):
    argv = _join_key_values(sys.argv[1:] if argv is None else list(argv))
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
