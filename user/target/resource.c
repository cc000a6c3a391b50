// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/resource.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lib/text.h"
#include "lib/util.h"
#include "target/proc.h"

void resource_set(struct resource *r, const char *key, const char *value)
{
	struct resource_attr *a = NULL;
	char k[sizeof(a->key)];

	if (!key || !*key || !value)
		return;
	/* looked up as it is stored: valid UTF-8, cut to fit */
	utf8_sanitize(k, sizeof(k), key, strlen(key));
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->attrs[i].key, k))
			a = &r->attrs[i];
	if (!a) {
		if (r->n >= RESOURCE_MAX_ATTRS)
			return;
		a = &r->attrs[r->n++];
		memcpy(a->key, k, sizeof(k));
	}
	/* values may come from a target: valid UTF-8, cut on a character boundary */
	utf8_sanitize(a->value, sizeof(a->value), value, strlen(value));
}

const char *resource_get(const struct resource *r, const char *key)
{
	for (int i = 0; i < r->n; i++)
		if (!strcmp(r->attrs[i].key, key))
			return r->attrs[i].value;
	return NULL;
}

static void trim(char *s)
{
	size_t n = strlen(s), i = 0;

	while (n && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	while (isspace((unsigned char)s[i]))
		i++;
	memmove(s, s + i, n - i + 1);
}

int resource_parse_attrs(struct resource *r, const char *s)
{
	while (s && *s) {
		const char *end = strchr(s, ','), *eq;
		char key[64], value[256];
		size_t n = end ? (size_t)(end - s) : strlen(s);

		eq = memchr(s, '=', n);
		if (!eq)
			return -EINVAL;
		/* decoded, then trimmed; what does not fit is cut off */
		if (pct_decode(s, (size_t)(eq - s), key, sizeof(key)) < 0 ||
		    pct_decode(eq + 1, n - (size_t)(eq - s) - 1, value, sizeof(value)) < 0)
			return -EINVAL;
		trim(key);
		trim(value);
		if (!key[0])
			return -EINVAL;
		resource_set(r, key, value);
		s = end ? end + 1 : s + n;
	}
	return 0;
}

static bool is_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool resource_container_id(const char *cg, char *id, size_t len)
{
	const char *found = NULL;

	/* the innermost run of exactly 64 hex digits: docker-<id>.scope, /docker/<id>,
	 * cri-containerd-<id>.scope, crio-<id>.scope, libpod-<id>.scope ... */
	for (const char *p = cg; p && *p; p++) {
		size_t n = 0;

		if (p > cg && is_hex(p[-1]))
			continue;
		while (is_hex(p[n]))
			n++;
		if (n == 64)
			found = p;
		p += n ? n - 1 : 0;
	}
	if (!found || len < 65)
		return false;
	memcpy(id, found, 64);
	id[64] = '\0';
	return true;
}

bool resource_pod_uid(const char *cg, char *uid, size_t len)
{
	static const int groups[] = { 8, 4, 4, 4, 12 };
	const char *found = NULL;

	/* kubepods-burstable-pod<8_4_4_4_12>.slice (systemd) or /kubepods/burstable/pod<8-4-4-4-12>/ */
	for (const char *p = strstr(cg, "pod"); p; p = strstr(p + 3, "pod")) {
		const char *q = p + 3;
		bool ok = true;

		for (int g = 0; g < 5 && ok; g++) {
			for (int i = 0; i < groups[g]; i++, q++)
				ok = ok && is_hex(*q);
			if (g < 4)
				ok = ok && (*q == '-' || *q == '_') && q++;
		}
		if (ok && !is_hex(*q) && *q != '-' && *q != '_')
			found = p + 3;
	}
	if (!found || len < 37)
		return false;
	for (int i = 0; i < 36; i++)
		uid[i] = found[i] == '_' ? '-' : found[i];
	uid[36] = '\0';
	return true;
}

static int read_small_file(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "re");
	size_t n;

	if (!f)
		return -errno;
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
	return 0;
}

