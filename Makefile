# The two commands of the quick start, and the rest of the developer loop:
#   make run     build, then run the main demo
#   make run-httpd  build weft-httpd and serve apps/httpd/www/ on http://127.0.0.1:8080/
#   make test    build and pass every test: a normal build, then ASan+UBSan, an LTO build
#                of the core tests, the cross-thread stress tests under TSan, and a
#                valgrind subset
#   make bench   weft and its peers side by side (bench/run.sh), medians and ratios
#   make bench-net  tcp_echo: weft on both backends against epoll_raw, Go, Tokio, libuv and
#                a thread per connection, and weft's schedule latency under that load
#                (examples/latency_probe.c)
#   make bench-mt  the multi-core workloads (bench/run_mt.sh): spawn_join_mt, fanout_tree,
#                chan_mpmc, sched_latency, tcp_echo_mt and blocked_worker on 1 and 2 workers
#                (MT_THREADS="1 2 4" for more) against Go, Tokio and epoll_raw shards
#   make bench-file  file_randread: weft on both backends against fio (io_uring, psync); the
#                1 GiB file is created once in build/bench (FILE_DIR overrides)
#                bench and bench-net end with bench/report.py: Markdown tables, PNGs in
#                build/bench/plots/
#   make install PREFIX=/usr/local
#   make cross-test   aarch64 cross build, core tests under qemu-aarch64
#   make format  clang-format in place
#   make coverage   the whole Criterion suite under gcc --coverage; line and branch coverage
#                of src/ (gcovr), total printed, report in build/coverage/coverage.txt
#   make fuzz    each libFuzzer target (fuzz/) for FUZZ_SECONDS (60) on a copy of its corpus;
#                `make test` replays the corpora and mutates for 2 s only
#   make soak    examples/echo_server under bench/soak_load on both backends, every byte
#                checked: SOAK_SECONDS (600) with SOAK_CONNS (10000) connections
BUILD   ?= build
PREFIX  ?= /usr/local
JOBS    ?= $(shell nproc)
CMAKE_FLAGS ?=
ifeq ($(CI),true)
CMAKE_FLAGS += -DWEFT_WERROR=ON
endif
CTEST = ctest --output-on-failure -j$(JOBS)
# Debian's python (python3-matplotlib lives there), not a pyenv or venv one first on PATH.
BENCH_PY ?= $(shell test -x /usr/bin/python3 && echo /usr/bin/python3 || echo python3)
# The python the test scripts run (${PYTHON3:-python3} in them): Debian's too. A pyenv shim
# first on PATH takes 0.7 s to start a python, and the HTTP tests start some 60 per run.
export PYTHON3 ?= $(BENCH_PY)

.PHONY: all build run run-httpd test test-rel test-asan test-lto test-tsan test-valgrind valgrind-run bench bench-net bench-mt bench-file \
        install coverage soak fuzz \
        cross-test format clean

all: build

# Configure and build quietly: the output goes to a log, shown only if the step fails.
$(BUILD)/%/CMakeCache.txt:
	@mkdir -p $(BUILD)
	@cmake -S . -B $(BUILD)/$* $(CMAKE_FLAGS) $(CONF_$*) >$(BUILD)/$*.configure.log 2>&1 || \
	  { cat $(BUILD)/$*.configure.log; rm -f $@; exit 1; }

CONF_rel  = -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_TESTS=ON -DWEFT_TESTS_REQUIRED=ON \
            -DWEFT_VALGRIND_TESTS=ON -DWEFT_TESTING=ON
CONF_asan = -DCMAKE_BUILD_TYPE=Debug -DWEFT_SANITIZE=address,undefined -DWEFT_BENCH=OFF \
            -DWEFT_TESTS_REQUIRED=ON -DWEFT_TESTING=ON
CONF_lto  = -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_LTO=ON -DWEFT_BENCH=OFF -DWEFT_TESTS_REQUIRED=ON \
            -DWEFT_TESTING=ON
# Benchmarks get their own build: no test seams in the measured library.
CONF_bench = -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_TESTS=OFF -DWEFT_TESTING=OFF
CONF_coverage = -DCMAKE_BUILD_TYPE=Debug -DWEFT_TESTS_REQUIRED=ON -DWEFT_TESTING=ON \
                -DWEFT_BENCH=OFF -DWEFT_EXAMPLES=OFF -DCMAKE_C_FLAGS=--coverage \
                -DCMAKE_EXE_LINKER_FLAGS=--coverage -DCMAKE_SHARED_LINKER_FLAGS=--coverage
