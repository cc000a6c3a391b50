// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/target/proc.c: /proc/PID/maps parsing, map walking, checks. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <linux/capability.h>
#include <signal.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
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

static void test_family(void **state)
{
	pid_t child, grandchild = 0, kids[8];
	int fds[2], n;
	char buf[64];

	(void)state;
	/* a comm with ") " in it cannot shift the fields after it */
	assert_int_equal(proc_stat_ppid("42 (a) b) S 17 42 42 0 -1"), 17);
	assert_int_equal(proc_stat_ppid("42 (x"), 0);
	assert_int_equal(proc_stat_ppid(""), 0);
	assert_int_equal(proc_ppid(getpid()), getppid());
	assert_int_equal(pipe(fds), 0);
	child = fork();
	if (!child) { /* a child with a child of its own */
		pid_t g = fork();

		if (!g) {
			pause();
			_exit(0);
		}
		if (write(fds[1], &g, sizeof(g)) != sizeof(g))
			_exit(1);
		waitpid(g, NULL, 0); /* reaped here: no zombie left behind */
		_exit(0);
	}
	assert_int_equal(read(fds[0], &grandchild, sizeof(grandchild)), sizeof(grandchild));
	close(fds[0]);
	close(fds[1]);
	assert_true(proc_descends_from(child, getpid()));
	assert_true(proc_descends_from(grandchild, getpid()));
	assert_true(proc_descends_from(grandchild, child));
	assert_false(proc_descends_from(getpid(), child));
	assert_false(proc_descends_from(child, child)); /* not its own descendant */
	n = proc_children(getpid(), kids, 8);
	assert_int_equal(n, 1);
	assert_int_equal(kids[0], child);
	n = proc_children(child, kids, 8);
	assert_int_equal(n, 1);
	assert_int_equal(kids[0], grandchild);
	assert_int_equal(proc_children(getpid(), kids, 0), 0);
	/* cmdline: NUL-separated, cut to the buffer, always terminated */
	n = (int)proc_read_small(getpid(), "cmdline", buf, sizeof(buf));
	assert_true(n > 0 && n < (int)sizeof(buf));
	assert_int_equal(buf[n], '\0');
	assert_int_equal((int)proc_read_small(getpid(), "cmdline", buf, 3), 2);
	assert_int_equal(strlen(buf), 2);
	kill(grandchild, SIGKILL); /* and the child ends when it reaped it */
	waitpid(child, NULL, 0);
	assert_int_equal(proc_children(child, kids, 8), -ENOENT);
	assert_int_equal(proc_ppid(child), 0);
	assert_true(proc_read_small(child, "cmdline", buf, sizeof(buf)) < 0);
}

/* ---- proc_open_mapped: a hostile target's mapped files ---- */

#define LIB_MARK "llmtap test library: the mapped one\n"

static char tbase[] = "/tmp/test_proc.XXXXXX";
static char root_dir[64], lib[128], outside[128];

enum attack {
	A_NONE,        /* maps the library, stays as it is */
	A_FIFO,        /* chroots, a FIFO where the library's path leads in its root */
	A_SYMLINK,     /* ... a symbolic link to a file outside its root */
	A_OTHER_FILE,  /* ... another regular file */
	A_DIR_SYMLINK, /* ... a symbolic link to a folder outside its root, as a folder of the path */
	A_DELETE,      /* deletes the library */
};

static void mkdirs(const char *path)
{
	char buf[PATH_MAX];

	snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		mkdir(buf, 0755);
		*p = '/';
	}
	mkdir(buf, 0755);
}

