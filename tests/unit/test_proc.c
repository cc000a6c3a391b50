// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/target/proc.c: /proc/PID/maps parsing, map walking, checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "lib/util.h"
#include "target/proc.h"

static void test_parse_file_mapping(void **state)
{
	struct proc_map m;
	(void)state;

	assert_int_equal(proc_parse_maps_line(
		"7f3a1c200000-7f3a1c3f5000 r-xp 00028000 fd:01 1311934                    /usr/lib/x86_64-linux-gnu/libc.so.6\n",
		&m), 0);
	assert_true(m.start == 0x7f3a1c200000ull);
	assert_true(m.end == 0x7f3a1c3f5000ull);
	assert_true(m.offset == 0x28000ull);
	assert_int_equal(m.dev_major, 0xfd);
	assert_int_equal(m.dev_minor, 0x01);
	assert_true(m.inode == 1311934ull);
	assert_string_equal(m.perms, "r-xp");
	assert_string_equal(m.path, "/usr/lib/x86_64-linux-gnu/libc.so.6");
}

static void test_parse_anonymous(void **state)
{
	struct proc_map m;
	(void)state;

	/* the kernel ends an unnamed mapping's line with a space */
	assert_int_equal(proc_parse_maps_line(
		"7f3a1c5f0000-7f3a1c5fd000 rw-p 00000000 00:00 0 \n", &m), 0);
	assert_true(m.start == 0x7f3a1c5f0000ull);
	assert_true(m.end == 0x7f3a1c5fd000ull);
	assert_string_equal(m.perms, "rw-p");
	assert_true(m.inode == 0);
	assert_string_equal(m.path, "");

	/* ... and without the space or the newline */
	assert_int_equal(proc_parse_maps_line(
		"7f3a1c5f0000-7f3a1c5fd000 rw-p 00000000 00:00 0", &m), 0);
	assert_string_equal(m.path, "");
}

static void test_parse_pseudo_paths(void **state)
{
	struct proc_map m;
	(void)state;

	assert_int_equal(proc_parse_maps_line(
		"7ffd5a1fe000-7ffd5a202000 r-xp 00000000 00:00 0                          [vdso]\n",
		&m), 0);
	assert_string_equal(m.path, "[vdso]");
	assert_string_equal(m.perms, "r-xp");

	assert_int_equal(proc_parse_maps_line(
		"ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]\n",
		&m), 0);
	assert_true(m.start == 0xffffffffff600000ull);
	assert_true(m.end == 0xffffffffff601000ull);
	assert_string_equal(m.path, "[vsyscall]");
	assert_string_equal(m.perms, "--xp");
}

static void test_parse_path_with_spaces(void **state)
{
	struct proc_map m;
	(void)state;

	assert_int_equal(proc_parse_maps_line(
		"55d0c8a00000-55d0c8b00000 r-xp 00001000 08:02 42                         /opt/my models/llama server/libllama.so\n",
		&m), 0);
	assert_string_equal(m.path, "/opt/my models/llama server/libllama.so");
	assert_true(m.offset == 0x1000ull);
	assert_int_equal(m.dev_major, 8);
	assert_int_equal(m.dev_minor, 2);
	assert_true(m.inode == 42);
}

static void test_parse_deleted(void **state)
{
	struct proc_map m;
	(void)state;

	/* the parser keeps the raw text; target.c strips the suffix itself */
	assert_int_equal(proc_parse_maps_line(
		"7f0000000000-7f0000100000 r-xp 00000000 fd:01 99                         /tmp/libllama.so (deleted)\n",
		&m), 0);
	assert_string_equal(m.path, "/tmp/libllama.so (deleted)");
	assert_string_equal(m.perms, "r-xp");
}

static void test_parse_malformed(void **state)
{
	static const char *const bad[] = {
		"",
		"\n",
		"garbage",
		"7f0000000000 r-xp 00000000 fd:01 99 /x",            /* no end address */
		"7f0000000000-7f0000100000",                          /* nothing after range */
		"7f0000000000-7f0000100000 r-xp 00000000 fd:01",      /* no inode */
		"7f0000000000-7f0000100000 r-xp 00000000 fd 99 /x",   /* no dev minor */
		"7f0000100000-7f0000000000 r-xp 00000000 fd:01 99 /x", /* end < start */
		"7f0000000000-7f0000100000 rw 00000000 fd:01 99 /x",  /* short perms */
		"7f0000000000-7f0000100000 rw-pq 00000000 fd:01 99 /x", /* long perms */
		"zz-yy r-xp 00000000 fd:01 99 /x",
	};
	struct proc_map m;
	(void)state;

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		int ret = proc_parse_maps_line(bad[i], &m);

		if (ret != -EINVAL)
			fail_msg("line %zu \"%s\": got %d, want -EINVAL", i, bad[i], ret);
	}
}

