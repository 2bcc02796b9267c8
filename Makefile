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

.PHONY: build site server mock wasm-tools FORCE

build: site server mock

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

server:
	$(CARGO) build -p server --release

mock:
	$(CARGO) build -p tollgate-bench --release

FORCE:
