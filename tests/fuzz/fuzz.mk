# tests/fuzz/fuzz.mk — builds each tests/fuzz/fuzz_<name>.c with libFuzzer, ASan and
# UBSan against the library (all of src/ but src/cli/main.c), replays its seeds in
# tests/fuzz/corpus/<name>/, then fuzzes it for FUZZ_SECONDS with tests/fuzz/<name>.dict
# when there is one. Any crash, leak, sanitizer report or timeout fails the make.
#
# Run from the repository root (`make fuzz` does this):
#   make -f tests/fuzz/fuzz.mk FUZZ_SECONDS=5
# Narrow it while parts of src/ are in progress:
#   make -f tests/fuzz/fuzz.mk FUZZ_SRCS="$(echo src/base/*.c src/core/*.c)" FUZZ_TARGETS="secret perm"
# Other knobs: FUZZ_CC, FUZZ_OUT (default build-fuzz), FUZZ_PKGS, FUZZ_ARGS (extra
# libFuzzer flags, e.g. FUZZ_ARGS=-jobs=4). New inputs libFuzzer finds go to the scratch
# corpus $(FUZZ_OUT)/corpus/<name>/, never to tests/fuzz/corpus/; crashes go to
# $(FUZZ_OUT)/artifacts/.
#
# fuzz_http takes raw HTTP/1.1 request bytes through the whole request path in
# process, without sockets: h2o's request handling as the server configures it,
# the route table, decoders, handlers (management calls on their worker threads)
# and error rendering, against a scratch database with known keys that inputs
# name by placeholder (@ROOT@, @KEY@, @SESSION@ ...; see its header). It fails on
# a crash, a sanitizer report, a hang, a 500 or undocumented status, or a body
# that is not valid UTF-8 JSON in the error shape. Its seeds are the integration
# tests' own requests:
#   python3 -m pytest -q tests/integration --record-requests /tmp/lk-requests
#   python3 tests/fuzz/http_seeds.py /tmp/lk-requests tests/fuzz/corpus/http
# FUZZ_HTTP_TRACE=1 build-fuzz/fuzz_http FILE... prints each request's answer.

.DEFAULT_GOAL := all

FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 5
FUZZ_OUT     ?= build-fuzz
FUZZ_PKGS    ?= libh2o-evloop libssl libcrypto zlib jansson libsodium sqlite3 liburcu liburcu-cds libpq hiredis
FUZZ_SRCS    ?= $(filter-out src/cli/main.c,$(sort $(shell find src -name '*.c')))
FUZZ_TARGETS ?= $(sort $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_ARGS    ?=

ifneq ($(shell pkg-config --exists $(FUZZ_PKGS) && echo ok),ok)
$(error pkg-config cannot find all of: $(FUZZ_PKGS) (run `make deps`, or narrow FUZZ_PKGS))
endif

FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
# h2o's pkg-config file omits -DH2O_USE_LIBUV=0 (DESIGN §8).
FUZZ_CFLAGS := -g -O1 -std=c17 -D_GNU_SOURCE -DH2O_USE_LIBUV=0 -Isrc \
               $(shell pkg-config --cflags $(FUZZ_PKGS))
FUZZ_LIBS   := $(shell pkg-config --libs $(FUZZ_PKGS)) -lpthread -lm
# Library code is held to -Werror by the main build (gcc); here clang's warnings only show.
LIB_WARN    := -Wall -Wextra -Wno-missing-field-initializers
TGT_WARN    := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes

FUZZ_OBJS   := $(FUZZ_SRCS:%.c=$(FUZZ_OUT)/obj/%.o)
FUZZ_LIB    := $(FUZZ_OUT)/liblatchkey-fuzz.a
FUZZ_BINS   := $(FUZZ_TARGETS:%=$(FUZZ_OUT)/fuzz_%)
# libFuzzer flags for both the replay and the timed run.
RUN_FLAGS    = -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
               -artifact_prefix=$(FUZZ_OUT)/artifacts/$*- $(FUZZ_ARGS)

export UBSAN_OPTIONS ?= print_stacktrace=1:halt_on_error=1
export ASAN_OPTIONS  ?= detect_leaks=1:abort_on_error=0

# run-<name> cannot be .PHONY: make skips pattern rules for phony targets.
.PHONY: all build clean FORCE
.SECONDARY: $(FUZZ_OBJS)

all: $(FUZZ_TARGETS:%=run-%)

build: $(FUZZ_BINS)

# The archive is rebuilt when the set of sources changes, not only when one does.
$(shell mkdir -p $(FUZZ_OUT); echo '$(FUZZ_SRCS)' | cmp -s - $(FUZZ_OUT)/srcs.list || \
        echo '$(FUZZ_SRCS)' > $(FUZZ_OUT)/srcs.list)

$(FUZZ_OUT)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(LIB_WARN) $(FUZZ_SAN) -fsanitize=fuzzer-no-link -MMD -MP -c $< -o $@

$(FUZZ_LIB): $(FUZZ_OBJS) $(FUZZ_OUT)/srcs.list
	@rm -f $@
	ar rcs $@ $(FUZZ_OBJS)

$(FUZZ_OUT)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_LIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(TGT_WARN) $(FUZZ_SAN) -fsanitize=fuzzer -MMD -MP -MF $@.d \
		$< $(FUZZ_LIB) $(FUZZ_LIBS) -o $@

# Replays the seeds one file at a time, then fuzzes a scratch copy of the corpus.
# libFuzzer's chatter goes to $(FUZZ_OUT)/fuzz_<name>.log; its tail is shown on failure.
run-%: $(FUZZ_OUT)/fuzz_% FORCE
	@set -e; name=$*; bin=$(FUZZ_OUT)/fuzz_$$name; log=$$bin.log; \
	seeds=tests/fuzz/corpus/$$name; work=$(FUZZ_OUT)/corpus/$$name; \
	mkdir -p $$work $(FUZZ_OUT)/artifacts; : > $$log; \
	files=$$(find $$seeds -type f 2>/dev/null | sort); \
	if [ -n "$$files" ]; then \
	    cp $$files $$work/; \
	    echo "== fuzz_$$name: replaying $$(echo "$$files" | wc -l) seeds"; \
	    $$bin $(RUN_FLAGS) $$files >>$$log 2>&1 || \
	        { tail -n 80 $$log; echo "fuzz_$$name: a seed fails (log: $$log)"; exit 1; }; \
	else \
	    echo "== fuzz_$$name: no seeds in $$seeds"; \
	fi; \
	dict=; if [ -f tests/fuzz/$$name.dict ]; then dict=-dict=tests/fuzz/$$name.dict; fi; \
	echo "== fuzz_$$name: fuzzing for $(FUZZ_SECONDS)s $$dict"; \
	$$bin $(RUN_FLAGS) $$dict -max_total_time=$(FUZZ_SECONDS) $$work >>$$log 2>&1 || \
	    { tail -n 80 $$log; echo "fuzz_$$name: FAILED (log: $$log, artifacts: $(FUZZ_OUT)/artifacts/)"; exit 1; }; \
	grep -E '^Done ' $$log | tail -n 1 | sed "s/^/   fuzz_$$name: /"

clean:
	rm -rf $(FUZZ_OUT)

FORCE:

-include $(FUZZ_OBJS:.o=.d) $(FUZZ_BINS:%=%.d)
