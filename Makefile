# llmtap — one entry point: deps, all, test, demo, bench, clean (V=1 shows the commands)
OUTPUT   := .output
ARCH     := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
CLANG    ?= clang
BPFTOOL  ?= bpftool
CC       ?= cc
VERSION  := 0.1.0
# make install: PREFIX=/usr/local, DESTDIR for staging (make deb uses PREFIX=/usr)
PREFIX   ?= /usr/local
DESTDIR  ?=
DEB_ARCH := $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB      := llmtap_$(VERSION)_$(DEB_ARCH).deb

ifeq ($(V),1)
Q :=
msg :=
else
Q := @
msg = @printf '  %-8s %s\n' "$(1)" "$(2)";
endif

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -DLLMTAP_VERSION='"$(VERSION)"'
# e.g. make EXTRA_CFLAGS="-fsanitize=address,undefined" EXTRA_LDFLAGS="-fsanitize=address,undefined"
CFLAGS   += $(EXTRA_CFLAGS)
DEPFLAGS  = -MMD -MP
INCLUDES := -I$(OUTPUT) -I$(OUTPUT)/proto -Iinclude -Iuser
LIBS     := -lbpf -lelf -lz -lm -ljson-c -lprotobuf-c -lcurl -lpthread $(EXTRA_LDFLAGS)
BPF_CFLAGS := -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_$(ARCH) \
	-Ivmlinux/$(ARCH) -Iinclude

# The BPF programs are built against a committed vmlinux.h per architecture.
VMLINUX   := vmlinux/$(ARCH)/vmlinux.h

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
SKELS     := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.skel.h,$(BPF_SRCS))
# OTLP messages: C from protoc-c, out of proto/ (OTLP 1.x field numbers)
PROTOS    := $(shell find proto -name '*.proto')
PB_SRCS   := $(patsubst proto/%.proto,$(OUTPUT)/proto/%.pb-c.c,$(PROTOS))
PB_HDRS   := $(PB_SRCS:.c=.h)
PB_OBJS   := $(PB_SRCS:.c=.o)
# user/: one folder per pipeline stage (see README, "Layout")
USER_SRCS := $(shell find user -name '*.c' | sort)
USER_OBJS := $(patsubst %.c,$(OUTPUT)/%.o,$(USER_SRCS))
LIB_OBJS  := $(filter-out $(OUTPUT)/user/cmd/main.o,$(USER_OBJS)) $(PB_OBJS)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUTPUT)/tests/%,$(UNIT_SRCS))

# a failed recipe leaves no half-written target (a truncated skeleton) behind
.DELETE_ON_ERROR:
.SECONDARY:
.PHONY: all deps test unit help-check fuzz e2e compat compat-ci demo bench clean target deploy-check \
	image-check install uninstall doc deb deb-check
all: llmtap

# llmtap(1) and the bash completion, generated from what the built binary's --help prints
MAN        := $(OUTPUT)/llmtap.1
COMPLETION := $(OUTPUT)/llmtap.bash-completion
doc: $(MAN) $(COMPLETION)

$(MAN): llmtap tools/gen-man.sh
	$(call msg,MAN,$@)
	@mkdir -p $(@D)
	$(Q)tools/gen-man.sh ./llmtap > $@.tmp && mv $@.tmp $@

$(COMPLETION): llmtap tools/gen-completion.sh
	$(call msg,GEN,$@)
	@mkdir -p $(@D)
	$(Q)tools/gen-completion.sh ./llmtap > $@.tmp && mv $@.tmp $@

install: llmtap $(MAN) $(COMPLETION)
	install -D -m 0755 llmtap $(DESTDIR)$(PREFIX)/bin/llmtap
	install -D -m 0644 $(MAN) $(DESTDIR)$(PREFIX)/share/man/man1/llmtap.1
	install -D -m 0644 $(COMPLETION) $(DESTDIR)$(PREFIX)/share/bash-completion/completions/llmtap

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/llmtap $(DESTDIR)$(PREFIX)/share/man/man1/llmtap.1 \
		$(DESTDIR)$(PREFIX)/share/bash-completion/completions/llmtap