struct find_exe {
	char exe[PATH_MAX];
	int seen;
	int exe_exec;      /* executable mappings of our own binary */
	int bad_perms;
};

static int find_exe_cb(const struct proc_map *m, void *arg)
{
	struct find_exe *f = arg;

	f->seen++;
	if (strlen(m->perms) != 4 || m->end <= m->start)
		f->bad_perms++;
	if (m->perms[2] == 'x' && !strcmp(m->path, f->exe))
		f->exe_exec++;
	return 0;
}

static void test_for_each_map_self(void **state)
{
	struct find_exe f = { 0 };
	ssize_t n;
	(void)state;

	n = readlink("/proc/self/exe", f.exe, sizeof(f.exe) - 1);
	assert_true(n > 0);
	f.exe[n] = '\0';

	assert_int_equal(proc_for_each_map(getpid(), find_exe_cb, &f), 0);
	assert_true(f.seen > 5);
	assert_int_equal(f.bad_perms, 0);
	assert_int_equal(f.exe_exec, 1);
}

struct contains {
	uintptr_t addr;
	struct proc_map hit;
	int found;
};

static int contains_cb(const struct proc_map *m, void *arg)
{
	struct contains *c = arg;

	if (c->addr >= m->start && c->addr < m->end) {
		c->hit = *m;
		c->found++;
	}
	return 0;
}

static void test_for_each_map_stack_and_heap(void **state)
{
	struct contains c = { 0 };
	int local = 0;
	void *heap = malloc(64);
	(void)state;

	c.addr = (uintptr_t)&local;
	assert_int_equal(proc_for_each_map(getpid(), contains_cb, &c), 0);
	assert_int_equal(c.found, 1);
	assert_string_equal(c.hit.path, "[stack]");
	assert_int_equal(c.hit.perms[0], 'r');
	assert_int_equal(c.hit.perms[1], 'w');

	memset(&c, 0, sizeof(c));
	c.addr = (uintptr_t)heap;
	assert_int_equal(proc_for_each_map(getpid(), contains_cb, &c), 0);
	assert_int_equal(c.found, 1);
	assert_int_equal(c.hit.perms[1], 'w');
	free(heap);
}

static int stop_cb(const struct proc_map *m, void *arg)
{
	int *calls = arg;
	(void)m;

	return ++*calls == 3 ? 42 : 0;
}

static int fail_cb(const struct proc_map *m, void *arg)
{
	int *calls = arg;
	(void)m;

	++*calls;
	return -7;
}

static void test_for_each_map_early_stop(void **state)
{
	int calls = 0;
	(void)state;

	assert_int_equal(proc_for_each_map(getpid(), stop_cb, &calls), 42);
	assert_int_equal(calls, 3);

	calls = 0;
	assert_int_equal(proc_for_each_map(getpid(), fail_cb, &calls), -7);
	assert_int_equal(calls, 1);
}

static pid_t reaped_pid(void)
{
	pid_t pid = fork();
	int status;

	assert_true(pid >= 0);
	if (pid == 0)
		_exit(0);
	assert_int_equal(waitpid(pid, &status, 0), pid);
	return pid;
}

static void test_for_each_map_no_process(void **state)
{
	int calls = 0;
	(void)state;

	assert_int_equal(proc_for_each_map(reaped_pid(), stop_cb, &calls), -ENOENT);
	assert_int_equal(calls, 0);
}

static void test_check(void **state)
{
	(void)state;

	assert_int_equal(proc_check(getpid()), 0);
	assert_int_equal(proc_check(getppid()), 0);
	assert_int_equal(proc_check(1), 0);
	assert_int_equal(proc_check(reaped_pid()), -ESRCH);
	assert_int_equal(proc_check(0), -EINVAL);
	assert_int_equal(proc_check(-1), -EINVAL);
	assert_int_equal(proc_check(-getpid()), -EINVAL);
}

