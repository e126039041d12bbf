"""ipyparallel launcher classes that cpar has under another name, for the shim's
``ipyparallel.cluster.launcher`` (see ``_alias.ALIASES``).

``cpar.Cluster(controller=cls)`` takes a launcher class by its ``name``
(``cpar.cluster.manager.launcher_name``); ipyparallel's test_label subclasses
``LocalControllerLauncher`` to pass ``--dictdb``/``--sqlitedb``. Here that class is
cpar's ``'local'`` controller launcher: the subclass's ``controller_args`` (ipyparallel's
choice of database backend) are not read, cpar's controller has one task database
(docs/taskdb.md).
"""


class LocalControllerLauncher:
    """ipyparallel's local controller launcher: cpar's ``'local'`` one."""

    name = "local"
