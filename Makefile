# SparseSkeleton toolkit build.
#   make            build bin/skel and the library
#   make test       build and run the cmocka tests
#   make bench      CPU timings (not a test)
#   make demo       the main job on a bundled sample, with pictures
#   make gpu-test   GPU outputs against the CPU reference (needs nvcc, runs on a GPU machine)
#   make gpu-bench  GPU timings against PyTorch SDPA in the same run (GPU machine; not a test)
#   make clean
# System packages are installed through apt when missing (as root on Debian/Ubuntu);
# elsewhere the missing package names are printed and the build stops.

.DEFAULT_GOAL := all

CC      ?= cc
ARCH    ?= -march=native
CFLAGS  ?= -O3 $(ARCH) -g
CFLAGS  += -fno-trapping-math -mprefer-vector-width=512
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -fopenmp -Isrc
LDLIBS  += -fopenmp -lm

DEB_PKGS := libhdf5-dev liblapacke-dev libopenblas-dev libpng-dev libcmocka-dev gnuplot-nox pkg-config

# ---------------------------------------------------------------- dependencies
# One stamp per checkout: dpkg is asked once, apt only for what is missing.
DEPS_STAMP := build/.deps
$(DEPS_STAMP):
	@mkdir -p build
	@missing=""; for p in $(DEB_PKGS); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "make: installing missing packages:$$missing"; \
	    (apt-get install -y --no-install-recommends $$missing >/dev/null 2>&1 || \
	     (apt-get update >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $$missing >/dev/null)) || \
	     { echo "make: apt-get failed for:$$missing"; exit 1; }; \
	  else \
	    echo "make: missing system packages:$$missing"; \
	    echo "make: install them (Debian/Ubuntu: apt-get install$$missing) and run make again"; exit 1; \
	  fi; \
	fi
	@touch $@

deps: $(DEPS_STAMP)

# HDF5 through pkg-config, with the Debian/Ubuntu serial-path fallback. Evaluated lazily so that
# the flags are read after deps has run.
HDF5_CFLAGS = $(shell pkg-config --cflags hdf5 2>/dev/null || echo -I/usr/include/hdf5/serial)
HDF5_LIBS   = $(shell pkg-config --libs hdf5 2>/dev/null || echo -L/usr/lib/$$(gcc -print-multiarch)/hdf5/serial -lhdf5_serial)
BLAS_LIBS   = -llapacke -lopenblas
PNG_LIBS    = $(shell pkg-config --libs libpng 2>/dev/null || echo -lpng)

ALL_CFLAGS = $(CFLAGS) $(HDF5_CFLAGS)
ALL_LIBS   = $(HDF5_LIBS) $(BLAS_LIBS) $(PNG_LIBS) -lz $(CUDA_LIBS) $(LDLIBS)

