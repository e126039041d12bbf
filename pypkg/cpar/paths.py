"""Where cpar keeps its state: profiles, connection files, cluster files and logs.

Layout under ``$CPAR_DIR`` (default ``~/.cpar``)::

    profile_<profile>/security/connection-<cluster_id>.json   (mode 0600)
    profile_<profile>/security/cluster-<cluster_id>.json      (processes of a cluster)
    profile_<profile>/log/                                     (controller and engine logs)

An empty cluster id is spelled ``default`` in file names.
"""

import json
import os


def cpar_dir():
    """The root of cpar's state, created on first use."""
    root = os.environ.get("CPAR_DIR") or os.path.join(os.path.expanduser("~"), ".cpar")
    os.makedirs(root, exist_ok=True)
    return root


def profile_dir(profile="default"):
    path = os.path.join(cpar_dir(), f"profile_{profile}")
    os.makedirs(os.path.join(path, "security"), mode=0o700, exist_ok=True)
    os.makedirs(os.path.join(path, "log"), exist_ok=True)
    return path


def _cid(cluster_id):
    return cluster_id or "default"


def connection_file(profile="default", cluster_id=""):
    """Path of the connection file of a cluster (it may not exist)."""
    return os.path.join(profile_dir(profile), "security", f"connection-{_cid(cluster_id)}.json")


def cluster_file(profile="default", cluster_id=""):
    """Path of the cluster file (processes, state) of a cluster (it may not exist)."""
    return os.path.join(profile_dir(profile), "security", f"cluster-{_cid(cluster_id)}.json")


def log_dir(profile="default"):
    return os.path.join(profile_dir(profile), "log")


def write_private_json(path, data):
    """Writes JSON atomically to ``path`` with mode 0600 (it holds a secret key)."""
    import tempfile  # here, not at the top: every engine imports this module to read its
    # connection file, and tempfile pulls in shutil, random, bz2 and lzma (~1 MB per engine)

    d = os.path.dirname(path)
    fd, tmp = tempfile.mkstemp(dir=d, prefix=".tmp-", suffix=".json")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, sort_keys=True)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def read_json(path):
    with open(path) as f:
        return json.load(f)