/* The child's part: map lib, then do a to the path its maps show. Never returns. */
static void hostile_child(enum attack a, int ready)
{
	int fd = open(lib, O_RDONLY | O_CLOEXEC);
	char parent[PATH_MAX];
	bool ok;

	if (fd < 0 || mmap(NULL, 4096, PROT_READ, MAP_PRIVATE, fd, 0) == MAP_FAILED)
		_exit(1);
	close(fd);
	if (a == A_DELETE) {
		ok = !unlink(lib);
	} else if (a != A_NONE) {
		/* its maps show lib's path from the reader's root: the same path, in its
		 * own root now, is what a path-based open would follow */
		if (chroot(root_dir) || chdir("/"))
			_exit(2);
		snprintf(parent, sizeof(parent), "%s", lib);
		*strrchr(parent, '/') = '\0';
		if (a == A_DIR_SYMLINK) {
			*strrchr(parent, '/') = '\0';
			mkdirs(parent);
			ok = !symlink(outside, root_dir); /* root_dir's path, in its root */
		} else {
			mkdirs(parent);
			if (a == A_FIFO) {
				ok = !mkfifo(lib, 0600);
			} else if (a == A_SYMLINK) {
				char target[sizeof(outside) + 8];

				snprintf(target, sizeof(target), "%s/lib.so", outside);
				ok = !symlink(target, lib);
			} else {
				ok = (fd = open(lib, O_WRONLY | O_CREAT | O_EXCL, 0600)) >= 0 &&
				     write(fd, "another file\n", 13) == 13;
			}
		}
	} else {
		ok = true;
	}
	if (!ok || write(ready, "r", 1) != 1)
		_exit(3);
	pause();
	_exit(0);
}

struct found_map {
	uint64_t inode;
	struct proc_map m;
	bool found;
};

static int find_inode(const struct proc_map *m, void *arg)
{
	struct found_map *f = arg;

	if (m->inode != f->inode)
		return 0;
	f->m = *m;
	f->found = true;
	return 1;
}

