"""The `cpar` command: `cpar cluster start|stop|list|engines`, `cpar controller`, `cpar engine`."""

import argparse
import os
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
    from .cluster import Cluster, ClusterError

    c = Cluster(
        n=args.n,
        profile=args.profile,
        cluster_id=args.cluster_id,
        daemonize=args.daemonize,
        hb_timeout_ms=args.hb_timeout_ms,
        controller_args=["--scheme", args.scheme, "--hwm", str(args.hwm)],
    )
    try:
        c.start_cluster_sync()
    except ClusterError as e:
        print(f"cpar cluster start: {e}", file=sys.stderr)
        return 1
    ids = c.connect_client_sync().ids
    print(f"cluster {args.cluster_id or 'default'} (profile {args.profile}) running: "
          f"controller pid {c.controller.pids[0]}, {len(ids)} engines {ids}")
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


def _cmd_stop(args):
    from . import paths
    from .cluster import Cluster

    if not os.path.exists(paths.cluster_file(args.profile, args.cluster_id)):
        print(f"no cluster {args.cluster_id or 'default'} in profile {args.profile}",
              file=sys.stderr)
        return 1
    Cluster.from_file(args.profile, args.cluster_id).stop_cluster_sync()
    print(f"cluster {args.cluster_id or 'default'} (profile {args.profile}) stopped")
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

    c = Cluster.from_file(args.profile, args.cluster_id)
    try:
        c.start_engines_sync(args.n)
    except ClusterError as e:
        print(f"cpar cluster engines: {e}", file=sys.stderr)
        return 1
    print(f"started {args.n} engines")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="cpar", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("controller", help="run a controller in this process")
    _add_cluster_ids(p)
    p.add_argument("--ip", default="127.0.0.1", help="interface to bind (default loopback)")
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
    p.add_argument("--max-records", type=int, default=100000,
                   help="ended task records kept for dependencies (default: %(default)s)")
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
    p.set_defaults(func=_cmd_start)
    p = csub.add_parser("stop", help="stop a running cluster")
    _add_cluster_ids(p)
    p.set_defaults(func=_cmd_stop)
    p = csub.add_parser("list", help="list clusters")
    p.set_defaults(func=_cmd_list)
    p = csub.add_parser("engines", help="add engines to a running cluster")
    _add_cluster_ids(p)
    p.add_argument("-n", type=int, default=1)
    p.set_defaults(func=_cmd_engines)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args) or 0


if __name__ == "__main__":
    sys.exit(main())