# ---------------------------------------------------------------- CUDA (optional)
NVCC := $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
CUDA_SRC := $(wildcard cuda/*.cu)
CUDA_OBJ := $(CUDA_SRC:cuda/%.cu=build/cuda/%.o)
NVCCFLAGS ?= -O3 -arch=sm_90 -std=c++17 -Isrc
# With nvcc the CUDA objects go into the library and every binary links the static CUDA runtime and
# cuBLAS from the toolkit (it runs on machines without a GPU, where the GPU entry points report that
# none is usable).
ifneq ($(NVCC),)
CUDA_LIBDIR := $(abspath $(dir $(NVCC))/../lib64)
CFLAGS    += -DSKEL_HAVE_CUDA
CUDA_LIBS := -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublas -lcudart_static -ldl -lrt -lpthread -lstdc++
endif

# Fragments for optional parts (model download, corpus) live in mk/.
-include $(wildcard mk/*.mk)

# ---------------------------------------------------------------- library and tools
LIB_SRC := $(wildcard src/*.c)
LIB_OBJ := $(LIB_SRC:src/%.c=build/src/%.o) $(if $(NVCC),$(CUDA_OBJ))
LIB     := build/libskel.a
TOOLS   := bin/skel
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=build/tests/%)

.PHONY: all deps test bench demo clean cuda gpu-test gpu-bench
all: $(TOOLS) cuda

# CUDA sources compile whenever nvcc is present (CI has nvcc but no GPU); they run only on the GPU
# machine.
ifneq ($(NVCC),)
cuda: $(CUDA_OBJ)
	@echo "make: nvcc found at $(NVCC); $(words $(CUDA_SRC)) CUDA file(s) compiled"
else
cuda:
	@echo "make: nvcc not found; skipping CUDA sources"
endif

build/cuda/%.o: cuda/%.cu $(wildcard cuda/*.h cuda/*.cuh src/*.h)
	@mkdir -p $(@D)
	$(NVCC) $(NVCCFLAGS) $(HDF5_CFLAGS) -c $< -o $@

build/src/%.o: src/%.c $(wildcard src/*.h) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@mkdir -p $(@D)
	$(AR) rcs $@ $^

bin/skel: tools/skel.c $(wildcard tools/*.c tools/*.h) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itools $(filter-out tools/skel.c,$(wildcard tools/*.c)) tools/skel.c $(LIB) $(ALL_LIBS) -o $@

build/tests/%: tests/%.c $(wildcard tests/*.h) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests $< $(LIB) $(ALL_LIBS) -lcmocka -o $@

# Each test program runs in its own process; all must pass. SKEL is the built tool, for
# tests that run the command line.
# mk/*.mk fragments may add prerequisites (e.g. fetching the real model when it can be had).
test: $(TEST_BIN) $(TOOLS)
	@fail=0; for t in $(TEST_BIN); do \
	  echo "== $$t"; SKEL=$(CURDIR)/bin/skel $$t || fail=1; \
	done; exit $$fail

bench: $(TOOLS) build/bench
	./build/bench

build/bench: bench/bench.c $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $< $(LIB) $(ALL_LIBS) -o $@

# GPU programs (tests/gpu_*.c: not test_*.c, so that `make test` on CI never runs them). Built
# without nvcc they report "built without CUDA" and exit non-zero.
build/gpu_%: tests/gpu_%.c $(wildcard tests/*.h) $(LIB)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -Itests $< $(LIB) $(ALL_LIBS) -o $@

gpu-test: build/gpu_test
	./build/gpu_test

gpu-bench: build/gpu_bench $(TOOLS)
	./build/gpu_bench


# The main job on real data: when the model and the corpus can be fetched (mk/model.mk), dump 8192
# tokens of Pride and Prejudice from SmolLM2-135M (layers 0, 9, 19, 29); otherwise use the bundled
# sample dump in data/. Then analyze every head, render two heads and draw the charts.
DEMO_SAMPLE := data/sample-smollm2-austen-1792.h5
demo: $(TOOLS)
	@mkdir -p out
	@if $(MAKE) --no-print-directory model corpus >out/demo-fetch.log 2>&1; then \
	  echo "make demo: dumping 8192 tokens of Pride and Prejudice from $(MODEL_GGUF)"; \
	  ./bin/skel dump --model $(MODEL_GGUF) --text data/text/prideprejudice.txt --n-tokens 8192 \
	    --layers 0,9,19,29 --values -o out/demo-dump.h5 || exit 1; dump=out/demo-dump.h5; \
	else \
	  echo "make demo: model or corpus not available (out/demo-fetch.log); using the bundled $(DEMO_SAMPLE)"; \
	  dump=$(DEMO_SAMPLE); \
	fi; \
	set -e; ./bin/skel info $$dump; \
	./bin/skel analyze $$dump -o out/demo-results.h5 --sweep; \
	./bin/skel render out/demo-results.h5 --layer 19 --head 4 -o out/demo-render-L19-H4; \
	./bin/skel render out/demo-results.h5 --layer 9 --head 5 -o out/demo-render-L9-H5; \
	./bin/skel plot out/demo-results.h5 -o out/demo-plots --heads 19:4,9:5
	@echo; column -s, -t out/demo-results.csv 2>/dev/null | cut -c1-210 || cat out/demo-results.csv
	@echo; echo "pictures: out/demo-render-*/montage.png (and a.png .. f.png, overlay.png); charts: out/demo-plots/*.png"

clean:
	rm -rf build bin out
