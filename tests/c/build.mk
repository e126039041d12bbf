# C unit tests, sanitizer build and fuzz target of cext/core and cext/controller (and the
# pure-C maths of cext/kernels). Included by the top-level
# Makefile; also works alone from the repo root: make -f tests/c/build.mk ctest ctest-asan
# Paths are relative to the repository root.

ifeq ($(.DEFAULT_GOAL),)
.DEFAULT_GOAL := ctest
endif

CTEST_CC ?= $(CC)
CTEST_CORE_SRC := $(wildcard cext/core/*.c cext/controller/*.c) cext/kernels/escape.c cext/kernels/philox.c
CTEST_CORE_HDR := $(wildcard cext/core/*.h cext/controller/*.h cext/kernels/*.h)
CTEST_NAMES := test_wire test_sign test_tables test_idtab test_ids test_log test_vec test_controller test_liveness test_replay fuzz_wire test_sched test_deps test_shm test_pagepool test_tasks test_task_deps test_task_control test_kernels test_idlimit test_client_gone test_coalesce test_sock test_clientio test_outbound test_taskdb test_taskdb_seqs test_taskdb_recover test_recover_ctl
CTEST_SUPPORT := tests/c/helpers.c tests/c/ctlfx.c
CTEST_SUPPORT_HDR := tests/c/helpers.h tests/c/ctlfx.h tests/c/test.h
# The fuzzers' shared driver (corpus files, random seeds, a forked child per case).
CTEST_FUZZKIT := tests/c/fuzzkit.c tests/c/fuzzkit.h
# The controller fuzzer's DB_REQUEST bodies.
CTEST_FUZZDB := tests/c/fuzzdb.c tests/c/fuzzdb.h
CTEST_COMMON := -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -g -iquote cext/core -iquote cext/controller -iquote cext/kernels -iquote tests/c
CTEST_LIBS := -lzmq -lcrypto -lsqlite3 -lpthread -lm
CTEST_SAN := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
CTEST_CORPUS := tests/c/corpus/wire
CTEST_FUZZ_SECONDS ?= 60

CTEST_BINS := $(addprefix build/ctest/,$(CTEST_NAMES))
CTEST_ASAN_BINS := $(addprefix build/ctest-asan/,$(CTEST_NAMES))
CTEST_TSAN := -fsanitize=thread

# Each source is compiled once per flavour into build/obj/<flavour>/ and every test binary
# links those objects (its own .c compiled with the link): sixty binaries built from the
# same forty sources. Only test_idlimit compiles the sources itself (its -D changes them).
CTEST_OBJ_HDR := $(CTEST_CORE_HDR) $(CTEST_SUPPORT_HDR) tests/c/fuzzkit.h tests/c/fuzzdb.h
CTEST_FLAGS_plain := -O1
CTEST_FLAGS_asan := -O1 $(CTEST_SAN)
CTEST_FLAGS_tsan := -O1 $(CTEST_TSAN)
build/obj/plain/%.o: %.c $(CTEST_OBJ_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) $(CTEST_FLAGS_plain) -c $< -o $@
build/obj/asan/%.o: %.c $(CTEST_OBJ_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) $(CTEST_FLAGS_asan) -c $< -o $@
build/obj/tsan/%.o: %.c $(CTEST_OBJ_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) $(CTEST_FLAGS_tsan) -c $< -o $@
# Kept between runs (make would delete them as intermediate files).
.PRECIOUS: build/obj/plain/%.o build/obj/asan/%.o build/obj/tsan/%.o
# $(call ctest_objs,FLAVOUR,SOURCES): those sources' objects of that flavour.
ctest_objs = $(patsubst %.c,build/obj/$(1)/%.o,$(2))

# The objects of every binary are built two at a time (compiles are independent; the
# tests themselves still run one after another).
CTEST_JOBS ?= 2
.PHONY: ctest-objs-plain ctest-objs-asan ctest-objs-tsan
ctest-objs-plain ctest-objs-asan ctest-objs-tsan:
	@$(MAKE) --no-print-directory -j$(CTEST_JOBS) \
	  $(call ctest_objs,$(subst ctest-objs-,,$@),$(CTEST_CORE_SRC) $(CTEST_SUPPORT) tests/c/fuzzkit.c tests/c/fuzzdb.c)

# test_idlimit reaches the engine-id limit for real, with the limit lowered to 8.
CTEST_IDLIMIT := -DCPAR_ENGINE_ID_LIMIT=8
build/ctest/test_idlimit: tests/c/test_idlimit.c $(CTEST_SUPPORT) $(CTEST_SUPPORT_HDR) $(CTEST_CORE_SRC) $(CTEST_CORE_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) $(CTEST_IDLIMIT) -O1 $< $(CTEST_SUPPORT) $(CTEST_CORE_SRC) -o $@ $(CTEST_LIBS)

build/ctest-asan/test_idlimit: tests/c/test_idlimit.c $(CTEST_SUPPORT) $(CTEST_SUPPORT_HDR) $(CTEST_CORE_SRC) $(CTEST_CORE_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) $(CTEST_IDLIMIT) -O1 $(CTEST_SAN) $< $(CTEST_SUPPORT) $(CTEST_CORE_SRC) -o $@ $(CTEST_LIBS)

.PHONY: ctest ctest-asan fuzz ctest-clean fuzz-controller fuzz-client

build/ctest/%: tests/c/%.c $(call ctest_objs,plain,$(CTEST_SUPPORT) $(CTEST_CORE_SRC)) $(CTEST_SUPPORT_HDR) $(CTEST_CORE_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) -O1 $< $(call ctest_objs,plain,$(CTEST_SUPPORT) $(CTEST_CORE_SRC)) -o $@ $(CTEST_LIBS)

build/ctest-asan/%: tests/c/%.c $(call ctest_objs,asan,$(CTEST_SUPPORT) $(CTEST_CORE_SRC)) $(CTEST_SUPPORT_HDR) $(CTEST_CORE_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) -O1 $(CTEST_SAN) $< $(call ctest_objs,asan,$(CTEST_SUPPORT) $(CTEST_CORE_SRC)) -o $@ $(CTEST_LIBS)

# Every binary runs (the fuzz target replays the committed corpus); the last line sums up.
ctest: ctest-objs-plain
	@$(MAKE) --no-print-directory -j$(CTEST_JOBS) $(CTEST_BINS)
	@sh tests/c/run.sh $(CTEST_CORPUS) $(CTEST_BINS)

ctest-asan: ctest-objs-asan
	@$(MAKE) --no-print-directory -j$(CTEST_JOBS) $(CTEST_ASAN_BINS)
	@ASAN_OPTIONS=abort_on_error=1:detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	  sh tests/c/run.sh $(CTEST_CORPUS) $(CTEST_ASAN_BINS)

# libFuzzer build (clang only): explores from the committed corpus for CTEST_FUZZ_SECONDS,
# writing what it finds under build/fuzz/ (the committed corpus is never modified).
# It also runs the controller and client fuzzers for CTEST_FUZZ_SECONDS each.
fuzz: build/ctest-asan/fuzz_controller build/ctest-asan/fuzz_client
	$(FUZZ_ASAN_ENV) CPAR_FUZZ_SECONDS=$(CTEST_FUZZ_SECONDS) \
	  build/ctest-asan/fuzz_controller tests/c/corpus/controller
	$(FUZZ_ASAN_ENV) CPAR_FUZZ_SECONDS=$(CTEST_FUZZ_SECONDS) \
	  build/ctest-asan/fuzz_client tests/c/corpus/client
	@if ! command -v clang >/dev/null 2>&1; then echo "fuzz: clang not found, skipped"; exit 0; fi; \
	mkdir -p build/fuzz/corpus && \
	clang -std=c11 -D_GNU_SOURCE -DCPAR_LIBFUZZER -g -O1 -fsanitize=fuzzer,address,undefined -iquote cext/core -iquote cext/controller \
	  -iquote tests/c tests/c/fuzz_wire.c $(CTEST_CORE_SRC) -o build/fuzz/fuzz_wire $(CTEST_LIBS) && \
	build/fuzz/fuzz_wire -max_total_time=$(CTEST_FUZZ_SECONDS) -artifact_prefix=build/fuzz/ \
	  build/fuzz/corpus $(CTEST_CORPUS)

# The controller fuzzer (tests/c/fuzz_controller.c): a real controller under ASan/UBSan fed
# signed random traffic by fake engines and clients. It replays the committed corpus, then
# runs new seeds until FUZZ_CONTROLLER_SECONDS have passed in all (make test: 40; make fuzz
# runs it for CTEST_FUZZ_SECONDS). A failing new seed is printed as a line to commit there.
FUZZ_CONTROLLER_SECONDS ?= 40
FUZZ_ASAN_ENV := ASAN_OPTIONS=abort_on_error=1:detect_leaks=1:quarantine_size_mb=16 UBSAN_OPTIONS=print_stacktrace=1 \
  LSAN_OPTIONS=suppressions=$(abspath tests/c/lsan.supp)

CTEST_FUZZ_CTL_SRC := tests/c/fuzzkit.c tests/c/fuzzdb.c $(CTEST_SUPPORT) $(CTEST_CORE_SRC)
build/ctest-asan/fuzz_controller: tests/c/fuzz_controller.c $(call ctest_objs,asan,$(CTEST_FUZZ_CTL_SRC)) $(CTEST_OBJ_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) -O1 $(CTEST_SAN) $< $(call ctest_objs,asan,$(CTEST_FUZZ_CTL_SRC)) -o $@ $(CTEST_LIBS)

# The engine fuzzer's driver (tests/c/fuzz_engine.c); the top-level Makefile runs it
# against build/asan/cpar-engine (make fuzz-engine).
CTEST_FUZZ_KIT_SRC := tests/c/fuzzkit.c tests/c/helpers.c $(CTEST_CORE_SRC)
build/ctest-asan/fuzz_engine: tests/c/fuzz_engine.c $(call ctest_objs,asan,$(CTEST_FUZZ_KIT_SRC)) $(CTEST_OBJ_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) -O1 $(CTEST_SAN) $< $(call ctest_objs,asan,$(CTEST_FUZZ_KIT_SRC)) -o $@ $(CTEST_LIBS)

# ThreadSanitizer builds (make tsan in the top-level Makefile runs them): the client I/O
# thread driven by threads of its own (tests/c/tsan_clientio.c), and the controller fuzzer
# (the controller's thread against the fuzzer's). tests/tsan.supp: uninstrumented libzmq.
build/tsan/tsan_clientio: tests/c/tsan_clientio.c $(call ctest_objs,tsan,$(CTEST_SUPPORT) $(CTEST_CORE_SRC)) $(CTEST_OBJ_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) -O1 $(CTEST_TSAN) $< $(call ctest_objs,tsan,$(CTEST_SUPPORT) $(CTEST_CORE_SRC)) -o $@ $(CTEST_LIBS)

build/tsan/fuzz_controller: tests/c/fuzz_controller.c $(call ctest_objs,tsan,$(CTEST_FUZZ_CTL_SRC)) $(CTEST_OBJ_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) -O1 $(CTEST_TSAN) $< $(call ctest_objs,tsan,$(CTEST_FUZZ_CTL_SRC)) -o $@ $(CTEST_LIBS)

# The engine fuzzer's driver without a sanitizer, for driving the TSan engine.
build/tsan/fuzz_engine: tests/c/fuzz_engine.c $(call ctest_objs,plain,$(CTEST_FUZZ_KIT_SRC)) $(CTEST_OBJ_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) -O1 $< $(call ctest_objs,plain,$(CTEST_FUZZ_KIT_SRC)) -o $@ $(CTEST_LIBS)

# The client I/O thread's fuzzer (tests/c/fuzz_client.c): a fake controller feeds a real
# cpar_clientio (ASan/UBSan) signed random messages and shared-memory tables.
FUZZ_CLIENT_SECONDS ?= 15
build/ctest-asan/fuzz_client: tests/c/fuzz_client.c $(call ctest_objs,asan,$(CTEST_FUZZ_KIT_SRC)) $(CTEST_OBJ_HDR)
	@mkdir -p $(@D)
	$(CTEST_CC) $(CTEST_COMMON) -O1 $(CTEST_SAN) $< $(call ctest_objs,asan,$(CTEST_FUZZ_KIT_SRC)) -o $@ $(CTEST_LIBS)

fuzz-client: build/ctest-asan/fuzz_client
	$(FUZZ_ASAN_ENV) CPAR_FUZZ_SECONDS=$(FUZZ_CLIENT_SECONDS) \
	  build/ctest-asan/fuzz_client tests/c/corpus/client

fuzz-controller: build/ctest-asan/fuzz_controller
	$(FUZZ_ASAN_ENV) CPAR_FUZZ_SECONDS=$(FUZZ_CONTROLLER_SECONDS) \
	  build/ctest-asan/fuzz_controller tests/c/corpus/controller

ctest-clean:
	rm -rf build/ctest build/ctest-asan build/fuzz build/obj
