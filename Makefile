# Avatar — the two commands: `make run` (set up everything, build, serve on :8080) and `make test`.
# Both are idempotent: a second run skips what is already installed and verified.

SWIFT ?= swift
RELEASE_BIN := .build/release/avatar
DEBUG_BIN := .build/debug/avatar

.PHONY: run test setup build build-debug build-deps web doctor bench clean

## run: install Debian/PyPI dependencies and models, build (release) and the web client, serve on http://127.0.0.1:8080
run: setup web
	$(RELEASE_BIN) serve

## test: install dependencies (plus test data), build (debug), run every test with the real engines
test: build-debug
	$(DEBUG_BIN) setup --with-test-tools
	@scripts/build-web.sh
	@scripts/run-tests.sh

## setup: everything `run` needs, without serving
setup: build
	$(RELEASE_BIN) setup

## web: type-check (tsc) and bundle (esbuild) the browser client into Public/app.js (tools from `avatar setup`)
web:
	@scripts/build-web.sh

build-deps:
	@scripts/build-deps.sh

build: build-deps
	@echo "==> swift build -c release (first build: several minutes on 2 cores)"
	$(SWIFT) build -c release --product avatar

build-debug: build-deps
	@echo "==> swift build --build-tests (first build: several minutes on 2 cores)"
	$(SWIFT) build --build-tests

doctor: build
	$(RELEASE_BIN) doctor

bench: build setup
	$(RELEASE_BIN) bench engines
	$(RELEASE_BIN) bench llm
	$(RELEASE_BIN) bench render
	$(RELEASE_BIN) bench generate

clean:
	rm -rf .build