# the Debian package, from a staging DESTDIR with PREFIX=/usr (tools/make-deb.sh)
deb: $(DEB)
$(DEB): llmtap $(MAN) $(COMPLETION) tools/make-deb.sh README.md
	$(call msg,DEB,$@)
	$(Q)VERSION=$(VERSION) tools/make-deb.sh $@

# the package installed with apt into a Debian 12 root without a compiler, tracing a real
# llama-server from there (installs mmdebstrap; see tests/deploy/deb.sh). Part of `make test`:
# about 15 s once the root file system and apt's downloads are cached, a minute the first time
deb-check: $(DEB) target
	tests/deploy/deb.sh $(DEB)

deps:
	tools/install-deps.sh

$(VMLINUX):
	@echo "llmtap: no $(VMLINUX): the BPF programs are built for x86-64 only (uname -m: $$(uname -m));" \
		"another architecture needs its vmlinux.h (bpftool btf dump file /sys/kernel/btf/vmlinux format c)" >&2
	@exit 1

$(OUTPUT)/%.bpf.o: bpf/%.bpf.c $(VMLINUX)
	$(call msg,BPF,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(BPF_CFLAGS) $(DEPFLAGS) -c $< -o $@

$(OUTPUT)/%.skel.h: $(OUTPUT)/%.bpf.o
	$(call msg,GEN-SKEL,$@)
	$(Q)$(BPFTOOL) gen skeleton $< > $@.tmp && mv $@.tmp $@

$(OUTPUT)/proto/%.pb-c.c $(OUTPUT)/proto/%.pb-c.h: proto/%.proto $(PROTOS)
	$(call msg,PROTOC,$<)
	@mkdir -p $(OUTPUT)/proto
	$(Q)protoc-c --proto_path=proto --c_out=$(OUTPUT)/proto $<

$(OUTPUT)/proto/%.pb-c.o: $(OUTPUT)/proto/%.pb-c.c | $(PB_HDRS)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) $(INCLUDES) -c $< -o $@

# Generated headers: the protobuf ones are order-only for every object (cheap,
# no BPF toolchain); a skeleton only for the two objects that load programs.
$(OUTPUT)/user/%.o: user/%.c | $(PB_HDRS)
	$(call msg,CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) $(INCLUDES) -c $< -o $@

$(OUTPUT)/user/probe/probes.o: $(OUTPUT)/llmtap.skel.h
$(OUTPUT)/user/target/discover.o: $(OUTPUT)/exec.skel.h

llmtap: $(USER_OBJS) $(PB_OBJS)
	$(call msg,LINK,$@)
	$(Q)$(CC) $(CFLAGS) $^ $(LIBS) -o $@

# Unit tests link only the modules they test: none of them needs the BPF toolchain.
o = $(patsubst %,$(OUTPUT)/user/%.o,$(1))
UNIT_PB := $(PB_OBJS)
$(OUTPUT)/tests/test_correlate: $(call o,model/correlate model/generation model/stepsync model/telemetry model/metrics model/hist \
	model/route probe/event target/resource target/proc lib/clock lib/json lib/text lib/util)
$(OUTPUT)/tests/test_elfsym: $(call o,target/elfsym)
$(OUTPUT)/tests/test_event: $(call o,probe/event lib/text)
$(OUTPUT)/tests/test_generation: $(call o,model/generation)
$(OUTPUT)/tests/test_gguf: $(call o,target/gguf)
$(OUTPUT)/tests/test_hist: $(call o,model/hist)
$(OUTPUT)/tests/test_kvmem: $(call o,model/kvmem target/backend target/layout target/elfsym \
	target/proc)
$(OUTPUT)/tests/test_layercheck: $(call o,model/layercheck)
# loop and signals with the test's own session (a pipe): no probes, no BPF
$(OUTPUT)/tests/test_loop: $(call o,cmd/loop cmd/signals model/telemetry model/metrics model/hist \
	model/route probe/event target/proc lib/clock lib/json lib/text)
$(OUTPUT)/tests/test_metrics: $(call o,model/metrics model/hist lib/json lib/text lib/util)
$(OUTPUT)/tests/test_otlp: $(call o,export/otlp_config export/otlp_encode export/otlp_export \
	model/telemetry model/metrics model/hist model/route probe/event target/resource target/proc \
	lib/clock lib/json lib/text lib/util) $(UNIT_PB)
