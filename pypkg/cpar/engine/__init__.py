"""The Python side of ``cpar-engine``: code the C engine runs inside its embedded
interpreter (see :mod:`cpar.engine.runtime`). Users do not import this package."""
