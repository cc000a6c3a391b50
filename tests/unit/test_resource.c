// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Resource detection: container and pod ids from cgroup paths, OTEL_RESOURCE_ATTRIBUTES. */
#include <errno.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "lib/util.h"
#include "target/resource.h"

#define CID "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

static void test_container_id(void **state)
{
	static const char *const with[] = {
		"0::/system.slice/docker-" CID ".scope\n",
		"12:pids:/docker/" CID "\n0::/\n",
		"0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_0000_1111_2222_333344445555.slice/cri-containerd-" CID ".scope\n",
		"0::/machine.slice/libpod-" CID ".scope/container\n",
		"0::/crio-" CID ".scope\n",
	};
	static const char *const without[] = {
		"0::/\n",
		"0::/user.slice/user-1000.slice/session-2.scope\n",
		"0::/docker-" "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcde.scope\n", /* 63 */
		"0::/docker-" CID "0.scope\n", /* 65 */
		"",
	};
	char id[80];
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(with); i++) {
		assert_true(resource_container_id(with[i], id, sizeof(id)));
		assert_string_equal(id, CID);
	}
	for (size_t i = 0; i < ARRAY_SIZE(without); i++)
		assert_false(resource_container_id(without[i], id, sizeof(id)));
	assert_false(resource_container_id(with[0], id, 64)); /* no room for 64 + NUL */
}

static void test_pod_uid(void **state)
{
	char uid[40];
	(void)state;

	assert_true(resource_pod_uid("0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_0000_1111_2222_333344445555.slice/x\n",
				     uid, sizeof(uid)));
	assert_string_equal(uid, "1b2c3d4e-0000-1111-2222-333344445555");
	assert_true(resource_pod_uid("4:memory:/kubepods/besteffort/pod1b2c3d4e-0000-1111-2222-333344445555/" CID "\n",
				     uid, sizeof(uid)));
	assert_string_equal(uid, "1b2c3d4e-0000-1111-2222-333344445555");
	assert_false(resource_pod_uid("0::/system.slice/docker-" CID ".scope\n", uid, sizeof(uid)));
	assert_false(resource_pod_uid("0::/pod1b2c3d4e-0000-1111-2222-33334444555\n", uid, sizeof(uid)));
	assert_false(resource_pod_uid("0::/podcast.service\n", uid, sizeof(uid)));
}

static void test_parse_attrs(void **state)
{
	struct resource *r = calloc(1, sizeof(*r));
	(void)state;

	assert_int_equal(resource_parse_attrs(r, "a=1, b = two ,c=x%2Cy%3Dz,d="), 0);
	assert_string_equal(resource_get(r, "a"), "1");
	assert_string_equal(resource_get(r, "b"), "two");
	assert_string_equal(resource_get(r, "c"), "x,y=z");
	assert_string_equal(resource_get(r, "d"), "");
	assert_null(resource_get(r, "e"));
	/* a later value replaces an earlier one */
	assert_int_equal(resource_parse_attrs(r, "a=2"), 0);
	assert_string_equal(resource_get(r, "a"), "2");
	assert_int_equal(r->n, 4);
	assert_int_equal(resource_parse_attrs(r, ""), 0);
	assert_int_equal(resource_parse_attrs(r, "novalue"), -EINVAL);
	assert_int_equal(resource_parse_attrs(r, "=x"), -EINVAL);
	assert_int_equal(resource_parse_attrs(r, "k=%zz"), -EINVAL);
	assert_int_equal(resource_parse_attrs(r, "k=%2"), -EINVAL);
	free(r);
}

static void test_limits(void **state)
{
	struct resource *r = calloc(1, sizeof(*r));
	char key[32], big[400];
	(void)state;

	for (int i = 0; i < RESOURCE_MAX_ATTRS + 5; i++) {
		snprintf(key, sizeof(key), "k%d", i);
		resource_set(r, key, "v");
	}
	assert_int_equal(r->n, RESOURCE_MAX_ATTRS);
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	resource_set(r, "k0", big);
	assert_int_equal(strlen(resource_get(r, "k0")), sizeof(r->attrs[0].value) - 1);
	resource_set(r, NULL, "v");
	resource_set(r, "", "v");
	resource_set(r, "k1", NULL);
	assert_string_equal(resource_get(r, "k1"), "v");
	free(r);
}

