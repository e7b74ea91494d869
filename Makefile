# latchkey — see README.md. `make` builds build/latchkey; `make run`, `make test`, `make bench`.
.DEFAULT_GOAL := all

PKGS     := libh2o-evloop libssl libcrypto zlib jansson libsodium sqlite3 liburcu liburcu-cds libpq hiredis
CC       ?= cc
# h2o's pkg-config file omits -DH2O_USE_LIBUV=0 (DESIGN §8).
BASE_CFLAGS := -std=c17 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -Wall -Wextra -Werror -Wshadow \
               -Wstrict-prototypes -Wno-missing-field-initializers -g -Isrc
PKG_CFLAGS   = $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS     = $(shell pkg-config --libs $(PKGS) 2>/dev/null) -lpthread -lm

ifdef SANITIZE
BUILD    ?= build-san
OPT      := -O1 -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD    ?= build
OPT      := -O2
endif

CFLAGS  ?=
CFLAGS  += $(BASE_CFLAGS) $(OPT) $(PKG_CFLAGS)
LDFLAGS += $(OPT)

SRCS     := $(wildcard src/base/*.c src/core/*.c src/store/*.c src/counters/*.c src/service/*.c src/http/*.c src/cli/*.c)
LIB_SRCS := $(filter-out src/cli/main.c,$(SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ := $(BUILD)/obj/src/cli/main.o
UNIT_SRCS := $(wildcard tests/unit/*/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

PY       := /usr/bin/python3

.PHONY: all deps deps-test deps-bench run test unit unit-pg integration integration-pg integration-all browser interop screenshots web fuzz bench lint layers clean install FORCE

# `latchkey --version`: the release from VERSION, the commit when built from git.
# Only base/version.o sees them; the stamp rebuilds it when either changes.
LK_VERSION := $(shell tr -cd 'A-Za-z0-9.+~-' < VERSION 2>/dev/null)
LK_COMMIT  := $(shell git rev-parse --short=12 HEAD 2>/dev/null | tr -cd '0-9a-f')
$(BUILD)/obj/src/base/version.o: CFLAGS += -DLK_VERSION='"$(or $(LK_VERSION),unknown)"' \
                                           -DLK_COMMIT='"$(or $(LK_COMMIT),unknown)"'
$(BUILD)/obj/src/base/version.o: $(BUILD)/version.stamp
$(BUILD)/version.stamp: FORCE
	@mkdir -p $(dir $@)
	@echo '$(LK_VERSION) $(LK_COMMIT)' | cmp -s - $@ || echo '$(LK_VERSION) $(LK_COMMIT)' > $@

# The dashboard (web/): npm ci when node_modules is missing or the lockfile changed,
# then esbuild bundles web/src into the three files the binary embeds.
WEB_DIST := web/dist/index.html web/dist/app.js web/dist/app.css
WEB_SRCS := $(wildcard web/src/*) web/build.mjs web/package.json
all: deps $(WEB_DIST) $(BUILD)/latchkey

web: $(WEB_DIST)
web/node_modules/.package-lock.json: web/package-lock.json web/package.json | deps
	npm ci --prefix web --no-audit --no-fund
	@touch $@
$(WEB_DIST) &: $(WEB_SRCS) web/node_modules/.package-lock.json
	npm run --prefix web build
	@touch $(WEB_DIST)
# Built before any C object, so an object that embeds them never sees them missing.
$(LIB_OBJS) $(MAIN_OBJ): | $(WEB_DIST)

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

deps-bench:
	@scripts/deps.sh bench

# deps first: with -j, nothing may compile before the headers are installed.
$(BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

# h_openapi.c builds docs/openapi.json in with .incbin, which -MMD does not see.
$(BUILD)/obj/src/http/h_openapi.o: docs/openapi.json
# counters_redis.c builds its Lua script in the same way.
$(BUILD)/obj/src/counters/counters_redis.o: src/counters/reserve.lua src/counters/named.lua
# h_web.c builds the dashboard in the same way; web/ builds these three files.
$(BUILD)/obj/src/http/h_web.o: web/dist/index.html web/dist/app.js web/dist/app.css

$(BUILD)/liblatchkey.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/latchkey: $(MAIN_OBJ) $(BUILD)/liblatchkey.a
	$(CC) $(LDFLAGS) -o $@ $^ $(PKG_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(BUILD)/liblatchkey.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/liblatchkey.a $(LDFLAGS) $(PKG_LIBS) -lcmocka

# Starts latchkey on the embedded database, printing the first root key on first start.
run: all
	$(BUILD)/latchkey serve $(ARGS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# TESTS=tests/integration/test_x.py runs some of them.
TESTS ?= tests/integration
integration: $(BUILD)/latchkey
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	LATCHKEY_BIN=$(CURDIR)/$(BUILD)/latchkey $(PY) -m pytest -q -p no:cacheprovider $(TESTS)

# The same suites on PostgreSQL: tests/pg/pg-test.sh starts a throwaway server
# (its own cluster under /tmp, on loopback and a free port) and stops it after,
# whatever the outcome; every latchkey server under test gets a database of its own.
PG_TEST := tests/pg/pg-test.sh
define with_pg
	@d=$$(mktemp -d /tmp/lk-pg-XXXXXX) && chmod 0755 $$d && \
	trap '$(PG_TEST) stop '$$d'/pg; rm -rf '$$d EXIT INT TERM && \
	url=$$($(PG_TEST) start $$d/pg) && \
	LATCHKEY_TEST_PG_URL=$$url $(1)
endef

unit-pg: $(BUILD)/tests/store/test_store_conformance
	$(call with_pg,$(BUILD)/tests/store/test_store_conformance)

integration-pg: $(BUILD)/latchkey
	$(call with_pg,LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:print_suppressions=0 \
	  LATCHKEY_BIN=$(CURDIR)/$(BUILD)/latchkey $(PY) -m pytest -q -p no:cacheprovider $(TESTS))

# Both runs at once: the PostgreSQL one's output goes to a log, printed after the
# SQLite one finishes; either failing fails the target.
integration-all: $(BUILD)/latchkey
	@log=$(BUILD)/integration-pg.log; \
	$(MAKE) --no-print-directory integration-pg > $$log 2>&1 & pg=$$!; \
	$(MAKE) --no-print-directory integration; rc=$$?; \
	wait $$pg; pgrc=$$?; \
	echo "== the black-box suite on PostgreSQL ($$log)"; cat $$log; \
	[ $$rc -eq 0 ] && [ $$pgrc -eq 0 ]

# Browser tests: Playwright drives Debian's Chromium against a real latchkey.
tests/browser/node_modules/.package-lock.json: tests/browser/package-lock.json tests/browser/package.json | deps
	npm ci --prefix tests/browser --no-audit --no-fund
	@touch $@
browser: $(BUILD)/latchkey $(WEB_DIST) tests/browser/node_modules/.package-lock.json
	cd tests/browser && LATCHKEY_BIN=$(CURDIR)/$(BUILD)/latchkey node --test --test-reporter=spec dashboard.test.mjs

# Unkey's npm SDK (@unkey/api, pinned by the lockfile) against a real latchkey:
# the v2 API must answer it exactly as Unkey does (docs/unkey.md).
tests/interop/unkey/node_modules/.package-lock.json: tests/interop/unkey/package-lock.json tests/interop/unkey/package.json | deps
	npm ci --prefix tests/interop/unkey --no-audit --no-fund
	@touch $@
interop: $(BUILD)/latchkey tests/interop/unkey/node_modules/.package-lock.json
	cd tests/interop/unkey && LATCHKEY_BIN=$(CURDIR)/$(BUILD)/latchkey node --test --test-concurrency=1 --test-reporter=spec sdk.test.mjs

# The same run, saving the pages to docs/screenshots/ as it goes.
screenshots: $(BUILD)/latchkey $(WEB_DIST) tests/browser/node_modules/.package-lock.json
	cd tests/browser && LATCHKEY_SCREENSHOTS=1 LATCHKEY_BIN=$(CURDIR)/$(BUILD)/latchkey node --test dashboard.test.mjs

fuzz:
	@$(MAKE) --no-print-directory -f tests/fuzz/fuzz.mk FUZZ_SECONDS=$(or $(FUZZ_SECONDS),5)

# The layer rule of src/ on the #include lines (docs/internals/mgmt.md, "Layers").
layers:
	@scripts/check-layers.sh

# Everything, as CI runs it: the layer check, the release build, then unit and
# black-box tests under ASan+UBSan (the store and black-box suites on SQLite
# and on PostgreSQL), then each fuzz target for a few seconds.
test: deps-test
	@$(MAKE) --no-print-directory layers
	@$(MAKE) --no-print-directory all
	@# the benchmarks build with every change, so `make bench` never meets a stale one
	@$(MAKE) --no-print-directory $(BUILD)/bench_verify $(BUILD)/loadgen
	@$(MAKE) --no-print-directory SANITIZE=address,undefined all unit unit-pg integration-all
	@$(MAKE) --no-print-directory browser
	@$(MAKE) --no-print-directory interop
	@$(MAKE) --no-print-directory fuzz

$(BUILD)/bench_verify: bench/bench_verify.c $(BUILD)/liblatchkey.a
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/liblatchkey.a $(LDFLAGS) $(PKG_LIBS)

# The open-loop load generator run.sh measures latency at a fixed rate with.
$(BUILD)/loadgen: bench/loadgen.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(OPT) -o $@ $<

# The in-process verify call at three cache sizes, then the HTTP run against nginx,
# then /v1/verify over TLS and HTTP/2 against nginx over the same TLS.
bench: deps-bench all $(BUILD)/bench_verify $(BUILD)/loadgen
	$(BUILD)/bench_verify
	bash bench/startup.sh
	bash bench/run.sh
	bash bench/tls.sh
	bash bench/cluster.sh

# `make install PREFIX=/usr DESTDIR=/tmp/pkg`: the binary, the systemd unit (its
# ExecStart pointed at BINDIR), the docs, and /etc/latchkey/latchkey.conf unless
# one is there already.
PREFIX  ?= /usr/local
SYSCONFDIR ?= /etc
BINDIR  ?= $(PREFIX)/bin
DOCDIR  ?= $(PREFIX)/share/doc/latchkey
UNITDIR ?= $(PREFIX)/lib/systemd/system
# The binary to install; built first when it is this Makefile's.
INSTALL_FROM ?= $(BUILD)/latchkey
install: $(INSTALL_FROM)
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) $(DESTDIR)$(DOCDIR)/internals
	install -m 0755 $(INSTALL_FROM) $(DESTDIR)$(BINDIR)/latchkey
	sed -e 's|/usr/local/bin/latchkey|$(BINDIR)/latchkey|g' \
	    -e 's|/usr/local/share/doc/latchkey|$(DOCDIR)|g' \
	    -e 's|/etc/latchkey/|$(SYSCONFDIR)/latchkey/|g' deploy/systemd/latchkey.service \
	    > $(DESTDIR)$(UNITDIR)/latchkey.service
	chmod 0644 $(DESTDIR)$(UNITDIR)/latchkey.service
	install -m 0644 deploy/systemd/latchkey.conf $(DESTDIR)$(DOCDIR)/latchkey.conf.example
	install -d $(DESTDIR)$(SYSCONFDIR)/latchkey
	[ -e $(DESTDIR)$(SYSCONFDIR)/latchkey/latchkey.conf ] || \
	    install -m 0644 deploy/systemd/latchkey.conf $(DESTDIR)$(SYSCONFDIR)/latchkey/latchkey.conf
	install -m 0644 README.md $(wildcard docs/*.md) $(DESTDIR)$(DOCDIR)/
	install -m 0644 $(wildcard docs/internals/*.md) $(DESTDIR)$(DOCDIR)/internals/

lint:
	clang-format --dry-run --Werror $(SRCS) $(wildcard src/*/*.h)

clean:
	rm -rf build build-san build-fuzz web/dist

-include $(shell find build build-san -name '*.d' 2>/dev/null)
