// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* Unit tests for user/target/elfsym.c: symbol -> file offset with libelf. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dlfcn.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "target/elfsym.h"

#define CODE_BYTES 16

int main(void);

/* Non-static, but not exported: the test binary is not linked with -rdynamic. */
__attribute__((noinline, used)) int llmtap_test_probe_target(int x);
__attribute__((noinline, used)) int llmtap_test_probe_target(int x)
{
	return x * 7 + 3;
}

__attribute__((noinline, used)) int llmtap_test_other_target(int x);
__attribute__((noinline, used)) int llmtap_test_other_target(int x)
{
	return x ^ 0x5a5a;
}

static void self_exe(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);

	assert_true(n > 0);
	buf[n] = '\0';
}

/*
 * The mapping of /proc/self/maps that contains addr: its path and the file
 * offset addr corresponds to.
 */
static int mapped_file_offset(uintptr_t addr, char *path, size_t len, uint64_t *off)
{
	char line[PATH_MAX + 128];
	FILE *f = fopen("/proc/self/maps", "re");
	int ret = -1;

	assert_non_null(f);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long start, end, foff;
		int at = -1;

		if (sscanf(line, "%llx-%llx %*s %llx %*s %*s %n", &start, &end, &foff, &at) < 3 ||
		    at < 0)
			continue;
		if (addr < start || addr >= end)
			continue;
		snprintf(path, len, "%s", line + at);
		path[strcspn(path, "\n")] = '\0';
		*off = addr - start + foff;
		ret = 0;
		break;
	}
	fclose(f);
	return ret;
}

