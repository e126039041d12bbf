"""Finding clusters: launcher names as users write them, and ``ClusterManager`` (the
clusters of one or more profiles, by ``'<profile>:<cluster_id>'``), as in ipyparallel."""

import os

from .. import paths

# Other names users give the launchers (ipyparallel's entry points and class names).
_ALIASES = {"mpiexec": "mpi", "localprocess": "local", "sshproxy": "ssh"}
_SUFFIXES = ("enginesetlauncher", "engineslauncher", "enginelauncher", "controllerlauncher",
             "launcher")


def launcher_name(name, available, what="engine"):
    """The key of ``available`` that ``name`` means: case does not matter, and
    ipyparallel's spellings (``'MPI'``, ``'mpiexec'``, ``'MPIEngineSetLauncher'``,
    ``'ipyparallel.cluster.launcher.SlurmEngineSetLauncher'``) and launcher classes are
    understood. ValueError naming the choices otherwise."""
    original = name
    if isinstance(name, type):
        name = getattr(name, "name", None) or name.__name__
    if not isinstance(name, str):
        raise ValueError(f"{what} launcher must be a name such as 'local' or 'mpi', not "
                         f"{original!r}")
    key = name.strip().rsplit(".", 1)[-1].lower()
    if key not in available:
        for suffix in _SUFFIXES:
            if key.endswith(suffix) and len(key) > len(suffix):
                key = key[:-len(suffix)]
                break
        key = _ALIASES.get(key, key)
    if key not in available:
        raise ValueError(f"unknown {what} launcher {original!r}; available: "
                         + ", ".join(repr(k) for k in available))
    return key


def _profiles_in(root):
    try:
        names = sorted(os.listdir(root))
    except FileNotFoundError:
        return []
    return [d[len("profile_"):] for d in names
            if d.startswith("profile_") and os.path.isdir(os.path.join(root, d))]


def _profile_of_dir(profile_dir):
    """The profile name of a profile directory under $CPAR_DIR."""
    base = os.path.basename(os.path.normpath(os.fspath(profile_dir)))
    name = base[len("profile_"):] if base.startswith("profile_") else ""
    if not name or os.path.realpath(paths.profile_dir(name)) != os.path.realpath(profile_dir):
        raise ValueError(f"{profile_dir!r} is not a profile directory of $CPAR_DIR "
                         f"({paths.cpar_dir()}): expected {paths.cpar_dir()}/profile_NAME")
    return name


def cluster_files(profile):
    """The cluster files of one profile."""
    sec = os.path.join(paths.profile_dir(profile), "security")
    try:
        names = sorted(os.listdir(sec))
    except FileNotFoundError:
        return []
    return [os.path.join(sec, f) for f in names
            if f.startswith("cluster-") and f.endswith(".json")]


class ClusterManager:
    """The clusters of some profiles, by key ``'<profile>:<cluster_id>'``.

    ``load_clusters()`` reads the cluster files (of every profile, or of ``profile=`` /
    ``profiles=``) into ``clusters``; ``get_cluster(key)`` gives one (e.g. to
    ``connect_client_sync()`` or ``stop_cluster_sync()``); ``new_cluster(**kw)`` makes a
    ``Cluster`` (not started) and files it."""

    def __init__(self):
        self.clusters = {}

    @staticmethod
    def _cluster_key(cluster):
        return f"{cluster.profile}:{cluster.cluster_id}"

    def load_clusters(self, *, profiles=None, profile=None, profile_dirs=None,
                      profile_dir=None, init_default_clusters=False):
        """Adds the clusters whose files exist and drops the loaded ones that stopped;
        returns ``clusters``. ``init_default_clusters``: a profile without any cluster
        gets a (stopped) ``Cluster(profile=P)``."""
        from .cluster import Cluster

        for key, c in list(self.clusters.items()):
            if c.controller is not None and not c.controller.running:
                del self.clusters[key]
        if profile_dirs is None and profile_dir is not None:
            profile_dirs = [profile_dir]
        if profile_dirs is not None:
            profiles = [_profile_of_dir(d) for d in profile_dirs]
        elif profiles is None:
            profiles = [profile] if profile is not None else _profiles_in(paths.cpar_dir())
        if isinstance(profiles, str):
            raise ValueError(f"profiles must be a list of profile names, not {profiles!r}")
        loaded = {os.path.realpath(c.cluster_file) for c in self.clusters.values()}
        for prof in profiles:
            files = cluster_files(prof)
            if init_default_clusters and not files:
                c = Cluster(profile=prof, cluster_id="")
                self.clusters.setdefault(self._cluster_key(c), c)
            for f in files:
                if os.path.realpath(f) in loaded:
                    continue
                try:
                    c = Cluster.from_file(f)
                except (OSError, ValueError, KeyError):
                    continue  # unreadable or half-written: not a cluster we can use
                self.clusters[self._cluster_key(c)] = c
        return self.clusters

    def list_clusters(self):
        """The keys of the loaded clusters, sorted."""
        return sorted(self.clusters)

    def new_cluster(self, **kwargs):
        """``(key, cluster)`` for a new ``Cluster(**kwargs)``; KeyError if that key is
        taken."""
        from .cluster import Cluster

        c = Cluster(**kwargs)
        key = self._cluster_key(c)
        if key in self.clusters:
            raise KeyError(f"cluster {key!r} already exists")
        self.clusters[key] = c
        return key, c

    def get_cluster(self, cluster_id):
        """The cluster of key ``'<profile>:<cluster_id>'`` (KeyError naming the known
        ones otherwise)."""
        try:
            return self.clusters[cluster_id]
        except KeyError:
            raise KeyError(f"no cluster {cluster_id!r}; loaded: "
                           + (", ".join(sorted(self.clusters)) or "none")
                           + " (keys are 'profile:cluster_id'; call load_clusters())") from None

    def remove_cluster(self, cluster_id):
        """Forgets a cluster (it keeps running)."""
        self.get_cluster(cluster_id)
        del self.clusters[cluster_id]
