# The self-contained wheel (issue 18): `make wheel` and its test. Included by the Makefile.