$(OUTPUT)/tests/test_proc: $(call o,target/proc)
$(OUTPUT)/tests/test_prom: $(call o,export/prom_text export/prom_http model/metrics model/hist \
	lib/clock lib/json lib/text lib/util)
$(OUTPUT)/tests/test_report: $(call o,report/report lib/clock lib/json lib/util)
$(OUTPUT)/tests/test_resource: $(call o,target/resource target/proc lib/text lib/util)
$(OUTPUT)/tests/test_route: $(call o,model/route)
$(OUTPUT)/tests/test_router: $(call o,target/router target/target target/sites target/elfsym \
	target/gguf target/proc lib/text lib/util)
$(OUTPUT)/tests/test_stepsync: $(call o,model/stepsync)
$(OUTPUT)/tests/test_select: $(call o,target/select target/ldd target/proc export/prom_text \
	model/metrics model/hist lib/json lib/text lib/util)
$(OUTPUT)/tests/test_telemetry: $(call o,model/telemetry model/metrics model/hist model/route \
	probe/event target/resource target/proc sink/sink_console sink/sink_json sink/sink_top \
	sink/sink_trace report/report lib/clock lib/json lib/text lib/util)
$(OUTPUT)/tests/test_util: $(call o,lib/util)
$(OUTPUT)/tests/test_text: $(call o,lib/text)
$(OUTPUT)/tests/test_version: $(call o,target/version target/target target/sites target/elfsym \
	target/gguf target/proc lib/text lib/util)

$(OUTPUT)/tests/%: tests/unit/%.c tests/unit/unit.h
	$(call msg,TEST,$@)
	@mkdir -p $(@D)
	$(Q)$(CC) $(CFLAGS) $(DEPFLAGS) $(INCLUDES) $< $(filter %.o,$^) $(LIBS) -lcmocka -o $@

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

# every --help: fits 80 columns, no hand-broken lines, ends with working examples
help-check: llmtap
	tests/help-check.py ./llmtap

