# Makefile: the only build file of tapegrad (non-recursive; everything lands in build/).
#
#   make            library (build/libtapegrad.a, .so), examples, tests, benchmarks
#   make run        train the char-LM on the bundled corpus for ~2 minutes, then sample
#   make check      build and run the Check test suite (installs Check if root)
#   make san        the test suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   make bench      build and run the benchmarks (key=value lines; PyTorch too if installed)
#   make install PREFIX=/usr/local
#   make BLAS=openblas   route tg_sgemm/tg_dgemm to OpenBLAS (optional backend)

CC      ?= cc
ifeq ($(origin CC),default)
CC      := gcc
endif
PREFIX  ?= /usr/local
BUILD   ?= build
OPT     ?= -O3
WARN    := -Wall -Wextra -Wpedantic -Wshadow -Wmissing-prototypes
CFLAGS  ?= $(OPT) -g
BASE_CFLAGS := -std=c11 $(WARN) -fopenmp -fPIC -fno-math-errno -I. -D_POSIX_C_SOURCE=200809L -MMD -MP
LDLIBS  := -fopenmp -lm
SAN     :=

ifeq ($(BLAS),openblas)
BASE_CFLAGS += -DTG_USE_OPENBLAS $(shell pkg-config --cflags openblas 2>/dev/null)
LDLIBS      += $(shell pkg-config --libs openblas 2>/dev/null || echo -lopenblas)
endif

# MPI=1: data-parallel training over MPI (docs/MPI.md): optim/dist.c's tg_dist_*
# join the library and charlm trains across ranks (mpirun -np N build/mpi/examples/charlm
# train ...). mpicc builds into build/mpi, so MPI and plain objects never mix.
ifeq ($(MPI),1)
MPICC       ?= mpicc
CC          := $(MPICC)
BUILD       := build/mpi
BASE_CFLAGS += -DTG_WITH_MPI
endif

ALL_CFLAGS = $(BASE_CFLAGS) $(CFLAGS) $(SAN)

