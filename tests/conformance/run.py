"""Runs ipyparallel 9.2's own tests (from the installed wheel) against cpar.

    python tests/conformance/run.py [test_view test_lbview ...]

Each module runs in its own pytest process, with the ``ipyparallel`` name resolved to
cpar by the shim (tests/conformance/shim, also on the engines' PYTHONPATH) and a cpar
cluster in place of ipcontroller/ipengine. A test passes when its setup, call and
teardown pass; every test that does not must be listed in expected.txt with its kind and
reason, and no listed test may pass: any difference fails the run (exit status 1) and is
printed. Kinds: private (a test of ipyparallel's internals), taskdb (of its task
database), todo (user-facing, cpar fails it today), upstream (the suite itself skips or
xfails it here, whatever the implementation). Per-module counts are printed and written to
results/counts.json and results/counts.txt, and results/observed.txt lists every test that
did not pass with its error (the material for expected.txt), when all modules ran; each
module's pytest output is in results/<module>.log.
"""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SHIM = os.path.join(HERE, "shim")
RESULTS = os.path.join(HERE, "results")
EXPECTED = os.path.join(HERE, "expected.txt")
KINDS = ("private", "taskdb", "todo", "upstream")

MODULES = (
    "test_view", "test_lbview", "test_asyncresult", "test_client", "test_dependency",
    "test_magics", "test_remotefunction", "test_executor", "test_async", "test_joblib",
    "test_view_broadcast", "test_label",
)
MODULE_TIMEOUT = 900  # seconds for one module's pytest process (tests have 60 s each)


def wheel_tests_dir():
    sys.path.insert(0, SHIM)
    try:
        from ipyparallel._alias import wheel_dir
    finally:
        sys.path.remove(SHIM)
    return os.path.join(wheel_dir(), "tests")


