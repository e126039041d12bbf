# cpar: `make demo` and `make test` each do all set-up from a fresh clone.
PYTHON ?= python3
VENV := .venv
VPY := $(VENV)/bin/python
APT_PACKAGES := libzmq3-dev libssl-dev libsqlite3-dev pkg-config clang-format
# What only the tests need: real MPIs, sshd, a single-node Slurm and a single-host Grid
# Engine for the launcher tests.
APT_TEST_PACKAGES := openmpi-bin libopenmpi-dev mpich openssh-server openssh-client slurm-wlm munge \
  gridengine-master gridengine-exec gridengine-client
CSRC := $(wildcard cext/*/*.c cext/*/*.h engine/*.c engine/*.h)
STAMP := $(VENV)/.cpar-installed

.PHONY: all deps deps-test apt-install venv build demo test ctest ctest-asan pytest conformance asan-engine bench bench-taskdb lint format format-check clean

all: build

# System libraries: installed from Debian only when missing.
deps:
	@$(MAKE) --no-print-directory apt-install PKGS="$(APT_PACKAGES)"

deps-test:
	@$(MAKE) --no-print-directory apt-install PKGS="$(APT_PACKAGES) $(APT_TEST_PACKAGES)"

apt-install:
	@missing=""; \
	for p in $(PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq $$missing; \
	fi

$(VPY):
	$(PYTHON) -m venv $(VENV)
	$(VPY) -m pip install -q --upgrade pip setuptools wheel

# The package with its test extras, editable; rebuilt when the C sources change.
$(STAMP): $(VPY) setup.py pyproject.toml $(CSRC)
	$(MAKE) deps
	$(VPY) -m pip install -q -e '.[test]'
	touch $@

venv: $(STAMP)
build: $(STAMP)

demo: $(STAMP)
	$(VPY) examples/julia_demo.py

# Side-by-side benchmarks; the peers are installed into the venv first.
bench: $(STAMP)
	$(VPY) -m pip install -q ipyparallel dask distributed matplotlib
	$(VPY) -m bench
	$(VPY) -m bench.taskdb

# The task database's cost alone (docs/taskdb.md): rate with it on and off, growth.
bench-taskdb: $(STAMP)
	$(VPY) -m bench.taskdb

include tests/c/build.mk
include tools/wheel.mk
include docs/docs.mk

# The controller alone, fed from C (bench/ctlfeed.c, run by `make bench` through bench/ctlfeed.py).
build/bench/ctlfeed: bench/ctlfeed.c $(CTEST_SUPPORT) $(CTEST_SUPPORT_HDR) $(CTEST_CORE_SRC) $(CTEST_CORE_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) -O2 $< $(CTEST_SUPPORT) $(CTEST_CORE_SRC) -o $@ $(CTEST_LIBS)

test: deps-test format-check $(STAMP) lint docs ctest ctest-asan fuzz-controller fuzz-client fuzz-engine asan-engine asan-client tsan pytest conformance wheel-test

# The engine built with AddressSanitizer and UBSan, driven by the engine and client tests.
ASAN_FLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
PYCFG = $(VPY) -c "import sysconfig as s; print(s.get_config_var('$(1)'))"
build/asan/cpar-engine: $(CSRC) $(STAMP)
	mkdir -p build/asan
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O1 -g $(ASAN_FLAGS) \
	  -iquote cext/core -iquote cext/pyglue -I$$($(call PYCFG,INCLUDEPY)) \
	  -DCPAR_BUILD_PYTHON=\"$(abspath $(VPY))\" \
	  cext/core/*.c cext/pyglue/*.c engine/*.c -o $@ \
	  -L$$($(call PYCFG,LIBDIR)) -lpython$$($(call PYCFG,LDVERSION)) \
	  -Wl,-rpath,$$($(call PYCFG,LIBDIR)) -Wl,--export-dynamic -lzmq -lcrypto -lpthread -ldl -lm

asan-engine: build/asan/cpar-engine
	CPAR_ENGINE=$(abspath build/asan/cpar-engine) \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(VPY) -m pytest -rs -q tests/test_engine.py tests/test_client.py tests/test_shm.py tests/test_lbview.py

# The engine fuzzer: a fake controller drives the ASan engine with signed random traffic
# and corrupt shared-memory tables (tests/c/fuzz_engine.c): the committed corpus, then new
# seeds until FUZZ_ENGINE_SECONDS have passed in all (make fuzz-engine-long: CTEST_FUZZ_SECONDS).
FUZZ_ENGINE_SECONDS ?= 30
fuzz-engine: build/ctest-asan/fuzz_engine build/asan/cpar-engine
	CPAR_ENGINE=$(abspath build/asan/cpar-engine) CPAR_FUZZ_SECONDS=$(FUZZ_ENGINE_SECONDS) \
	  $(FUZZ_ASAN_ENV) build/ctest-asan/fuzz_engine tests/c/corpus/engine

fuzz-engine-long:
	$(MAKE) fuzz-engine FUZZ_ENGINE_SECONDS=$(CTEST_FUZZ_SECONDS)

# make fuzz (tests/c/build.mk: the wire decoder, the controller and the client) runs this
# one too.
fuzz: fuzz-engine-long
.PHONY: fuzz-engine fuzz-engine-long

# The _core extension (client I/O thread, in-process controller) built with ASan/UBSan,
# driven by the client tests: a copy of the package under build/asan-pkg holds the
# sanitized extensions (and engine), first on PYTHONPATH; python runs with the sanitizer
# runtimes preloaded (CPython leaks at exit by design, so no leak check). --capture=sys
# leaves fd 2 alone so that a sanitizer report is seen even when it ends the process.
ASAN_CLIENT_TESTS ?= tests/test_core.py tests/test_client.py tests/test_shm.py
ASAN_PRELOAD = $(shell $(CC) -print-file-name=libasan.so) $(shell $(CC) -print-file-name=libubsan.so)
asan-client: $(STAMP)
	CPAR_EXTRA_CFLAGS="-O1 -g $(ASAN_FLAGS)" CPAR_EXTRA_LDFLAGS="$(ASAN_FLAGS)" \
	  $(VPY) setup.py -q build_ext --build-lib build/asan-ext --build-temp build/asan-ext-tmp \
	  >build/asan-ext.log 2>&1 || { cat build/asan-ext.log; exit 1; }
	rm -rf build/asan-pkg && mkdir -p build/asan-pkg && cp -r pypkg/cpar build/asan-pkg/
	rm -rf build/asan-pkg/cpar/*.so build/asan-pkg/cpar/bin && find build/asan-pkg -name __pycache__ -prune -exec rm -rf {} +
	cp build/asan-ext/cpar/*.so build/asan-pkg/cpar/ && cp -r build/asan-ext/cpar/bin build/asan-pkg/cpar/
	LD_PRELOAD="$(ASAN_PRELOAD)" PYTHONPATH=$(abspath build/asan-pkg) ASAN_OPTIONS=detect_leaks=0 \
	  $(VPY) -c "import cpar._core as c, sys; sys.exit('asan-pkg' not in c.__file__)"
	LD_PRELOAD="$(ASAN_PRELOAD)" PYTHONPATH=$(abspath build/asan-pkg) \
	  ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  $(VPY) -m pytest -q --capture=sys -p no:cacheprovider $(ASAN_CLIENT_TESTS)
.PHONY: asan-client

# ThreadSanitizer: the client I/O thread (a C driver, tests/c/tsan_clientio.c), the
# controller's thread against the controller fuzzer's (its corpus), and the engine's I/O
# thread against its Python main thread (a TSan engine driven by the engine fuzzer for
# TSAN_ENGINE_SECONDS in all). tests/tsan.supp covers libzmq, which is not instrumented;
# CPython (not instrumented either) needed no suppression: our code never is.
TSAN_ENGINE_SECONDS ?= 20
TSAN_ENV = TSAN_OPTIONS="halt_on_error=1 exitcode=66 allocator_may_return_null=1 suppressions=$(abspath tests/tsan.supp)"
build/tsan/cpar-engine: $(CSRC) $(STAMP)
	mkdir -p build/tsan
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O1 -g -fsanitize=thread \
	  -iquote cext/core -iquote cext/pyglue -I$$($(call PYCFG,INCLUDEPY)) \
	  -DCPAR_BUILD_PYTHON=\"$(abspath $(VPY))\" \
	  cext/core/*.c cext/pyglue/*.c engine/*.c -o $@ \
	  -L$$($(call PYCFG,LIBDIR)) -lpython$$($(call PYCFG,LDVERSION)) \
	  -Wl,-rpath,$$($(call PYCFG,LIBDIR)) -Wl,--export-dynamic -lzmq -lcrypto -lpthread -ldl -lm

tsan: build/tsan/tsan_clientio build/tsan/fuzz_controller build/tsan/fuzz_engine build/tsan/cpar-engine
	$(TSAN_ENV) build/tsan/tsan_clientio
	$(TSAN_ENV) build/tsan/fuzz_controller tests/c/corpus/controller/seed-0[1-4]*
	CPAR_ENGINE=$(abspath build/tsan/cpar-engine) CPAR_FUZZ_SECONDS=$(TSAN_ENGINE_SECONDS) \
	  $(TSAN_ENV) build/tsan/fuzz_engine tests/c/corpus/engine
.PHONY: tsan

# -rs lists every skip; no -x, so one failure does not hide the rest. CPAR_REQUIRE_ALL: as
# root (where make test installs every daemon) a skipped launcher/netns test fails the run.
pytest: $(STAMP)
	CPAR_REQUIRE_ALL=1 $(VPY) -m pytest -rs -q tests

# ipyparallel 9.2's own tests (from the wheel in the test extras) run against cpar through
# tests/conformance's shim; strict against tests/conformance/expected.txt (part of `make test`).
conformance: $(STAMP)
	$(VPY) tests/conformance/run.py

# Python: pyflakes-level checks (undefined names, unused imports, syntax).
lint: $(STAMP)
	$(VENV)/bin/ruff check --select F,E9 pypkg tests bench examples tools
	$(VPY) tools/check_layers.py
	$(VPY) tools/check_calls.py

format:
	clang-format -i cext/*/*.[ch] engine/*.[ch] tests/c/*.[ch] bench/*.c

format-check:
	clang-format --dry-run --Werror cext/*/*.[ch] engine/*.[ch] tests/c/*.[ch] bench/*.c

clean:
	rm -rf build $(VENV) pypkg/cpar/_core*.so pypkg/cpar/bin *.egg-info pypkg/*.egg-info
