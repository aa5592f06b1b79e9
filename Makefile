# nnofi: set-up and everyday targets. Every target installs what it needs
# on a fresh Debian machine: apt packages when root, a .venv with the
# package in editable mode.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
APT_PACKAGES := build-essential pkg-config libffi-dev python3-dev python3-venv \
	libfabric-dev libfabric-bin libnanomsg-dev nanomsg-utils clang libclang-rt-14-dev
STAMP := $(VENV)/.installed
NATIVE_SOURCES := $(shell find native -name '*.c' -o -name '*.h' -o -name '*.py') pyproject.toml
JOBS ?= auto

.PHONY: all deps venv build test test-asan demo bench fuzz clean

all: build

# System packages (skipped when present, or when not root: then they must be there).
deps:
	@missing=$$(for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing: $$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
		else \
			echo "missing Debian packages (run as root or install them): $$missing"; exit 1; \
		fi; \
	fi

$(STAMP): $(NATIVE_SOURCES) | deps
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	NNOFI_WERROR=1 $(PY) -m pip install -q -e '.[test,bench,lab,matrix]'
	touch $@

venv build: $(STAMP)

# The whole suite, in parallel; then the multi-node tests on the best lab
# this machine has (Docker, else namespaces, else local processes: LAB=auto).
test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q tests
	$(MAKE) --no-print-directory lab-test

# The suite against an ASan+UBSan build of the native core (built apart
# from the normal one, in build/asan), then the fault tests on the netns
# lab, whose nodes run the host's Python in this environment: sanitized
# too (PYTHONSAFEPATH keeps the tree's own build off their path).
test-asan: $(STAMP)
	rm -rf build/asan && mkdir -p build/asan
	NNOFI_SANITIZE=1 $(PY) native/build_inplace.py build/asan
	LD_PRELOAD="$$(gcc -print-file-name=libasan.so) $$(gcc -print-file-name=libubsan.so)" \
	ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1:allocator_may_return_null=1 \
	UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	PYTHONPATH=build/asan PYTHONSAFEPATH=1 NNOFI_EXPECT_SANITIZED=1 \
		sh -c '$(PY) -m pytest -n $(JOBS) -q -p no:cacheprovider tests && \
		       $(PY) -m pytest -n $(JOBS) -q -p no:cacheprovider --lab netns tests/faults'

# The main job for now: every socket type over every transport, printed.
demo: $(STAMP)
	$(PY) -m nnofi.demo

bench: $(STAMP)
	$(PY) -m nnofi.perf

# Coverage-guided fuzzing (libFuzzer) of URL, SP header, frame and
# backtrace parsing; the suite runs it briefly, this runs it longer.
FUZZ_SECONDS ?= 300
FUZZ_SOURCES := native/fuzz/fuzz_wire.c native/core/url.c native/transport/framing.c \
	native/proto/backtrace.c
build/fuzz/fuzz_wire: $(FUZZ_SOURCES) native/core/core.h native/transport/framing.h
	@mkdir -p build/fuzz
	clang -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
		-fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
		-Inative/include -Inative/core -Inative/transport $(FUZZ_SOURCES) -o $@

fuzz: deps build/fuzz/fuzz_wire
	mkdir -p build/fuzz/corpus
	build/fuzz/fuzz_wire -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 build/fuzz/corpus

clean:
	rm -rf build $(VENV) *.egg-info nnofi/*.so native/*.o

# The lab's Docker images (docker/README.md): nnofi-base:bookworm, built
# offline by debootstrap (NNOFI_BASE=registry: FROM debian:bookworm-slim),
# and nnofi-node:latest with nnofi installed. Skips what is up to date.
NNOFI_BASE ?= debootstrap
.PHONY: images images-clean
images:
	NNOFI_BASE=$(NNOFI_BASE) docker/build-images.sh

# Keeps build/lab's download caches (debootstrap tarball, apt archives).
images-clean:
	for i in nnofi-node:latest nnofi-base:bookworm; do \
		if docker image inspect $$i >/dev/null 2>&1; then docker image rm $$i; fi; \
	done
	rm -rf --one-file-system build/lab/rootfs build/lab/rootfs.recipe

# The lab (lab/README.md): NODES nodes (default: the topology's 3) of the
# topology LAB: a name in lab/topologies or a .yaml path; auto (default)
# takes laptop (Docker) when an engine answers, else netns (root), else
# local, and says which. RXE=1 makes rxe soft-RoCE devices where the host
# kernel has rdma_rxe. lab-test runs tests/lab and tests/faults on the lab
# (brought up and down again if it was not up), in one run: fault tests that
# kill or pause nodes wait, under the lab's lock, until no other test runs.
LAB ?= auto
NODES ?=
RXE ?= 0
.PHONY: lab-up lab-down lab-status lab-test
lab-up: $(STAMP)
	$(PY) -m nnofi_lab up --topology $(LAB) $(if $(NODES),--nodes $(NODES)) $(if $(filter 1,$(RXE)),--rxe)
lab-down: $(STAMP)
	$(PY) -m nnofi_lab down --topology $(LAB)
lab-status: $(STAMP)
	$(PY) -m nnofi_lab status --topology $(LAB)
lab-test: $(STAMP)
	$(PY) -m pytest -n $(JOBS) -q --lab $(LAB) tests/lab tests/faults

# The fabric matrix (ci/matrix.yaml; README, "Fabric matrix"): every lab
# backend x transport x protocol family and message size through the lab;
# build/matrix gets report.html (and report.png, as headless Chromium shows
# it), results.json (the last one becomes previous.json, the diff's base)
# and junit.xml. Fails if a cell failed. QUICK=1: the small slice .ci/run
# runs; RXE=1: labs it brings up get rxe devices; MATRIX_ARGS: more options
# (python -m ci.matrix --help).
QUICK ?= 0
MATRIX_ARGS ?=
.PHONY: matrix matrix-deps
matrix: $(STAMP) matrix-deps
	$(PY) -m ci.matrix run --render $(if $(filter 1,$(QUICK)),--quick) $(if $(filter 1,$(RXE)),--rxe) $(MATRIX_ARGS)

# Headless Chromium, for the report's screenshot (its test in tests/matrix
# skips without it, saying so). Skipped when present; when not root, says so.
matrix-deps:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then \
			echo "installing: chromium"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
				chromium fonts-dejavu-core >/dev/null; \
		else \
			echo "chromium missing (run as root, or apt-get install chromium): the report's screenshot is skipped"; \
		fi; \
	}

# Minutes of connection churn under network faults across the lab (LAB=auto,
# brought up or refreshed first), then every node's fds, threads, RSS, memory
# registrations and live sockets against their baseline (python -m
# nnofi_lab.soak --help). Fails if one grew.
SOAK_SECONDS ?= 120
.PHONY: soak
soak: lab-up
	$(PY) -m nnofi_lab.soak --topology $(LAB) --seconds $(SOAK_SECONDS)