static void test_detect_self(void **state)
{
	struct resource *r = calloc(1, sizeof(*r));
	struct resource_target t = { .pid = getpid(), .comm = "test_resource", .model_path = "",
				     .model_name = "m", .model_arch = "llama" };
	char err[256], pid[16];
	(void)state;

	unsetenv("OTEL_SERVICE_NAME");
	unsetenv("OTEL_RESOURCE_ATTRIBUTES");
	assert_int_equal(resource_detect(r, &t, err, sizeof(err)), 0);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	assert_string_equal(resource_get(r, "process.pid"), pid);
	assert_string_equal(resource_get(r, "service.name"), "test_resource");
	assert_string_equal(resource_get(r, "llmtap.model.name"), "m");
	assert_null(resource_get(r, "llmtap.model.file"));
	assert_int_equal(strlen(resource_get(r, "service.instance.id")), 36);
	{
		/* stable for the same process */
		char first[64];

		snprintf(first, sizeof(first), "%s", resource_get(r, "service.instance.id"));
		assert_int_equal(resource_detect(r, &t, err, sizeof(err)), 0);
		assert_string_equal(resource_get(r, "service.instance.id"), first);
	}
	setenv("OTEL_SERVICE_NAME", "svc", 1);
	setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attrs,x=y", 1);
	assert_int_equal(resource_detect(r, &t, err, sizeof(err)), 0);
	assert_string_equal(resource_get(r, "service.name"), "svc"); /* OTEL_SERVICE_NAME wins */
	assert_string_equal(resource_get(r, "x"), "y");
	setenv("OTEL_RESOURCE_ATTRIBUTES", "broken", 1);
	assert_int_equal(resource_detect(r, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "OTEL_RESOURCE_ATTRIBUTES"));
	unsetenv("OTEL_SERVICE_NAME");
	unsetenv("OTEL_RESOURCE_ATTRIBUTES");
	free(r);
}

/*
 * A target whose environment claims identities (process.pid, instance id,
 * container, pod uid, llmtap's own attributes) gets none of them; what a
 * target may name (service, namespace, pod name, its own keys) it gets.
 */
static void test_target_env_cannot_claim_identity(void **state)
{
	struct resource *r = calloc(1, sizeof(*r));
	struct resource_target t = { .comm = "sleep", .model_path = "", .model_name = "",
				     .model_arch = "", .from_env = true };
	char *const argv[] = { "sleep", "30", NULL };
	char *const envp[] = {
		"OTEL_RESOURCE_ATTRIBUTES=process.pid=1,service.instance.id=stolen,"
		"container.id=" CID ",k8s.pod.uid=other-pod,llmtap.model.name=fake,"
		"host.name=elsewhere,service.version=9,deployment.environment=prod",
		"OTEL_SERVICE_NAME=chat", "K8S_POD_NAME=chat-0", "POD_NAMESPACE=ml", NULL
	};
	char err[256], pid[16], id[64];
	int fds[2];
	pid_t child;

	(void)state;
	assert_non_null(r);
	unsetenv("OTEL_SERVICE_NAME");
	unsetenv("OTEL_RESOURCE_ATTRIBUTES");
	assert_int_equal(pipe(fds), 0);
	child = fork();
	assert_true(child >= 0);
	if (!child) {
		close(fds[0]); /* the exec closes fds[1]: the parent reads EOF once the new environ is in place */
		fcntl(fds[1], F_SETFD, FD_CLOEXEC);
		execve("/bin/sleep", argv, envp);
		_exit(127);
	}
	close(fds[1]);
	assert_int_equal(read(fds[0], err, 1), 0);
	close(fds[0]);
	t.pid = child;
	t.from_env = false;
	assert_int_equal(resource_detect(r, &t, err, sizeof(err)), 0);
	snprintf(id, sizeof(id), "%s", resource_get(r, "service.instance.id"));
	t.from_env = true;
	assert_int_equal(resource_detect(r, &t, err, sizeof(err)), 0);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	snprintf(pid, sizeof(pid), "%d", (int)child);
	assert_string_equal(resource_get(r, "process.pid"), pid);
	assert_string_equal(resource_get(r, "service.instance.id"), id);
	assert_null(resource_get(r, "container.id"));
	assert_null(resource_get(r, "k8s.pod.uid"));
	assert_null(resource_get(r, "llmtap.model.name"));
	assert_string_not_equal(resource_get(r, "host.name"), "elsewhere");
	/* what a target may say of itself */
	assert_string_equal(resource_get(r, "service.name"), "chat");
	assert_string_equal(resource_get(r, "service.version"), "9");
	assert_string_equal(resource_get(r, "deployment.environment"), "prod");
	assert_string_equal(resource_get(r, "k8s.pod.name"), "chat-0");
	assert_string_equal(resource_get(r, "k8s.namespace.name"), "ml");
	free(r);
}

static void test_pairs(void **state)
{
	struct resource r = { .n = 0 };
	const char *kv[2 * RESOURCE_MAX_ATTRS + 1], *id[5];

	(void)state;
	resource_set(&r, "service.name", "llama-server");
	resource_set(&r, "process.pid", "42");
	resource_set(&r, "service.instance.id", "abc");
	resource_pairs(&r, kv);
	assert_string_equal(kv[0], "service.name");
	assert_string_equal(kv[1], "llama-server");
	assert_string_equal(kv[5], "abc");
	assert_null(kv[6]);
	resource_id_pairs(&r, id);
	assert_string_equal(id[0], "service.instance.id");
	assert_string_equal(id[1], "abc");
	assert_string_equal(id[2], "process.pid");
	assert_string_equal(id[3], "42");
	assert_null(id[4]);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_pairs),
		cmocka_unit_test(test_target_env_cannot_claim_identity),
		cmocka_unit_test(test_container_id),
		cmocka_unit_test(test_pod_uid),
		cmocka_unit_test(test_parse_attrs),
		cmocka_unit_test(test_limits),
		cmocka_unit_test(test_detect_self),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