def read_expected(path=EXPECTED):
    """{test id: (kind, reason)} from lines ``<id> <kind>: <reason>``; # comments."""
    expected = {}
    with open(path) as f:
        for n, line in enumerate(f, 1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            tid, _, rest = line.partition(" ")
            kind, colon, reason = rest.strip().partition(":")
            if not colon or kind not in KINDS or not reason.strip():
                raise SystemExit(f"{path}:{n}: want '<test id> <{'|'.join(KINDS)}>: reason'")
            if tid in expected:
                raise SystemExit(f"{path}:{n}: {tid} listed twice")
            expected[tid] = (kind, reason.strip())
    return expected


def run_module(mod, tests_dir, env):
    """Runs one module; returns ({test id: (passed, message)}, seconds)."""
    fd, out = tempfile.mkstemp(prefix=f"conf-{mod}-", suffix=".jsonl")
    os.close(fd)
    cmd = [sys.executable, "-m", "pytest", "-c", os.path.join(HERE, "pytest.ini"),
           "--rootdir", tests_dir, "-p", "conformance_plugin", "-q", "-rN",
           "--tb=short", os.path.join(tests_dir, mod + ".py")]
    t0 = time.monotonic()
    log = os.path.join(RESULTS, f"{mod}.log")
    with open(log, "w") as logf:
        try:
            proc = subprocess.run(cmd, env={**env, "CPAR_CONFORMANCE_OUT": out},
                                  stdout=logf, stderr=subprocess.STDOUT, cwd=HERE,
                                  timeout=MODULE_TIMEOUT)
            rc = proc.returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    secs = time.monotonic() - t0
    tests, died = {}, rc not in (0, 1)
    with open(out) as f:
        records = [json.loads(line) for line in f if line.strip()]
    os.unlink(out)
    for r in records:
        if r["kind"] == "collected":
            tests.setdefault(r["id"], [None, ""])
        elif r["kind"] == "collect-error":
            tests[f"{mod}.py::<collection>"] = [False, r["msg"]]
        else:
            t = tests.setdefault(r["id"], [None, ""])
            if r["outcome"] == "passed":
                if r["when"] == "call" and t[0] is None:
                    t[0] = True
            else:
                if t[0] is not False:
                    t[1] = f"{r['when']} {r['outcome']}: {r['msg']}"
                t[0] = False
    for tid, t in tests.items():
        if t[0] is None:
            t[0], t[1] = False, f"not run (pytest exited with {rc})" if died else "no result"
    return {tid: tuple(t) for tid, t in tests.items()}, secs


def leftover_processes(cpar_dir):
    """(pid, command line) of processes still using this run's $CPAR_DIR."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if cpar_dir in cmd and int(pid) != os.getpid():
            found.append((int(pid), cmd.strip()))
    return found


def main(argv):
    mods = [a.removesuffix(".py") for a in argv if not a.startswith("-")] or list(MODULES)
    tests_dir = wheel_tests_dir()
    expected = read_expected()
    os.makedirs(RESULTS, exist_ok=True)
    cpar_dir = tempfile.mkdtemp(prefix="cpar-conformance-")
    env = dict(os.environ)
    env["CPAR_DIR"] = cpar_dir
    env["PYTHONPATH"] = os.pathsep.join(
        [SHIM, HERE] + ([env["PYTHONPATH"]] if env.get("PYTHONPATH") else []))
    env.pop("PYTEST_ADDOPTS", None)

    check = subprocess.run([sys.executable, os.path.join(HERE, "selfcheck.py")], env=env,
                           cwd=HERE)
    if check.returncode != 0:
        shutil.rmtree(cpar_dir, ignore_errors=True)
        print("conformance: FAILED (the shim does not map ipyparallel to cpar)")
        return 1

    counts, observed, unexpected_pass, unexpected_fail = {}, [], [], []
    total_secs = 0.0
    try:
        for mod in mods:
            results, secs = run_module(mod, tests_dir, env)
            total_secs += secs
            c = {"total": 0, "passed": 0, "seconds": round(secs, 1),
                 **{k: 0 for k in KINDS}}
            for tid, (passed, msg) in sorted(results.items()):
                c["total"] += 1
                exp = expected.get(tid)
                if passed:
                    c["passed"] += 1
                    if exp:
                        unexpected_pass.append(f"{tid}  (listed {exp[0]}: {exp[1]})")
                else:
                    observed.append(f"{tid}  {msg}")
                    if exp:
                        c[exp[0]] += 1
                    else:
                        unexpected_fail.append(f"{tid}  {msg}")
            counts[mod] = c
            print(f"{mod}: {c['passed']}/{c['total']} passed, "
                  + ", ".join(f"{c[k]} {k}" for k in KINDS) + f" ({secs:.0f} s)", flush=True)
        ran = {m + ".py" for m in mods}
        leftovers = leftover_processes(cpar_dir)
        stale = [tid for tid in expected if tid.split("::")[0] in ran
                 and tid not in {t for t in _seen(observed)} and tid not in
                 {u.split("  ")[0] for u in unexpected_pass}]
    finally:
        shutil.rmtree(cpar_dir, ignore_errors=True)

    lines = [f"{'module':22} {'passed':>6} " + " ".join(f"{k:>7}" for k in KINDS)
             + f" {'total':>6} {'seconds':>8}"]
    tot = {k: 0 for k in ("passed", "total", *KINDS)}
    for mod, c in counts.items():
        lines.append(f"{mod:22} {c['passed']:>6} " + " ".join(f"{c[k]:>7}" for k in KINDS)
                     + f" {c['total']:>6} {c['seconds']:>8}")
        for k in tot:
            tot[k] += c[k]
    lines.append(f"{'all':22} {tot['passed']:>6} " + " ".join(f"{tot[k]:>7}" for k in KINDS)
                 + f" {tot['total']:>6} {total_secs:>8.1f}")
    for label, group in (("first eight modules", MODULES[:8]), ("all twelve", MODULES)):
        cs = [counts[m] for m in group if m in counts]
        if len(cs) == len(group):
            user = sum(c["total"] - c["private"] - c["taskdb"] - c["upstream"] for c in cs)
            ok = sum(c["passed"] for c in cs)
            lines.append(f"user-facing tests passing, {label}: {ok} of {user}"
                         f" ({100 * ok / max(user, 1):.0f}%)")
    table = "\n".join(lines)
    print("\n" + table)
    if set(mods) == set(MODULES):
        with open(os.path.join(RESULTS, "counts.txt"), "w") as f:
            f.write(table + "\n")
        with open(os.path.join(RESULTS, "counts.json"), "w") as f:
            user = tot["total"] - tot["private"] - tot["taskdb"] - tot["upstream"]
            json.dump({"ipyparallel": "9.2.0", "modules": counts,
                       "all": {**tot, "user_facing": user, "seconds": round(total_secs, 1)}},
                      f, indent=1)
            f.write("\n")
        with open(os.path.join(RESULTS, "observed.txt"), "w") as f:
            f.write("\n".join(observed) + "\n")

    bad = False
    if leftovers:
        bad = True
        print(f"\nPROCESSES LEFT RUNNING ({len(leftovers)}; stopped now):")
        for pid, cmd in leftovers:
            print(f"  {pid} {cmd[:150]}")
            try:
                os.kill(pid, 9)
            except OSError:
                pass
    if unexpected_fail:
        bad = True
        print(f"\nUNEXPECTED FAILURES ({len(unexpected_fail)}; list them in expected.txt "
              "or fix them):")
        print("\n".join("  " + u for u in unexpected_fail))
    if unexpected_pass:
        bad = True
        print(f"\nUNEXPECTED PASSES ({len(unexpected_pass)}; remove them from expected.txt):")
        print("\n".join("  " + u for u in unexpected_pass))
    if stale:
        bad = True
        print(f"\nLISTED BUT NOT FOUND ({len(stale)}; remove them from expected.txt):")
        print("\n".join("  " + s for s in stale))
    print("\nconformance:", "FAILED" if bad else "OK (every result as expected)")
    return 1 if bad else 0


def _seen(observed):
    return [o.split("  ")[0] for o in observed]


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