CONF_tsan = -DCMAKE_BUILD_TYPE=Debug -DWEFT_SANITIZE=thread -DWEFT_BENCH=OFF -DWEFT_EXAMPLES=OFF
CONF_aarch64 = -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
               -DCMAKE_BUILD_TYPE=RelWithDebInfo -DWEFT_BENCH=OFF -DWEFT_EXAMPLES=OFF

build:
	@scripts/deps.sh build
	@$(MAKE) --no-print-directory $(BUILD)/rel/CMakeCache.txt CONF_rel=-DCMAKE_BUILD_TYPE=RelWithDebInfo
	@echo "building weft (log: $(BUILD)/rel.build.log)"
	@cmake --build $(BUILD)/rel -j$(JOBS) >$(BUILD)/rel.build.log 2>&1 || \
	  { cat $(BUILD)/rel.build.log; exit 1; }

run: build
	@$(BUILD)/rel/examples/demo

run-httpd: build
	@$(BUILD)/rel/apps/httpd/weft-httpd --listen 127.0.0.1 --port 8080 apps/httpd/www

# Each stage says how long it took (its ctest's "Total Test time" is the tests' part; the
# rest is its build), so that a slow CI run shows where its time went.
test:
	@s=$$(date +%s); scripts/deps.sh test && echo "make test: deps took $$(( $$(date +%s) - s )) s"
	@for t in test-rel test-asan test-lto test-tsan valgrind-run; do \
	  s=$$(date +%s); $(MAKE) --no-print-directory $$t || exit 1; \
	  echo "make test: $$t took $$(( $$(date +%s) - s )) s"; \
	done

test-rel: $(BUILD)/rel/CMakeCache.txt
	cmake -S . -B $(BUILD)/rel $(CONF_rel) >/dev/null
	cmake --build $(BUILD)/rel -j$(JOBS)
	cd $(BUILD)/rel && $(CTEST) -LE valgrind

test-asan: $(BUILD)/asan/CMakeCache.txt
	cmake --build $(BUILD)/asan -j$(JOBS)
	cd $(BUILD)/asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=0 \
	  LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp $(CTEST)

# Only the programs the core tests run, less the examples: each other program would be a
# whole-library link-time optimisation (several seconds each) for nothing the stress programs
# and core suites do not cover (scripts/core_targets.sh).
test-lto: $(BUILD)/lto/CMakeCache.txt
	cmake --build $(BUILD)/lto -j$(JOBS) --target $$(scripts/core_targets.sh $(BUILD)/lto core examples)
	cd $(BUILD)/lto && $(CTEST) -L core -LE examples

# Only the stress programs its tests run (scripts/core_targets.sh).
test-tsan: $(BUILD)/tsan/CMakeCache.txt
	cmake --build $(BUILD)/tsan -j$(JOBS) --target $$(scripts/core_targets.sh $(BUILD)/tsan '')
	cd $(BUILD)/tsan && TSAN_OPTIONS=halt_on_error=1 $(CTEST)

test-valgrind: test-rel
	@$(MAKE) --no-print-directory valgrind-run

# The valgrind subset of an already built and tested release build (`make test` runs it
# after test-rel).
valgrind-run:
	cd $(BUILD)/rel && ctest --output-on-failure -j$(JOBS) -L valgrind

bench:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BUILD)/bench/CMakeCache.txt
	cmake --build $(BUILD)/bench -j$(JOBS)
	bench/run.sh $(BUILD)/bench $(RUNS)
	-@$(BENCH_PY) bench/report.py --bench $(BUILD)/bench/bench-results.jsonl --out $(BUILD)/bench/plots

bench-net:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BUILD)/bench/CMakeCache.txt
	cmake --build $(BUILD)/bench -j$(JOBS)
	BACKENDS="epoll io_uring" bench/run_net.sh $(BUILD)/bench $(RUNS)
	-@$(BENCH_PY) bench/report.py --net $(BUILD)/bench/net-results.jsonl --out $(BUILD)/bench/plots

bench-mt:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BUILD)/bench/CMakeCache.txt
	cmake --build $(BUILD)/bench -j$(JOBS)
	bench/run_mt.sh $(BUILD)/bench $(RUNS)

