# llmtap — one entry point: deps, all, test, demo, bench, clean
OUTPUT   := .output
ARCH     := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/')
CLANG    ?= clang
BPFTOOL  ?= bpftool
CC       ?= cc
VERSION  := 0.1.0

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE -DLLMTAP_VERSION='"$(VERSION)"'
# e.g. make EXTRA_CFLAGS="-fsanitize=address,undefined" EXTRA_LDFLAGS="-fsanitize=address,undefined"
CFLAGS   += $(EXTRA_CFLAGS)
INCLUDES := -I$(OUTPUT) -I$(OUTPUT)/proto -Iinclude -Iuser
LIBS     := -lbpf -lelf -lz -lm -ljson-c -lprotobuf-c -lcurl -lpthread $(EXTRA_LDFLAGS)
BPF_CFLAGS := -g -O2 -Wall -Werror -target bpf -D__TARGET_ARCH_$(ARCH) \
	-Ivmlinux/$(ARCH) -Iinclude

BPF_SRCS  := $(wildcard bpf/*.bpf.c)
BPF_OBJS  := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.bpf.o,$(BPF_SRCS))
SKELS     := $(patsubst bpf/%.bpf.c,$(OUTPUT)/%.skel.h,$(BPF_SRCS))
# OTLP messages: C from protoc-c, out of proto/ (OTLP 1.x field numbers)
PROTOS    := $(shell find proto -name '*.proto')
PB_SRCS   := $(patsubst proto/%.proto,$(OUTPUT)/proto/%.pb-c.c,$(PROTOS))
PB_HDRS   := $(PB_SRCS:.c=.h)
PB_OBJS   := $(PB_SRCS:.c=.o)
USER_SRCS := $(wildcard user/*.c)
USER_OBJS := $(patsubst user/%.c,$(OUTPUT)/%.o,$(USER_SRCS)) $(PB_OBJS)
LIB_OBJS  := $(filter-out $(OUTPUT)/main.o,$(USER_OBJS))
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(patsubst tests/unit/%.c,$(OUTPUT)/tests/%,$(UNIT_SRCS))

.SECONDARY:
.PHONY: all deps test unit e2e demo bench clean target deploy-check image-check
all: llmtap

deps:
	tools/install-deps.sh

$(OUTPUT) $(OUTPUT)/tests:
	mkdir -p $@

$(OUTPUT)/%.bpf.o: bpf/%.bpf.c include/*.h | $(OUTPUT)
	$(CLANG) $(BPF_CFLAGS) -c $< -o $@

$(OUTPUT)/%.skel.h: $(OUTPUT)/%.bpf.o
	$(BPFTOOL) gen skeleton $< > $@

$(OUTPUT)/proto/%.pb-c.c $(OUTPUT)/proto/%.pb-c.h: proto/%.proto $(PROTOS)
	@mkdir -p $(OUTPUT)/proto
	protoc-c --proto_path=proto --c_out=$(OUTPUT)/proto $<

$(OUTPUT)/proto/%.pb-c.o: $(OUTPUT)/proto/%.pb-c.c $(PB_HDRS)
	$(CC) $(CFLAGS) $(INCLUDES) -c $< -o $@

$(OUTPUT)/%.o: user/%.c $(wildcard user/*.h) include/*.h $(SKELS) $(PB_HDRS) | $(OUTPUT)
	$(CC) $(CFLAGS) $(INCLUDES) -c $< -o $@

llmtap: $(USER_OBJS)
	$(CC) $(CFLAGS) $^ $(LIBS) -o $@

$(OUTPUT)/tests/%: tests/unit/%.c tests/unit/unit.h $(LIB_OBJS) | $(OUTPUT)/tests
	$(CC) $(CFLAGS) $(INCLUDES) $< $(LIB_OBJS) $(LIBS) -lcmocka -o $@

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; $$t; done

e2e: llmtap
	tests/e2e/run.sh

# the README's test command: installs what is missing, builds, runs every test
test:
	tools/install-deps.sh
	$(MAKE) all
	$(MAKE) target
	LLMTAP_MODEL=$$(tools/make-model.sh) $(MAKE) unit
	$(MAKE) e2e
	$(MAKE) deploy-check

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

$(OUTPUT)/otlp-bench: tools/otlp-bench.c $(LIB_OBJS)
	$(CC) $(CFLAGS) $(INCLUDES) $< $(LIB_OBJS) $(LIBS) -o $@

clean:
	rm -rf $(OUTPUT) llmtap
