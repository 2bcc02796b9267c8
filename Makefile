# Tollgate build entry points.
#
#   make build       site + server + mock
#   make site        browser bundle for the admin console -> site/ (pkg/, css, public files)
#   make server      release build of the gateway (bin: tollgate)
#   make mock        release build of the mock upstreams (tollgate-bench)
#   make wasm-tools  wasm32 target + wasm-bindgen-cli matching Cargo.lock (installed only if missing)
#
# All targets are idempotent and cheap when nothing changed (cargo is
# incremental; the site steps only rerun when their inputs are newer).
# LEPTOS_OUTPUT_NAME=tollgate comes from .cargo/config.toml, so plain cargo
# commands and these targets build the same artifacts.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := build
MAKEFLAGS += --no-builtin-rules

CARGO_TARGET_DIR ?= $(HOME)/.cache/tollgate/target
export CARGO_TARGET_DIR
CARGO ?= cargo

# The wasm-bindgen CLI must be exactly the wasm-bindgen library version in Cargo.lock.
WASM_BINDGEN_VERSION := $(shell sed -n '/^name = "wasm-bindgen"$$/{n;s/^version = "\(.*\)"$$/\1/p;q;}' Cargo.lock)

SITE := site
PKG := $(SITE)/pkg
WASM_PROFILE := wasm-release
FRONTEND_WASM := $(CARGO_TARGET_DIR)/wasm32-unknown-unknown/$(WASM_PROFILE)/frontend.wasm
PUBLIC_FILES := $(patsubst public/%,$(SITE)/%,$(wildcard public/*))
# Served pre-compressed by the server (tower-http ServeDir) to clients that accept gzip.
GZ_FILES := $(PKG)/tollgate.wasm.gz $(PKG)/tollgate.js.gz $(PKG)/tollgate.css.gz

.PHONY: build site server mock bins wasm-tools FORCE

build: site bins

# ---- tools ---------------------------------------------------------------

wasm-tools:
	@rustup target list --installed | grep -qx wasm32-unknown-unknown \
	  || rustup target add wasm32-unknown-unknown
	@test -n "$(WASM_BINDGEN_VERSION)" || { echo "wasm-bindgen not found in Cargo.lock" >&2; exit 1; }
	@if [ "$$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $(WASM_BINDGEN_VERSION)" ]; then \
	  echo "installing wasm-bindgen-cli $(WASM_BINDGEN_VERSION) (~10 min cold)"; \
	  env -u CARGO_TARGET_DIR $(CARGO) install wasm-bindgen-cli --version $(WASM_BINDGEN_VERSION); \
	fi

# ---- site: the console's browser bundle ------------------------------------

site: $(PKG)/tollgate.js $(PKG)/tollgate.wasm $(PKG)/tollgate.css $(PUBLIC_FILES) $(GZ_FILES)

# cargo decides whether the wasm is stale; it leaves the file untouched when
# nothing changed, so the steps below are skipped.
$(FRONTEND_WASM): FORCE | wasm-tools
	$(CARGO) build -p frontend --target wasm32-unknown-unknown --profile $(WASM_PROFILE)

# Leptos's hydration script loads /pkg/<output_name>.js and /pkg/<output_name>.wasm
# (wasm-bindgen writes <name>_bg.wasm, hence the rename).
$(PKG)/tollgate.js: $(FRONTEND_WASM) | wasm-tools
	@mkdir -p $(PKG)
	wasm-bindgen --target web --no-typescript --remove-name-section --out-dir $(PKG) --out-name tollgate $(FRONTEND_WASM)
	mv -f $(PKG)/tollgate_bg.wasm $(PKG)/tollgate.wasm
	@touch $(PKG)/tollgate.wasm $@

$(PKG)/tollgate.wasm: $(PKG)/tollgate.js

$(PKG)/tollgate.css: style/main.css
	@mkdir -p $(PKG)
	cp $< $@

$(SITE)/%: public/%
	@mkdir -p $(@D)
	cp $< $@

$(PKG)/%.gz: $(PKG)/%
	gzip -9 -n -c $< > $@.tmp && mv -f $@.tmp $@

# ---- binaries --------------------------------------------------------------

# One cargo invocation for both, so shared dependencies build once with one feature set.
bins:
	$(CARGO) build --release -p server -p tollgate-bench -p app

server mock: bins

FORCE:

# ---- run and test ----------------------------------------------------------

TOLLGATE_BIN := $(CARGO_TARGET_DIR)/release/tollgate
MOCK_BIN := $(CARGO_TARGET_DIR)/release/mock-upstream
VENV := $(HOME)/.cache/tollgate/venv
PYTHON := $(VENV)/bin/python

.PHONY: run test test-deps test-rust test-python test-python-postgres test-e2e

# Serve on 127.0.0.1:4000 with SQLite under ./data and the demo config.
run: site server
	TOLLGATE_MASTER_KEY="$${TOLLGATE_MASTER_KEY:-sk-tollgate-demo}" $(TOLLGATE_BIN) serve $(if $(CONFIG),--config $(CONFIG))

# Everything the tests need on a brand-new machine; each step is skipped when already there.
test-deps:
	@command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y --no-install-recommends chromium; }
	@command -v psql >/dev/null && ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 \
	  || { apt-get update -qq && apt-get install -y --no-install-recommends postgresql; }
	@command -v redis-server >/dev/null \
	  || { apt-get update -qq && apt-get install -y --no-install-recommends redis-server; }
	@test -x $(PYTHON) || python3 -m venv $(VENV)
	@$(PYTHON) -c 'import openai, anthropic, pytest, httpx, boto3, moto.server, cryptography, opentelemetry.proto' 2>/dev/null \
	  || $(VENV)/bin/pip install -q -r server/tests/python/requirements.txt
	@command -v npm >/dev/null || { apt-get update -qq && apt-get install -y --no-install-recommends nodejs npm; }
	@test -d end2end/node_modules/@playwright/test -a -d end2end/node_modules/oidc-provider \
	  || (cd end2end && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund)

test: test-deps build test-rust test-python test-python-postgres test-e2e

test-rust:
	$(CARGO) test --release -p server -p tollgate-bench -p app

test-python:
	redis=$$(.ci/redis.sh start) && \
	cd server/tests/python && TOLLGATE_TEST_REDIS_URL=$$redis TOLLGATE_BIN=$(TOLLGATE_BIN) MOCK_BIN=$(MOCK_BIN) \
	  $(PYTHON) -m pytest -q -p no:cacheprovider

test-python-postgres:
	url=$$(.ci/postgres.sh start) && .ci/postgres.sh reset >/dev/null && redis=$$(.ci/redis.sh start) && \
	cd server/tests/python && TOLLGATE_TEST_DATABASE_URL=$$url TOLLGATE_TEST_REDIS_URL=$$redis TOLLGATE_BIN=$(TOLLGATE_BIN) MOCK_BIN=$(MOCK_BIN) \
	  $(PYTHON) -m pytest -q -p no:cacheprovider

test-e2e:
	TOLLGATE_BIN=$(TOLLGATE_BIN) MOCK_BIN=$(MOCK_BIN) end2end/run.sh
