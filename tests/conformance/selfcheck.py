"""Checks the shim before a conformance run (run.py runs it with the run's environment).

The name mapping must hold, or every count the run prints would be about something else:
``ipyparallel`` is the shim, its names are cpar's objects, ``ipyparallel.tests`` is the
wheel's test package with our ``__init__``, and a name cpar lacks is a placeholder.
"""

import os
import sys

import cpar
import cpar.error
import ipyparallel
import ipyparallel.error
import ipyparallel.tests
import ipyparallel.tests.clienttest as clienttest
from ipyparallel._alias import MissingInCpar, wheel_dir

here = os.path.dirname(os.path.abspath(__file__))
wheel_tests = os.path.join(wheel_dir(), "tests")
checks = [
    (ipyparallel.__file__.startswith(os.path.join(here, "shim")), "ipyparallel is the shim"),
    (ipyparallel.Client is cpar.Client, "ipyparallel.Client is cpar.Client"),
    (ipyparallel.error.RemoteError is cpar.error.RemoteError, "error.RemoteError is cpar's"),
    (clienttest.error.RemoteError is cpar.error.RemoteError, "clienttest sees cpar's error"),
    (ipyparallel.tests.__file__.startswith(here), "ipyparallel.tests.__init__ is ours"),
    (wheel_tests in ipyparallel.tests.__path__, "ipyparallel.tests finds the wheel's modules"),
    (os.path.dirname(clienttest.__file__) == wheel_tests, "clienttest.py is the wheel's"),
    (clienttest.Client is cpar.Client, "clienttest's Client is cpar.Client"),
]
try:
    ipyparallel.error.NoSuchNameInCpar()
    checks.append((False, "a missing name raises MissingInCpar when used"))
except MissingInCpar:
    checks.append((True, "a missing name raises MissingInCpar when used"))
bad = [what for ok, what in checks if not ok]
for what in bad:
    print("shim self-check failed:", what, file=sys.stderr)
sys.exit(1 if bad else 0)
