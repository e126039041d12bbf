# The documentation site (issue 18): `make docs` (Sphinx, warnings as errors). Included by the Makefile.