# libFuzzer harnesses (tests/fuzz) for every parser of what a target or a user hands
# llmtap, built with clang's sanitizers apart from the normal build; each runs
# FUZZ_SECONDS from its seed corpus (tests/fuzz/corpus/NAME, read only). What they
# find goes to .output/fuzz/corpus/NAME, crashes to .output/fuzz/artifacts/NAME/.
FUZZ_SECONDS ?= 60
FUZZ        := $(OUTPUT)/fuzz
FUZZ_NAMES  := $(patsubst tests/fuzz/fuzz_%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_BINS   := $(patsubst %,$(FUZZ)/fuzz_%,$(FUZZ_NAMES))
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS := -O1 -g -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -DLLMTAP_VERSION='"$(VERSION)"' \
	-fno-omit-frame-pointer $(FUZZ_SAN)
fo = $(patsubst %,$(FUZZ)/obj/user/%.o,$(1))
FUZZ_PB := $(patsubst $(OUTPUT)/%,$(FUZZ)/obj/%,$(PB_OBJS))

$(FUZZ)/obj/user/%.o: user/%.c | $(PB_HDRS)
	$(call msg,FUZZ-CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(DEPFLAGS) $(INCLUDES) -c $< -o $@

$(FUZZ)/obj/proto/%.pb-c.o: $(OUTPUT)/proto/%.pb-c.c | $(PB_HDRS)
	$(call msg,FUZZ-CC,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(DEPFLAGS) $(INCLUDES) -c $< -o $@

$(FUZZ)/fuzz_elf: $(call fo,target/elfsym)
$(FUZZ)/fuzz_events: $(call fo,model/correlate model/generation model/stepsync model/layercheck model/telemetry model/metrics model/hist \
	model/route probe/event target/resource target/proc sink/sink_json sink/sink_trace \
	export/otlp_encode lib/clock lib/json lib/text lib/util) $(FUZZ_PB)
$(FUZZ)/fuzz_gguf: $(call fo,target/gguf)
$(FUZZ)/fuzz_otel: $(call fo,export/otlp_config target/resource target/proc lib/text lib/util)
$(FUZZ)/fuzz_proc: $(call fo,target/proc target/resource target/router target/target target/sites \
	target/elfsym target/gguf lib/text lib/util)
$(FUZZ)/fuzz_prom: $(call fo,export/prom_http export/prom_text model/metrics model/hist \
	lib/clock lib/json lib/text lib/util)
$(FUZZ)/fuzz_report: $(call fo,report/report lib/clock lib/json lib/util)

$(FUZZ)/fuzz_%: tests/fuzz/fuzz_%.c tests/fuzz/fuzz.h
	$(call msg,FUZZ,$@)
	@mkdir -p $(@D)
	$(Q)$(CLANG) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(DEPFLAGS) $(INCLUDES) $< $(filter %.o,$^) \
		$(LIBS) -o $@

fuzz: $(FUZZ_BINS)
	@set -e; for n in $(FUZZ_NAMES); do \
		echo "== fuzz_$$n ($(FUZZ_SECONDS) s)"; \
		mkdir -p $(FUZZ)/corpus/$$n $(FUZZ)/artifacts/$$n; \
		$(FUZZ)/fuzz_$$n -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
			-print_final_stats=1 -artifact_prefix=$(FUZZ)/artifacts/$$n/ \
			$(FUZZ)/corpus/$$n tests/fuzz/corpus/$$n 2>$(FUZZ)/fuzz_$$n.log || \
			{ tail -60 $(FUZZ)/fuzz_$$n.log; echo "fuzz_$$n failed: reproducer in $(FUZZ)/artifacts/$$n/"; exit 1; }; \
		grep -E '^stat::number_of_executed_units|^Done' $(FUZZ)/fuzz_$$n.log || true; \
	done

e2e: llmtap
	tests/e2e/run.sh

# the llama.cpp compatibility matrix: every version of tests/compat/versions (each built once,
# cached by commit: about 8 minutes a version on 2 cores), written to COMPAT.md and README.md's
# table (COMPAT_FLAGS=--built-only leaves out the versions not built yet)
compat: llmtap
	tests/compat/run.sh --readme README.md $(COMPAT_FLAGS)

# its slice in `make test`: the versions marked ci, the table in .output/compat/COMPAT.md
compat-ci: llmtap
	tests/compat/run.sh --ci --out $(OUTPUT)/compat/COMPAT.md

# the README's test command: installs what is missing, builds, runs every test
test:
	tools/install-deps.sh
	$(MAKE) all
	$(MAKE) help-check
	$(MAKE) target
	LLMTAP_MODEL=$$(tools/make-model.sh) $(MAKE) unit
	$(MAKE) fuzz FUZZ_SECONDS=10
	$(MAKE) e2e
	$(MAKE) compat-ci
	$(MAKE) deploy-check
	$(MAKE) deb-check

# deploy/: the manifests against the Kubernetes schemas, and the capabilities they grant
# shown necessary and sufficient with capsh against real llama-servers
deploy-check: llmtap target
	tests/deploy/lint.sh
	tests/deploy/caps.sh

# builds deploy/Dockerfile with podman and runs attach and the daemon in the image
# (installs podman, runc and mmdebstrap; a few minutes; not part of `make test`)
image-check: llmtap target
	tests/deploy/image.sh

target:
	tools/build-llama.sh shared >/dev/null
	tools/make-model.sh >/dev/null
	tools/make-model.sh --no-high-byte-tokens >/dev/null

demo:
	tools/install-deps.sh
	$(MAKE) all
	tools/demo.sh

bench:
	tools/install-deps.sh
	$(MAKE) all $(OUTPUT)/otlp-bench
	$(OUTPUT)/otlp-bench
	tools/bench.sh

$(OUTPUT)/otlp-bench: tools/otlp-bench.c $(call o,export/otlp_config export/otlp_encode \
	export/otlp_export model/telemetry model/metrics model/hist model/route probe/event \
	target/resource target/proc lib/clock lib/json lib/text lib/util) $(PB_OBJS)
	$(call msg,CC,$@)
	$(Q)$(CC) $(CFLAGS) $(INCLUDES) $< $(filter %.o,$^) $(LIBS) -o $@

clean:
	rm -rf $(OUTPUT) llmtap llmtap_*.deb

-include $(shell find $(OUTPUT) -name '*.d' 2>/dev/null)
