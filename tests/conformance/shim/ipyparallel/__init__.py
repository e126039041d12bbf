"""The name ``ipyparallel`` resolved to cpar, for the conformance harness only.

Put ``tests/conformance/shim`` first on ``sys.path`` (the runner sets PYTHONPATH, so the
engines get it too). Every ``ipyparallel.*`` name is looked up in cpar; the module
``ipyparallel.tests`` is the wheel's test package with our ``__init__`` (a cpar cluster in
place of ipcontroller/ipengine). A name cpar does not have resolves to a placeholder class
that raises ``MissingInCpar`` when used, so a test module still imports and only the tests
that use the name fail.
"""

from ._alias import MissingInCpar, install, lookup

install()

__version__ = "9.2.0"
version_info = (9, 2, 0)
_SOURCES = ("cpar",)


def __getattr__(name):
    return lookup(__name__, _SOURCES, name)


__all__ = ["MissingInCpar"]
