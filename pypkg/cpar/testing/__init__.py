"""Support for testing code that runs on cpar engines; :mod:`cpar.pytest_plugin` is its
pytest side.

The modules here do not import pytest, so that engines (which import
:mod:`cpar.testing.remote` to run a test's body) need not have it:

- :mod:`cpar.testing.remote`: a test function's body shipped to engines and run there,
  and the failure message naming each engine's error;
- :mod:`cpar.testing.reports`: what the engines printed and logged during one test, for
  the report of a test that failed.
"""

from .remote import EngineId

__all__ = ["EngineId"]