static void test_comm(void **state)
{
	char want[16], buf[16], tiny[4];
	(void)state;

	snprintf(want, sizeof(want), "%s", program_invocation_short_name);
	proc_comm(getpid(), buf, sizeof(buf));
	assert_string_equal(buf, want);
	assert_null(strchr(buf, '\n'));

	proc_comm(getpid(), tiny, sizeof(tiny));
	assert_int_equal(strlen(tiny), 3);
	assert_memory_equal(tiny, want, 3);

	proc_comm(reaped_pid(), buf, sizeof(buf));
	assert_string_equal(buf, "?");
}

static void test_root_path(void **state)
{
	char out[PATH_MAX], small[24];
	const char *want = "/proc/1234/root/usr/lib/libllama.so";
	(void)state;

	assert_int_equal(proc_root_path(1234, "/usr/lib/libllama.so", out, sizeof(out)), 0);
	assert_string_equal(out, want);

	assert_int_equal(proc_root_path(1, "/", out, sizeof(out)), 0);
	assert_string_equal(out, "/proc/1/root/");

	/* "/proc/1234/root/a/b/c" is 21 chars: fits in 22 bytes, not in 21 */
	assert_int_equal(proc_root_path(1234, "/a/b/c", small, 22), 0);
	assert_string_equal(small, "/proc/1234/root/a/b/c");
	assert_int_equal(proc_root_path(1234, "/a/b/c", small, 21), -ENAMETOOLONG);
	assert_int_equal(proc_root_path(1234, "/usr/lib/libllama.so", small, sizeof(small)),
			 -ENAMETOOLONG);
}

static void test_map_file(void **state)
{
	struct proc_map m;
	char path[PATH_MAX], host[PATH_MAX];

	(void)state;
	assert_int_equal(proc_parse_maps_line(
		"7f00aa000000-7f00aa100000 r-xp 00000000 fd:01 42 /opt/llama/libllama.so (deleted)\n", &m), 0);
	assert_int_equal(proc_map_file(4242, &m, path, sizeof(path), host, sizeof(host)), 0);
	assert_string_equal(path, "/opt/llama/libllama.so");
	assert_string_equal(host, "/proc/4242/map_files/7f00aa000000-7f00aa100000");
	assert_int_equal(proc_parse_maps_line(
		"7f00aa000000-7f00aa100000 r-xp 00000000 fd:01 42 /opt/llama/libllama.so\n", &m), 0);
	assert_int_equal(proc_map_file(4242, &m, path, sizeof(path), host, sizeof(host)), 0);
	assert_string_equal(path, "/opt/llama/libllama.so");
	assert_string_equal(host, "/proc/4242/root/opt/llama/libllama.so");
}

static void test_start_time_and_exe(void **state)
{
	char exe[PATH_MAX], want[PATH_MAX];
	ssize_t n;
	pid_t child;
	uint64_t mine = proc_start_time(getpid());

	(void)state;
	assert_true(mine > 0);
	child = fork();
	if (!child) {
		pause();
		_exit(0);
	}
	/* a process started after this one started no earlier */
	assert_true(proc_start_time(child) >= mine);
	kill(child, SIGKILL);
	waitpid(child, NULL, 0);
	assert_int_equal(proc_start_time(child), 0);
	proc_exe(getpid(), exe, sizeof(exe));
	n = readlink("/proc/self/exe", want, sizeof(want) - 1);
	want[n > 0 ? n : 0] = '\0';
	assert_string_equal(exe, want);
	proc_exe(child, exe, sizeof(exe));
	assert_string_equal(exe, "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_file_mapping),
		cmocka_unit_test(test_parse_anonymous),
		cmocka_unit_test(test_parse_pseudo_paths),
		cmocka_unit_test(test_parse_path_with_spaces),
		cmocka_unit_test(test_parse_deleted),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_for_each_map_self),
		cmocka_unit_test(test_for_each_map_stack_and_heap),
		cmocka_unit_test(test_for_each_map_early_stop),
		cmocka_unit_test(test_for_each_map_no_process),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_comm),
		cmocka_unit_test(test_root_path),
		cmocka_unit_test(test_map_file),
		cmocka_unit_test(test_start_time_and_exe),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