static void read_at(const char *path, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void test_resolve_self(void **state)
{
	struct elf_sym_req reqs[] = {
		{ .name = "llmtap_test_probe_target" },
		{ .name = "llmtap_test_other_target" },
	};
	struct elf_file_info info;
	char exe[PATH_MAX], mpath[PATH_MAX];
	unsigned char file_bytes[CODE_BYTES];
	uint64_t off;
	(void)state;

	self_exe(exe, sizeof(exe));
	assert_int_equal(elf_resolve(exe, reqs, 2, &info), 0);
	assert_true(info.has_symtab);
	assert_true(info.has_dynsym);

	for (int i = 0; i < 2; i++) {
		assert_true(reqs[i].found);
		assert_false(reqs[i].exported);
		assert_true(reqs[i].offset > 0);
		assert_true(reqs[i].size > 0);
	}
	assert_true(reqs[0].offset != reqs[1].offset);

	/* the same offset the running process maps the function from */
	assert_int_equal(mapped_file_offset((uintptr_t)&llmtap_test_probe_target,
					    mpath, sizeof(mpath), &off), 0);
	assert_string_equal(mpath, exe);
	assert_true(off == reqs[0].offset);

	/* and the bytes there are the function's code */
	read_at(exe, reqs[0].offset, file_bytes, sizeof(file_bytes));
	assert_memory_equal(file_bytes, (const void *)&llmtap_test_probe_target,
			    sizeof(file_bytes));
	read_at(exe, reqs[1].offset, file_bytes, sizeof(file_bytes));
	assert_memory_equal(file_bytes, (const void *)&llmtap_test_other_target,
			    sizeof(file_bytes));

	/* keep the functions alive and behaving */
	assert_int_equal(llmtap_test_probe_target(1), 10);
}

static void test_resolve_main(void **state)
{
	struct elf_sym_req req = { .name = "main" };
	struct elf_file_info info;
	char exe[PATH_MAX], mpath[PATH_MAX];
	uint16_t e_type;
	uint64_t off;
	(void)state;

	self_exe(exe, sizeof(exe));
	assert_int_equal(elf_resolve(exe, &req, 1, &info), 0);
	assert_true(req.found);
	assert_false(req.exported);
	assert_int_equal(mapped_file_offset((uintptr_t)&main, mpath, sizeof(mpath), &off), 0);
	assert_true(off == req.offset);
	/* e_type, read straight from the ELF header */
	read_at(exe, offsetof(Elf64_Ehdr, e_type), &e_type, sizeof(e_type));
	assert_int_equal(info.is_dyn, e_type == ET_DYN);
}

static void libc_path(char *buf, size_t len)
{
	uint64_t off;

	/* glibc's own function, one no malloc interposer replaces */
	assert_int_equal(mapped_file_offset((uintptr_t)dlsym(RTLD_DEFAULT, "gnu_get_libc_version"),
					    buf, len, &off), 0);
	assert_non_null(strstr(buf, "libc"));
}

static void test_resolve_libc(void **state)
{
	struct elf_sym_req reqs[] = {
		{ .name = "malloc" },
		{ .name = "free" },
		{ .name = "llmtap_no_such_function" },
	};
	struct elf_file_info info;
	char libc[PATH_MAX], mpath[PATH_MAX];
	unsigned char file_bytes[CODE_BYTES];
	void *handle = dlopen("libc.so.6", RTLD_NOW | RTLD_NOLOAD);
	void *addr;
	uint64_t off;
	(void)state;

	/* libc's malloc, even when a sanitizer interposes its own */
	assert_non_null(handle);
	addr = dlsym(handle, "malloc");
	assert_non_null(addr);
	libc_path(libc, sizeof(libc));
	assert_int_equal(elf_resolve(libc, reqs, 3, &info), 0);
	assert_true(info.has_dynsym);
	assert_true(info.is_dyn);
	assert_true(reqs[0].found);
	assert_true(reqs[0].exported);
	assert_true(reqs[1].found);
	assert_true(reqs[1].exported);
	assert_false(reqs[2].found);
	assert_false(reqs[2].exported);
	assert_true(reqs[2].offset == 0);

	assert_int_equal(mapped_file_offset((uintptr_t)addr, mpath, sizeof(mpath), &off), 0);
	assert_true(off == reqs[0].offset);
	read_at(libc, reqs[0].offset, file_bytes, sizeof(file_bytes));
	assert_memory_equal(file_bytes, addr, sizeof(file_bytes));
	assert_string_equal(mpath, libc);
	dlclose(handle);
}

static void test_missing_symbol(void **state)
{
	struct elf_sym_req req = { .name = "llama_decode", .found = true, .exported = true,
				   .offset = 123, .size = 456 };
	struct elf_file_info info;
	char exe[PATH_MAX];
	(void)state;

	self_exe(exe, sizeof(exe));
	assert_int_equal(elf_resolve(exe, &req, 1, &info), 0);
	assert_false(req.found);
	assert_false(req.exported);
	assert_true(req.offset == 0);
	assert_true(req.size == 0);

	/* an object, not a function */
	req.name = "stdout";
	assert_int_equal(elf_resolve(exe, &req, 1, &info), 0);
	assert_false(req.found);

	/* no requests at all */
	assert_int_equal(elf_resolve(exe, NULL, 0, &info), 0);
	assert_true(info.has_symtab);
}

static void make_temp(char *path, size_t len, const void *data, size_t n)
{
	int fd;

	snprintf(path, len, "/tmp/llmtap-elfsym-XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	if (n)
		assert_int_equal(write(fd, data, n), (ssize_t)n);
	close(fd);
}

static void test_not_elf(void **state)
{
	static const char text[] = "#!/bin/sh\necho this is not an ELF file\n";
	static const char fake[] = "\x7f" "ELF garbage that is far too short";
	struct elf_sym_req req = { .name = "main", .found = true };
	struct elf_file_info info;
	char path[64];
	(void)state;

	make_temp(path, sizeof(path), text, sizeof(text) - 1);
	assert_int_equal(elf_resolve(path, &req, 1, &info), -ENOEXEC);
	assert_false(req.found);
	unlink(path);

	make_temp(path, sizeof(path), "", 0);
	assert_int_equal(elf_resolve(path, &req, 1, &info), -ENOEXEC);
	unlink(path);

	make_temp(path, sizeof(path), fake, sizeof(fake) - 1);
	assert_int_equal(elf_resolve(path, &req, 1, &info), -ENOEXEC);
	unlink(path);
}

static void test_missing_file(void **state)
{
	struct elf_sym_req req = { .name = "main", .found = true, .offset = 9 };
	struct elf_file_info info = { .has_symtab = true, .has_dynsym = true, .is_dyn = true };
	(void)state;

	assert_int_equal(elf_resolve("/nonexistent/llmtap/libllama.so", &req, 1, &info),
			 -ENOENT);
	assert_false(req.found);
	assert_true(req.offset == 0);
	assert_false(info.has_symtab);
	assert_false(info.has_dynsym);
	assert_false(info.is_dyn);
}

static void copy_file(const char *from, const char *to)
{
	char buf[65536];
	int in = open(from, O_RDONLY | O_CLOEXEC);
	int out = open(to, O_WRONLY | O_TRUNC | O_CLOEXEC);
	ssize_t n;

	assert_true(in >= 0);
	assert_true(out >= 0);
	while ((n = read(in, buf, sizeof(buf))) > 0)
		assert_int_equal(write(out, buf, (size_t)n), n);
	assert_int_equal(n, 0);
	close(in);
	close(out);
}

static void test_stripped(void **state)
{
	struct elf_sym_req reqs[] = {
		{ .name = "llmtap_test_probe_target" },
		{ .name = "malloc" }, /* undefined here: imported, not defined */
	};
	struct elf_file_info info;
	char exe[PATH_MAX], path[64], cmd[128];
	(void)state;

	if (access("/usr/bin/strip", X_OK))
		skip();
	self_exe(exe, sizeof(exe));
	make_temp(path, sizeof(path), "", 0);
	copy_file(exe, path);

	/* the unstripped copy still resolves */
	assert_int_equal(elf_resolve(path, reqs, 2, &info), 0);
	assert_true(info.has_symtab);
	assert_true(reqs[0].found);
	assert_false(reqs[1].found);

	snprintf(cmd, sizeof(cmd), "/usr/bin/strip %s", path);
	assert_int_equal(system(cmd), 0);
	assert_int_equal(elf_resolve(path, reqs, 2, &info), 0);
	assert_false(info.has_symtab);
	assert_true(info.has_dynsym);
	assert_false(reqs[0].found);
	assert_false(reqs[1].found);
	unlink(path);
}


/* ---- a hostile file: a FIFO, a file cut short while read, headers that claim a lot ---- */

static void test_fifo(void **state)
{
	struct elf_sym_req req = { .name = "main" };
	struct elf_file_info info;
	char path[] = "/tmp/llmtap-elfsym-fifo-XXXXXX";

	(void)state;
	assert_non_null(mkdtemp(path));
	strcat(path, "/f");
	assert_int_equal(mkfifo(path, 0600), 0);
	alarm(10); /* an open that waits for a writer dies here instead */
	assert_int_equal(elf_resolve(path, &req, 1, &info), -ENOEXEC);
	alarm(0);
	assert_false(req.found);
	unlink(path);
	*strrchr(path, '/') = '\0';
	rmdir(path);
}

struct cutter {
	const char *path;
	const void *data;
	size_t len;
	atomic_bool stop;
	unsigned long cuts;
};

/* Cuts the file to 64 bytes and writes it back, again and again. */
static void *cut_loop(void *arg)
{
	struct cutter *c = arg;
	int fd = open(c->path, O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	while (!atomic_load(&c->stop)) {
		if (ftruncate(fd, 64) || pwrite(fd, c->data, c->len, 0) != (ssize_t)c->len)
			break;
		c->cuts++;
	}
	close(fd);
	return NULL;
}

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A file cut short while it is read: an error or the right answer, never SIGBUS
 * (a mapping of the file would fault on the pages gone). */
static void test_cut_while_read(void **state)
{
	struct elf_sym_req want = { .name = "llmtap_test_probe_target" }, req;
	struct elf_file_info info;
	struct cutter c = { 0 };
	char exe[PATH_MAX], path[64];
	unsigned long ok = 0, io = 0, noexec = 0;
	pthread_t th;
	double end;
	struct stat st;
	void *data;
	int fd;

	(void)state;
	self_exe(exe, sizeof(exe));
	assert_int_equal(elf_resolve(exe, &want, 1, &info), 0);
	assert_true(want.found);
	make_temp(path, sizeof(path), "", 0);
	copy_file(exe, path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	data = malloc((size_t)st.st_size);
	assert_non_null(data);
	assert_int_equal(read(fd, data, (size_t)st.st_size), st.st_size);
	close(fd);

	c.path = path;
	c.data = data;
	c.len = (size_t)st.st_size;
	assert_int_equal(pthread_create(&th, NULL, cut_loop, &c), 0);
	end = now_s() + 1.0;
	while (now_s() < end) {
		int ret;

		req = (struct elf_sym_req){ .name = want.name };
		ret = elf_resolve(path, &req, 1, &info);
		if (ret == 0) {
			assert_true(req.found);
			assert_true(req.offset == want.offset);
			ok++;
		} else if (ret == -EIO) {
			io++;
		} else if (ret == -ENOEXEC) {
			noexec++;
		} else {
			fail_msg("elf_resolve on a file being cut: %d (%s)", ret, elf_strerror(ret));
		}
		if (ret)
			assert_false(req.found);
	}
	atomic_store(&c.stop, true);
	pthread_join(th, NULL);
	print_message("%lu cuts: %lu read whole, %lu cut short (EIO), %lu not ELF yet\n",
		      c.cuts, ok, io, noexec);
	assert_true(c.cuts > 0);
	free(data);
	unlink(path);
}

/* The copy of this test's executable at path, with its section headers. */
static Elf64_Shdr *exe_copy(char *path, size_t len, Elf64_Ehdr *eh)
{
	char exe[PATH_MAX];
	Elf64_Shdr *sh;
	int fd;

	self_exe(exe, sizeof(exe));
	make_temp(path, len, "", 0);
	copy_file(exe, path);
	read_at(path, 0, eh, sizeof(*eh));
	assert_int_equal(eh->e_shentsize, sizeof(Elf64_Shdr));
	sh = calloc(eh->e_shnum, sizeof(*sh));
	assert_non_null(sh);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, sh, eh->e_shnum * sizeof(*sh), (off_t)eh->e_shoff),
			 (ssize_t)(eh->e_shnum * sizeof(*sh)));
	close(fd);
	return sh;
}

static void write_at(const char *path, uint64_t off, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static void expect_too_big(const char *path)
{
	struct elf_sym_req req = { .name = "llmtap_test_probe_target" };
	struct elf_file_info info;
	double t0 = now_s();

	assert_int_equal(elf_resolve(path, &req, 1, &info), -EFBIG);
	assert_false(req.found);
	assert_non_null(strstr(elf_strerror(-EFBIG), "larger than llmtap reads"));
	assert_true(now_s() - t0 < 0.5);
}

static void test_too_big(void **state)
{
	char path[64];
	Elf64_Ehdr eh;
	Elf64_Shdr *sh, big = { 0 };
	uint16_t zero = 0;
	int i;

	(void)state;
	/* a file of 4 GiB and a byte (sparse: nothing on disk) */
	sh = exe_copy(path, sizeof(path), &eh);
	assert_int_equal(truncate(path, (4ll << 30) + 1), 0);
	expect_too_big(path);
	free(sh);
	unlink(path);

	/* 70000 sections (their count in section 0, as the extension has it), all there:
	 * libelf would allocate a descriptor for each */
	sh = exe_copy(path, sizeof(path), &eh);
	big.sh_size = 70000;
	eh.e_shoff = 4096 * 16;
	assert_int_equal(truncate(path, (off_t)(eh.e_shoff + 70000 * sizeof(big))), 0);
	write_at(path, eh.e_shoff, &big, sizeof(big));
	write_at(path, offsetof(Elf64_Ehdr, e_shoff), &eh.e_shoff, sizeof(eh.e_shoff));
	write_at(path, offsetof(Elf64_Ehdr, e_shnum), &zero, sizeof(zero));
	write_at(path, offsetof(Elf64_Ehdr, e_shstrndx), &zero, sizeof(zero));
	expect_too_big(path);
	free(sh);
	unlink(path);

	/* a symbol table of 65 MiB (sparse), read whole by libelf */
	sh = exe_copy(path, sizeof(path), &eh);
	for (i = 0; i < eh.e_shnum && sh[i].sh_type != SHT_SYMTAB; i++)
		;
	assert_true(i < eh.e_shnum);
	sh[i].sh_size = (65ull << 20) / sizeof(Elf64_Sym) * sizeof(Elf64_Sym);
	sh[i].sh_offset = 1ull << 30;
	assert_int_equal(truncate(path, (off_t)(sh[i].sh_offset + sh[i].sh_size)), 0);
	write_at(path, eh.e_shoff + i * sizeof(*sh), &sh[i], sizeof(*sh));
	expect_too_big(path);
	free(sh);
	unlink(path);
}

struct seen {
	int main_fn, other, objects, stop_at, calls;
};

static int count_sym(void *arg, const char *name, bool object, bool dynamic)
{
	struct seen *s = arg;

	(void)dynamic;
	s->calls++;
	if (!strcmp(name, "main") && !object)
		s->main_fn++;
	else if (strncmp(name, "ma", 2))
		s->other++; /* the prefix was not applied */
	if (object)
		s->objects++;
	return s->stop_at && s->calls == s->stop_at ? 7 : 0;
}

/* Every defined symbol with the prefix goes to the callback, until it returns nonzero. */
static void test_each_symbol(void **state)
{
	struct elf_file_info info;
	struct seen s = { 0 };

	(void)state;
	assert_int_equal(elf_each_symbol("/proc/self/exe", "ma", count_sym, &s, &info), 0);
	assert_true(info.has_symtab);
	assert_true(s.main_fn >= 1); /* main: in .symtab (and .dynsym when exported) */
	assert_int_equal(s.other, 0);
	memset(&s, 0, sizeof(s));
	s.stop_at = 1;
	assert_int_equal(elf_each_symbol("/proc/self/exe", "", count_sym, &s, &info), 7);
	assert_int_equal(s.calls, 1);
	assert_true(elf_each_symbol("/nonexistent/x", "", count_sym, &s, &info) < 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_each_symbol),
		cmocka_unit_test(test_resolve_self),
		cmocka_unit_test(test_resolve_main),
		cmocka_unit_test(test_resolve_libc),
		cmocka_unit_test(test_missing_symbol),
		cmocka_unit_test(test_not_elf),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_stripped),
		cmocka_unit_test(test_fifo),
		cmocka_unit_test(test_cut_while_read),
		cmocka_unit_test(test_too_big),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
