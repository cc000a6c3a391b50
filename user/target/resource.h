/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The OpenTelemetry resource of a traced process: who produced the telemetry
 * (service, process, host, container, pod, model). Exporters attach it to
 * everything they send; Prometheus shows it as target_info.
 */
#ifndef LLMTAP_RESOURCE_H
#define LLMTAP_RESOURCE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define RESOURCE_MAX_ATTRS 32

struct resource_attr {
	char key[64];
	char value[256];
};

struct resource {
	int n;
	struct resource_attr attrs[RESOURCE_MAX_ATTRS];
};

struct resource_target {
	pid_t pid;
	const char *comm;       /* the target's name */
	const char *model_path; /* the .gguf it maps, as it sees it; "" when none */
	const char *model_name; /* general.name, "" when unknown */
	const char *model_arch; /* general.architecture, "" when unknown */
	bool from_env;          /* the target's environment names it too */
};

/*
 * Detect the resource of a target. K8S_NODE_NAME gives k8s.node.name; with
 * from_env, the target's own environment (K8S_POD_NAME or POD_NAME,
 * K8S_NAMESPACE or POD_NAMESPACE, OTEL_RESOURCE_ATTRIBUTES, OTEL_SERVICE_NAME)
 * comes next; then llmtap's OTEL_RESOURCE_ATTRIBUTES (key=value,...,
 * percent-encoded) and OTEL_SERVICE_NAME, in that order, override what was
 * detected. Returns 0, or -EINVAL with a reason in err when
 * OTEL_RESOURCE_ATTRIBUTES is malformed.
 */
int resource_detect(struct resource *r, const struct resource_target *t, char *err, size_t errlen);

/* Set (or replace) one attribute; values are cut to fit. */
void resource_set(struct resource *r, const char *key, const char *value);
/* The value of key, or NULL. */
const char *resource_get(const struct resource *r, const char *key);
/* Its attributes as key, value, ..., NULL (pointers into r), e.g. for target_info. */
void resource_pairs(const struct resource *r, const char *kv[2 * RESOURCE_MAX_ATTRS + 1]);
/* What tells one process's series from another's on a shared endpoint:
 * service.instance.id and process.pid, as key, value, ..., NULL. */
void resource_id_pairs(const struct resource *r, const char *kv[5]);

/* Parse OTEL_RESOURCE_ATTRIBUTES syntax into r. 0 or -EINVAL. */
int resource_parse_attrs(struct resource *r, const char *s);
/* The container id (64 hex digits) in a /proc/PID/cgroup text; false when none. */
bool resource_container_id(const char *cgroup, char *id, size_t len);
/* The Kubernetes pod UID in a /proc/PID/cgroup text; false when none. */
bool resource_pod_uid(const char *cgroup, char *uid, size_t len);

#endif