LIB_SRC   := $(sort $(wildcard tensor/*.c autograd/*.c nn/*.c optim/*.c))
TEST_SRC  := $(sort $(wildcard tests/*.c))
EX_SRC    := $(sort $(wildcard examples/*.c))
CHARLM_SRC:= $(sort $(wildcard examples/charlm/*.c))
PLUGIN_SRC:= $(sort $(wildcard examples/plugin/*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
HEADERS   := tapegrad.h $(wildcard tensor/*.h autograd/*.h nn/*.h optim/*.h)
PUB_HEADERS := $(filter-out %_internal.h,$(HEADERS))
ifneq ($(MPI),1)
PUB_HEADERS := $(filter-out optim/dist.h,$(PUB_HEADERS))   # it includes <mpi.h>
endif

obj = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
LIB_OBJ   := $(call obj,$(LIB_SRC))
TEST_OBJ  := $(call obj,$(TEST_SRC))
CHARLM_OBJ:= $(call obj,$(CHARLM_SRC))
LIB_A     := $(BUILD)/libtapegrad.a
LIB_SO    := $(BUILD)/libtapegrad.so
TEST_BIN  := $(BUILD)/tests/tapegrad_tests
EX_BIN    := $(patsubst examples/%.c,$(BUILD)/examples/%,$(EX_SRC))
CHARLM_BIN:= $(if $(CHARLM_SRC),$(BUILD)/examples/charlm)
CHARLM_MAN:= $(if $(CHARLM_SRC),$(BUILD)/charlm.1)
PLUGIN_BIN:= $(patsubst examples/plugin/%.c,$(BUILD)/examples/plugin/%.so,$(PLUGIN_SRC))
BENCH_BIN := $(patsubst bench/%.c,$(BUILD)/bench/%,$(BENCH_SRC))
PLUGIN_BENCH := $(BUILD)/bench/cells_so $(BUILD)/bench/cells_builtin

CHECK_CFLAGS = $(shell pkg-config --cflags check 2>/dev/null)
CHECK_LIBS   = $(shell pkg-config --libs check 2>/dev/null || echo -lcheck -lsubunit -lrt -lpthread)

.PHONY: all lib tests examples bench run check san install clean check-deps
all: lib examples $(TEST_BIN) $(BENCH_BIN) $(PLUGIN_BENCH)
lib: $(LIB_A) $(LIB_SO)
examples: $(EX_BIN) $(CHARLM_BIN) $(CHARLM_MAN) $(PLUGIN_BIN)

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# Files named *_avx2.c hold AVX2+FMA kernels; they are only called after a CPU check.
$(BUILD)/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -mavx2 -mfma -c $< -o $@

$(LIB_A): $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@
	ar rcs $@ $^

$(LIB_SO): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libtapegrad.so -o $@ $^ $(LDLIBS) $(SAN)

$(BUILD)/examples/%: $(BUILD)/obj/examples/%.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDLIBS) $(SAN)

# charlm uses libtapegrad.so, so that a --plugin linked against it binds to the same loaded
# copy (one cell type registry in the process). Its run path finds the library beside it
# in the build tree (build/) and where make install puts both (PREFIX/bin, PREFIX/lib).
$(BUILD)/examples/charlm: $(CHARLM_OBJ) $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ -Wl,-rpath,'$$ORIGIN/..:$$ORIGIN/../lib' $(LDLIBS) $(SAN)

# The example plug-in, built as a user would against the library (tests/plugin_test.sh).
$(BUILD)/examples/plugin/%.so: examples/plugin/%.c $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) $(CFLAGS) -shared -fPIC -I. -o $@ $< $(LIB_SO) $(LDLIBS) $(SAN)

$(BUILD)/bench/%: $(BUILD)/obj/bench/%.o $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(LDLIBS) $(SAN)

# bench/plugin_speed.sh's pair: bench_cells linked with libtapegrad.so, once plain (it loads
# mycell.so through TG_BENCH_PLUGIN) and once with mycell.c compiled in with the plug-in
# rule's flags, so the two differ only in how the cell reaches the process.
$(BUILD)/bench/cells_so: $(BUILD)/obj/bench/bench_cells.o $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ -Wl,-rpath,'$$ORIGIN/..' $(LDLIBS) $(SAN)
$(BUILD)/bench/cells_builtin: $(BUILD)/obj/bench/bench_cells.o examples/plugin/mycell.c \
    $(LIB_SO)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) $(CFLAGS) -fPIC -I. -o $@ $^ -Wl,-rpath,'$$ORIGIN/..' \
	    $(LDLIBS) $(SAN)

$(TEST_OBJ): ALL_CFLAGS += $(CHECK_CFLAGS)
$(TEST_BIN): $(TEST_OBJ) $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) -o $@ $^ $(CHECK_LIBS) $(LDLIBS) $(SAN)

# Check is the only test dependency: install it when we can, else say how.
check-deps:
	@if ! pkg-config --exists check 2>/dev/null; then \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	        echo "installing Check: apt-get install -y check pkg-config"; \
	        (apt-get install -y check pkg-config || \
	         (apt-get update && apt-get install -y check pkg-config)) >/dev/null; \
	    else \
	        echo "Check (the C unit test framework) is missing; install it with:"; \
	        echo "    sudo apt-get install -y check pkg-config"; exit 1; \
	    fi; \
	fi

CONTRACT_BIN := $(BUILD)/tests/contract_app
# An outside program: only the public headers and the static library.
$(CONTRACT_BIN): tests/contract/app.c $(LIB_A)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 $(WARN) $(CFLAGS) $(SAN) -I. -o $@ $< $(LIB_A) $(LDLIBS)

check: check-deps
	@$(MAKE) --no-print-directory $(TEST_BIN) $(CONTRACT_BIN) examples
	$(TEST_BIN)
	$(CONTRACT_BIN)
	$(BUILD)/examples/bidir_tagger
	@if [ -x $(BUILD)/examples/charlm ] && [ -f tests/charlm_smoke.sh ]; then \
	    bash tests/charlm_smoke.sh $(BUILD)/examples/charlm; fi
	bash tests/install_test.sh $(BUILD)
	bash tests/plugin_test.sh $(BUILD)

san: check-deps
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/san OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-sanitize-recover=undefined \
	         -fno-omit-frame-pointer" $(BUILD)/san/tests/tapegrad_tests
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    $(BUILD)/san/tests/tapegrad_tests

bench: $(BENCH_BIN) $(PLUGIN_BENCH) $(PLUGIN_BIN)
	@for b in $(BENCH_BIN); do echo "# $$b"; $$b || exit 1; done
	@echo "# bench/plugin_speed.sh"; BUILD=$(BUILD) sh bench/plugin_speed.sh
	@if /usr/bin/python3 -c 'import torch' 2>/dev/null; then \
	    echo "# bench/torch_charlm.py"; /usr/bin/python3 bench/torch_charlm.py; \
	    echo "# bench/torch_sample.py"; BUILD=$(BUILD) /usr/bin/python3 bench/torch_sample.py; \
	    echo "# bench/torch_lnlstm.py"; BUILD=$(BUILD) /usr/bin/python3 bench/torch_lnlstm.py; \
	else echo "# bench/torch_*.py: skipped (no python3-torch)"; fi

run: examples
	$(BUILD)/examples/charlm train --time-limit 120 --save $(BUILD)/charlm.ckpt
	$(BUILD)/examples/charlm sample --model $(BUILD)/charlm.ckpt --len 500

# The manual page is generated from the option table behind --help, so it cannot drift.
$(BUILD)/charlm.1: $(BUILD)/examples/charlm
	$< --man > $@

# The .pc's Libs carry -Wl,-rpath so a program built against a custom PREFIX finds
# libtapegrad.so at run time (or link statically: pkg-config --static, with the .a).
install: lib examples
	install -d $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include/tapegrad \
	    $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 644 $(LIB_A) $(LIB_SO) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(CHARLM_BIN) $(DESTDIR)$(PREFIX)/bin/charlm
	install -m 644 $(CHARLM_MAN) $(DESTDIR)$(PREFIX)/share/man/man1/charlm.1
	for h in $(PUB_HEADERS); do \
	    install -D -m 644 $$h $(DESTDIR)$(PREFIX)/include/tapegrad/$$h; done
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$${prefix}/lib' \
	    'includedir=$${prefix}/include/tapegrad' '' 'Name: tapegrad' \
	    'Description: tensors with tape-based autodiff and recurrent cells' \
	    'Version: 0.1.0' 'Cflags: -I$${includedir} -fopenmp' \
	    'Libs: -L$${libdir} -Wl,-rpath,$${libdir} -ltapegrad -fopenmp -lm' \
	    > $(DESTDIR)$(PREFIX)/lib/pkgconfig/tapegrad.pc

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- reliability (docs/RELIABILITY.md) ----------------------------------------
#   make fuzz          libFuzzer targets fuzz/fuzz_*.c (clang), each run FUZZ_TIME seconds
#                      from the seeds in tests/fuzz_seeds/NAME (tests/fuzz.sh)
#   make reliability   the fuzz seeds and kept crash inputs (tests/fuzz_regress/NAME) replayed
#                      under ASan+UBSan, then tests/reliability.sh: thread-count determinism,
#                      valgrind, flat peak RSS, faults while saving
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 60
FUZZ_DIR     := $(BUILD)/fuzz
FUZZ_TARGETS := $(patsubst fuzz/%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_DEPSRC  := $(LIB_SRC) examples/charlm/data.c examples/charlm/meta.c fuzz/util.c
FUZZ_OBJ     := $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_DEPSRC))
FUZZ_CFLAGS  := -std=c11 $(WARN) -I. -D_POSIX_C_SOURCE=200809L -fopenmp -g -O1 -MMD -MP \
                -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize-recover=undefined
REL_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
REPLAY_DEPS   = fuzz/replay.c fuzz/util.c $(BUILD)/obj/examples/charlm/data.o \
                $(BUILD)/obj/examples/charlm/meta.o $(LIB_A)

.PHONY: fuzz reliability
.SECONDARY: $(FUZZ_OBJ)
$(FUZZ_DIR)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@
$(FUZZ_DIR)/obj/%_avx2.o: %_avx2.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -mavx2 -mfma -c $< -o $@
$(FUZZ_DIR)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_OBJ)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $(filter %.c %.o,$^) -lm

# The same targets without libFuzzer: replay_ARGS... runs each file once (gcc, any SAN).
$(BUILD)/replay/fuzz_%: fuzz/fuzz_%.c $(REPLAY_DEPS)
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -MMD -MP,$(ALL_CFLAGS)) -o $@ $(filter %.c,$^) $(filter %.o %.a,$^) \
	    $(LDLIBS) $(SAN)

fuzz: $(addprefix $(FUZZ_DIR)/,$(FUZZ_TARGETS))
	bash tests/fuzz.sh $(FUZZ_DIR) $(FUZZ_TIME) $(FUZZ_TARGETS)

reliability: check-deps
	@$(MAKE) --no-print-directory BUILD=$(BUILD)/san OPT=-O1 SAN="$(REL_SAN)" \
	    $(addprefix $(BUILD)/san/replay/,$(FUZZ_TARGETS))
	@$(MAKE) --no-print-directory examples
	bash tests/reliability.sh -b $(BUILD)

-include $(shell find $(FUZZ_DIR) -name '*.d' 2>/dev/null)

# ---- MPI (docs/MPI.md) ---------------------------------------------------------
#   make mpi-test      build charlm with MPI=1, then tests/mpi_test.sh: the library API on
#                      2 ranks, 2-rank vs 1-rank losses, bit-identical reruns, resume on 1
#                      rank, a rank killed mid-run (needs mpirun: openmpi-bin libopenmpi-dev)
.PHONY: mpi-test
mpi-test:
	@$(MAKE) --no-print-directory MPI=1 build/mpi/examples/charlm build/mpi/libtapegrad.a \
	    build/mpi/libtapegrad.so
	bash tests/mpi_test.sh build/mpi