/* A child doing a; its mapping of lib into *m. */
static pid_t hostile(enum attack a, struct proc_map *m)
{
	struct found_map *f = calloc(1, sizeof(*f));
	struct stat st;
	int pipefd[2];
	char c;
	pid_t pid;

	assert_non_null(f);
	assert_int_equal(stat(lib, &st), 0);
	assert_int_equal(pipe(pipefd), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (!pid) {
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* a failed assertion leaves no child behind */
		close(pipefd[0]);
		hostile_child(a, pipefd[1]);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &c, 1) != 1)
		fail_msg("the hostile child (attack %d) failed", (int)a);
	close(pipefd[0]);
	f->inode = st.st_ino;
	assert_true(proc_for_each_map(pid, find_inode, f) > 0);
	*m = f->m;
	free(f);
	return pid;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

/* A fresh tree: tbase/root/lib.so (the library), tbase/outside/lib.so (not the target's) */
static void make_tree(void)
{
	char path[sizeof(outside) + 8];
	int fd;

	nftw(root_dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	nftw(outside, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	mkdirs(root_dir);
	mkdirs(outside);
	fd = open(lib, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, LIB_MARK, strlen(LIB_MARK)), (ssize_t)strlen(LIB_MARK));
	assert_int_equal(ftruncate(fd, 8192), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/lib.so", outside);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "outside its root\n", 17), 17);
	close(fd);
}

/* CAP_SYS_ADMIN (and CAP_CHECKPOINT_RESTORE) in or out of the effective set: out,
 * /proc/PID/map_files is closed and proc_open_mapped resolves in the target's root */
static void map_files_caps(bool on)
{
	struct __user_cap_header_struct h = { _LINUX_CAPABILITY_VERSION_3, 0 };
	struct __user_cap_data_struct d[2];
	int caps[] = { CAP_SYS_ADMIN, CAP_CHECKPOINT_RESTORE };

	assert_int_equal(syscall(SYS_capget, &h, d), 0);
	for (size_t i = 0; i < sizeof(caps) / sizeof(caps[0]); i++) {
		uint32_t bit = 1u << (caps[i] % 32);

		if (on)
			d[caps[i] / 32].effective |= bit & d[caps[i] / 32].permitted;
		else
			d[caps[i] / 32].effective &= ~bit;
	}
	assert_int_equal(syscall(SYS_capset, &h, d), 0);
}

/* proc_open_mapped on a's child: want an fd on the mapped library, or want_err with
 * a reason containing says */
static void expect_open(enum attack a, bool admin, int want_err, const char *says)
{
	struct proc_map m;
	char host[PATH_MAX], why[256], buf[64] = "", want_host[64];
	pid_t pid;
	int fd;

	make_tree();
	pid = hostile(a, &m);
	map_files_caps(admin);
	alarm(10); /* an open that waits (a FIFO's) dies here instead */
	fd = proc_open_mapped(pid, &m, host, sizeof(host), why, sizeof(why));
	alarm(0);
	map_files_caps(true);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	if (want_err) {
		if (fd >= 0) {
			ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

			buf[n > 0 ? n : 0] = '\0';
			close(fd);
			fail_msg("attack %d (%s): opened a file (\"%.20s\") instead of %d (%s)", (int)a,
				 admin ? "map_files" : "in its root", buf, want_err, says);
		}
		if (fd != want_err || !strstr(why, says))
			fail_msg("attack %d (%s): %d \"%s\", want %d \"%s\"", (int)a,
				 admin ? "map_files" : "in its root", fd, why, want_err, says);
		assert_string_equal(host, "");
		return;
	}
	if (fd < 0)
		fail_msg("attack %d (%s): %d %s", (int)a, admin ? "map_files" : "in its root", fd, why);
	assert_int_equal(pread(fd, buf, strlen(LIB_MARK), 0), (ssize_t)strlen(LIB_MARK));
	assert_memory_equal(buf, LIB_MARK, strlen(LIB_MARK));
	assert_true(fcntl(fd, F_GETFL) & O_NONBLOCK);
	assert_true(fcntl(fd, F_GETFD) & FD_CLOEXEC);
	close(fd);
	snprintf(want_host, sizeof(want_host), admin ? "/proc/%d/map_files/" : "/proc/%d/root/",
		 (int)pid);
	assert_true(!strncmp(host, want_host, strlen(want_host)));
}

static int hostile_setup(void **state)
{
	(void)state;
	if (geteuid() != 0)
		return 0;
	if (!mkdtemp(tbase))
		return -1;
	snprintf(root_dir, sizeof(root_dir), "%s/root", tbase);
	snprintf(lib, sizeof(lib), "%s/lib.so", root_dir);
	snprintf(outside, sizeof(outside), "%s/outside", tbase);
	return 0;
}

static int hostile_teardown(void **state)
{
	(void)state;
	if (geteuid() == 0)
		nftw(tbase, rm_one, 16, FTW_DEPTH | FTW_PHYS);
	return 0;
}

static void skip_unless_root(void)
{
	if (geteuid() != 0) {
		print_message("not root: no chroot, no capabilities to drop: skipped\n");
		skip();
	}
}

/* As root: map_files opens the mapped file whatever the path names now. */
static void test_open_mapped_map_files(void **state)
{
	(void)state;
	skip_unless_root();
	expect_open(A_NONE, true, 0, NULL);
	expect_open(A_FIFO, true, 0, NULL);
	expect_open(A_SYMLINK, true, 0, NULL);
	expect_open(A_OTHER_FILE, true, 0, NULL);
	expect_open(A_DIR_SYMLINK, true, 0, NULL);
	expect_open(A_DELETE, true, 0, NULL);
}

/* Without CAP_SYS_ADMIN (the DaemonSet): the path, resolved in the target's root,
 * and only when it leads to the mapped file itself. */
static void test_open_mapped_in_root(void **state)
{
	(void)state;
	skip_unless_root();
	expect_open(A_NONE, false, 0, NULL);
	expect_open(A_FIFO, false, -ESTALE, "a FIFO at that path, not the file it maps");
	expect_open(A_SYMLINK, false, -ESTALE, "a symbolic link at that path");
	expect_open(A_OTHER_FILE, false, -ESTALE, "another file at that path");
	/* the folder's link leads outside its root to a lib.so that exists: not followed there */
	expect_open(A_DIR_SYMLINK, false, -ENOENT, "No such file");
	expect_open(A_DELETE, false, -ENOENT, "deleted");
}

/* A mapping whose device or inode is not the file's; a mapping that is gone. */
static void test_open_mapped_mismatch(void **state)
{
	struct proc_map m, bad;
	char why[256];
	pid_t pid;

	(void)state;
	skip_unless_root();
	make_tree();
	pid = hostile(A_NONE, &m);
	for (int admin = 0; admin < 2; admin++) {
		map_files_caps(admin);
		bad = m;
		bad.dev_major ^= 1;
		assert_int_equal(proc_open_mapped(pid, &bad, NULL, 0, why, sizeof(why)), -ESTALE);
		assert_non_null(strstr(why, "not the file it maps"));
		bad = m;
		bad.inode++;
		assert_int_equal(proc_open_mapped(pid, &bad, NULL, 0, why, sizeof(why)), -ESTALE);
		bad = m;
		bad.start += 4096 * 1024; /* no such mapping */
		bad.end += 4096 * 1024;
		assert_true(proc_open_mapped(pid, &bad, NULL, 0, why, sizeof(why)) < 0);
		bad = m;
		bad.inode = 0;
		assert_int_equal(proc_open_mapped(pid, &bad, NULL, 0, why, sizeof(why)), -EINVAL);
	}
	map_files_caps(true);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void test_shown_path_and_skips(void **state)
{
	struct proc_skips s = { 0 };
	char buf[32], line[512];

	(void)state;
	assert_string_equal(proc_shown_path("/usr/lib/libllama.so", buf, sizeof(buf)),
			    "/usr/lib/libllama.so");
	assert_string_equal(proc_shown_path("/x/\033[2J\x9b" "1m\xc2\x9b" "lib", buf, sizeof(buf)),
			    "/x/?[2J?1m??lib");
	assert_string_equal(proc_shown_path("/a/very/long/path/to/a/library/file.so", buf,
					    sizeof(buf)), "/a/very/long/path/to/a/libra...");
	proc_skips_line(&s, line, sizeof(line));
	assert_string_equal(line, "");
	proc_skips_add(&s, -ENOENT, "/gone.so", "No such file or directory");
	proc_skips_add(&s, -EACCES, "/closed.so", "Permission denied");
	proc_skips_line(&s, line, sizeof(line));
	assert_string_equal(line, ""); /* not what a hostile target does: not told */
	proc_skips_add(&s, -ESTALE, "/t/lib\033]0;x\a.so", "a FIFO at that path, not the file it maps");
	proc_skips_line(&s, line, sizeof(line));
	assert_string_equal(line, "skipped its mapped file /t/lib?]0;x?.so: a FIFO at that path, "
			    "not the file it maps");
	proc_skips_add(&s, -EIO, "/t/b.so", "cut short");
	proc_skips_add(&s, -EFBIG, "/t/c.so", "too big");
	proc_skips_line(&s, line, sizeof(line));
	assert_string_equal(line, "skipped 3 of its mapped files, the first /t/lib?]0;x?.so: a FIFO "
			    "at that path, not the file it maps");
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
		cmocka_unit_test(test_start_time_and_exe),
		cmocka_unit_test(test_family),
		cmocka_unit_test(test_open_mapped_map_files),
		cmocka_unit_test(test_open_mapped_in_root),
		cmocka_unit_test(test_open_mapped_mismatch),
		cmocka_unit_test(test_shown_path_and_skips),
	};

	return cmocka_run_group_tests(tests, hostile_setup, hostile_teardown);
}