bench-file:
	@scripts/deps.sh bench
	@$(MAKE) --no-print-directory $(BUILD)/bench/CMakeCache.txt
	cmake --build $(BUILD)/bench -j$(JOBS) --target bench_file_randread
	bench/run_file.sh $(BUILD)/bench $(RUNS)

# Counts from the previous run are deleted first; the suite runs on both backends (CTest).
coverage:
	@scripts/deps.sh coverage
	@$(MAKE) --no-print-directory $(BUILD)/coverage/CMakeCache.txt
	cmake --build $(BUILD)/coverage -j$(JOBS)
	find $(BUILD)/coverage -name '*.gcda' -delete
	cd $(BUILD)/coverage && $(CTEST) -E '^(layers|package|asan_consumer)$$'
	gcovr --root $(CURDIR) --filter '$(CURDIR)/src/' --exclude-unreachable-branches \
	  --txt $(BUILD)/coverage/coverage.txt --print-summary $(BUILD)/coverage

# The fuzz targets for longer than `make test` runs them, one after the other, each on a copy
# of its committed corpus (new inputs stay in build/fuzz); the kv ones link the plain build's
# libweft.a.
FUZZ_SECONDS ?= 60
fuzz:
	@scripts/deps.sh test
	@$(MAKE) --no-print-directory $(BUILD)/rel/CMakeCache.txt
	cmake --build $(BUILD)/rel -j$(JOBS) --target weft_static
	fuzz/run_http_fuzz.sh clang $(BUILD)/fuzz/http $(FUZZ_SECONDS)
	fuzz/run_http_files_fuzz.sh clang $(BUILD)/fuzz/http_files $(FUZZ_SECONDS)
	fuzz/run_httpc_fuzz.sh clang $(BUILD)/fuzz/httpc $(FUZZ_SECONDS)
	fuzz/run_resp_fuzz.sh clang $(BUILD)/fuzz/resp $(FUZZ_SECONDS)
	fuzz/run_kv_cmd_fuzz.sh clang $(BUILD)/fuzz/kv_cmd $(FUZZ_SECONDS) $(BUILD)/rel/libweft.a
	fuzz/run_kv_glob_fuzz.sh clang $(BUILD)/fuzz/kv_glob $(FUZZ_SECONDS) $(BUILD)/rel/libweft.a

SOAK_SECONDS ?= 600
SOAK_CONNS   ?= 10000
soak:
	@scripts/deps.sh build
	@$(MAKE) --no-print-directory $(BUILD)/bench/CMakeCache.txt
	cmake -S . -B $(BUILD)/bench $(CONF_bench) >/dev/null
	cmake --build $(BUILD)/bench -j$(JOBS) --target echo_server soak_load
	bench/soak.sh $(BUILD)/bench $(SOAK_SECONDS) $(SOAK_CONNS)

install: build
	cmake -S . -B $(BUILD)/rel -DCMAKE_INSTALL_PREFIX=$(abspath $(PREFIX)) >/dev/null
	cmake --build $(BUILD)/rel -j$(JOBS)
	cmake --install $(BUILD)/rel

# The core tests under qemu-aarch64: only their programs are built (scripts/core_targets.sh).
cross-test:
	@scripts/deps.sh cross
	@scripts/arm64-sysroot.sh $(BUILD)/arm64-sysroot
	@scripts/qemu-binfmt.sh
	@$(MAKE) --no-print-directory $(BUILD)/aarch64/CMakeCache.txt
	cmake --build $(BUILD)/aarch64 -j$(JOBS) --target $$(scripts/core_targets.sh $(BUILD)/aarch64)
	cd $(BUILD)/aarch64 && $(CTEST) -L core

format:
	clang-format -i include/*.h src/*.c src/*.h src/*/*.h src/*/*.c src/arch/*/*.c \
	  tests/*.c tests/support/*.h tests/gdb/*.c tests/console/*.c examples/*.c bench/*.c bench/*.h \
	  apps/httpd/*.c apps/httpd/*.h apps/httpd/tests/*.c apps/httpc/*.c \
	  apps/kv/*.c apps/kv/*.h tests/kv/*.c fuzz/*.c lib/*/*.c lib/*/tests/*.c \
	  tests/package/consumer/*.c

clean:
	rm -rf $(BUILD)