/* A stable id for this process's life: boot id, pid and start time, as a UUID. */
static void instance_id(pid_t pid, char *out, size_t len)
{
	char boot[64] = "", key[256];
	uint64_t h[2] = { 0xcbf29ce484222325ull, 0x84222325cbf29ce4ull };
	const char *p;

	read_small_file("/proc/sys/kernel/random/boot_id", boot, sizeof(boot));
	snprintf(key, sizeof(key), "%s/%d/%llu", boot, (int)pid,
		 (unsigned long long)proc_start_time(pid));
	for (int k = 0; k < 2; k++) /* two FNV-1a 64 with different offsets */
		for (p = key; *p; p++)
			h[k] = (h[k] ^ (unsigned char)*p) * 0x100000001b3ull;
	h[0] = (h[0] & ~0xf000ull) | 0x5000ull;                      /* version 5-style */
	h[1] = (h[1] & 0x3fffffffffffffffull) | 0x8000000000000000ull; /* RFC 4122 variant */
	snprintf(out, len, "%08llx-%04llx-%04llx-%04llx-%012llx",
		 (unsigned long long)(h[0] >> 32), (unsigned long long)((h[0] >> 16) & 0xffff),
		 (unsigned long long)(h[0] & 0xffff), (unsigned long long)(h[1] >> 48),
		 (unsigned long long)(h[1] & 0xffffffffffffull));
}

/* The value of name in a NUL-separated environment block, or NULL. */
static const char *env_in(const char *block, size_t len, const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < len; i += strlen(block + i) + 1)
		if (!strncmp(block + i, name, n) && block[i + n] == '=' && block[i + n + 1])
			return block + i + n + 1;
	return NULL;
}

/*
 * The attributes only the kernel or llmtap can tell: a target's environment
 * never sets them, so a pod cannot pose as another process, container or pod,
 * nor collide with its series. k8s.node.name is taken from the target only when
 * llmtap has none (no K8S_NODE_NAME of its own).
 */
static bool identity_key(const char *key)
{
	static const char *const keys[] = {
		"service.instance.id", "process.pid", "process.executable.name",
		"process.executable.path", "host.name", "container.id", "k8s.pod.uid",
		"k8s.node.name", "telemetry.sdk.name", "telemetry.sdk.version",
	};

	if (!strncmp(key, "llmtap.", 7))
		return true;
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (!strcmp(key, keys[i]))
			return true;
	return false;
}

/* Take what the target said (claimed: r and the target's additions) except identities. */
static void merge_target_claims(struct resource *r, const struct resource *claimed)
{
	for (int i = 0; i < claimed->n; i++) {
		const struct resource_attr *a = &claimed->attrs[i];
		const char *ours = resource_get(r, a->key);

		if (!identity_key(a->key) || (!ours && !strcmp(a->key, "k8s.node.name")))
			resource_set(r, a->key, a->value);
	}
}

/*
 * What the target says about itself in its environment: the Kubernetes names a
 * manifest passes through the downward API, and its own OpenTelemetry settings,
 * less the identity attributes (identity_key). A malformed
 * OTEL_RESOURCE_ATTRIBUTES there is the target's business: skipped.
 */
static void apply_target_env(struct resource *r, pid_t pid)
{
	static const char *const k8s[][3] = {
		{ "k8s.pod.name", "K8S_POD_NAME", "POD_NAME" },
		{ "k8s.namespace.name", "K8S_NAMESPACE", "POD_NAMESPACE" },
		{ "k8s.node.name", "K8S_NODE_NAME", "NODE_NAME" },
	};
	char path[64], *block = malloc(65536);
	struct resource *claimed = malloc(sizeof(*claimed));
	const char *v;
	ssize_t len;
	int fd;

	if (!block || !claimed)
		goto out;
	snprintf(path, sizeof(path), "/proc/%d/environ", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	len = fd >= 0 ? read(fd, block, 65535) : -1;
	if (fd >= 0)
		close(fd);
	if (len <= 0)
		goto out;
	block[len] = '\0';
	memset(claimed, 0, sizeof(*claimed));
	for (size_t i = 0; i < ARRAY_SIZE(k8s); i++)
		if ((v = env_in(block, (size_t)len, k8s[i][1])) ||
		    (v = env_in(block, (size_t)len, k8s[i][2])))
			resource_set(claimed, k8s[i][0], v);
	if ((v = env_in(block, (size_t)len, "OTEL_RESOURCE_ATTRIBUTES"))) {
		struct resource tmp = *claimed;

		if (!resource_parse_attrs(&tmp, v))
			*claimed = tmp;
	}
	if ((v = env_in(block, (size_t)len, "OTEL_SERVICE_NAME")))
		resource_set(claimed, "service.name", v);
	merge_target_claims(r, claimed);
out:
	free(claimed);
	free(block);
}

void resource_pairs(const struct resource *r, const char *kv[2 * RESOURCE_MAX_ATTRS + 1])
{
	for (int i = 0; i < r->n; i++) {
		kv[2 * i] = r->attrs[i].key;
		kv[2 * i + 1] = r->attrs[i].value;
	}
	kv[2 * r->n] = NULL;
}

void resource_id_pairs(const struct resource *r, const char *kv[5])
{
	kv[0] = "service.instance.id";
	kv[1] = resource_get(r, "service.instance.id");
	kv[2] = "process.pid";
	kv[3] = resource_get(r, "process.pid");
	kv[4] = NULL;
}

int resource_detect(struct resource *r, const struct resource_target *t, char *err, size_t errlen)
{
	char buf[4096], path[64], exe[1024];
	const char *env;

	memset(r, 0, sizeof(*r));
	resource_set(r, "service.name", t->comm && t->comm[0] ? t->comm : "unknown_service");
	instance_id(t->pid, buf, sizeof(buf));
	resource_set(r, "service.instance.id", buf);
	snprintf(buf, sizeof(buf), "%d", (int)t->pid);
	resource_set(r, "process.pid", buf);
	resource_set(r, "process.executable.name", t->comm);
	proc_exe(t->pid, exe, sizeof(exe));
	if (exe[0])
		resource_set(r, "process.executable.path", exe);
	/* in a pod, gethostname() is the pod's name: the node's comes from the downward API */
	env = getenv("K8S_NODE_NAME");
	if (env && *env) {
		resource_set(r, "host.name", env);
	} else if (!gethostname(buf, sizeof(buf))) {
		buf[sizeof(buf) - 1] = '\0';
		resource_set(r, "host.name", buf);
	}
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)t->pid);
	if (!read_small_file(path, buf, sizeof(buf))) {
		char id[72];

		if (resource_container_id(buf, id, sizeof(id)))
			resource_set(r, "container.id", id);
		if (resource_pod_uid(buf, id, sizeof(id)))
			resource_set(r, "k8s.pod.uid", id);
	}
	if (t->model_path && t->model_path[0])
		resource_set(r, "llmtap.model.file", t->model_path);
	if (t->model_name && t->model_name[0])
		resource_set(r, "llmtap.model.name", t->model_name);
	if (t->model_arch && t->model_arch[0])
		resource_set(r, "llmtap.model.architecture", t->model_arch);
	resource_set(r, "telemetry.sdk.name", "llmtap");
	resource_set(r, "telemetry.sdk.version", LLMTAP_VERSION);
	/* a DaemonSet passes its node's name through the downward API */
	env = getenv("K8S_NODE_NAME");
	if (env && *env)
		resource_set(r, "k8s.node.name", env);
	if (t->from_env)
		apply_target_env(r, t->pid);

	env = getenv("OTEL_RESOURCE_ATTRIBUTES");
	if (env && resource_parse_attrs(r, env)) {
		snprintf(err, errlen,
			 "OTEL_RESOURCE_ATTRIBUTES is not key=value,key=value (percent-encoded): '%s'", env);
		return -EINVAL;
	}
	env = getenv("OTEL_SERVICE_NAME");
	if (env && *env)
		resource_set(r, "service.name", env);
	return 0;
}
