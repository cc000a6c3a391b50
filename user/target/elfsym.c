// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The file belongs to the traced process, which may be hostile: it can shrink the
 * file while llmtap reads it, or make its headers claim anything. So the file is
 * read, never mapped (libelf's ELF_C_READ: a file cut short gives a read error,
 * where a mapping would kill llmtap with SIGBUS), and what llmtap will allocate
 * for it is bounded before libelf sees it: the file's size, its numbers of
 * sections and program headers (libelf allocates a descriptor for each), and the
 * bytes of the symbol tables and their strings (the only sections read whole).
 */
#include "target/elfsym.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ELF_FILE_MAX	(4ull << 30)	/* bytes: CUDA builds of libggml reach 1-2 GiB */
#define ELF_SCNS_MAX	65536u		/* sections, program headers: real files have ~40 */
#define ELF_SYMS_MAX	(64u << 20)	/* bytes of symbol tables and their strings: a
					 * static llama-server's are ~3 MiB */
#define INTERP_MAX	4096

static int vaddr_to_offset(Elf *elf, uint64_t vaddr, uint64_t *off)
{
	size_t i, n;
	GElf_Phdr ph;

	if (elf_getphdrnum(elf, &n))
		return -ENOEXEC;
	for (i = 0; i < n; i++) {
		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_filesz) {
			*off = vaddr - ph.p_vaddr + ph.p_offset;
			return 0;
		}
	}
	return -ENOENT;
}

/*
 * "name" matches exactly; "prefix*" matches any symbol that starts with prefix
 * (a C++ name whatever its parameters), except compiler clones (.cold, .isra...).
 */
static bool name_matches(const char *want, const char *name)
{
	size_t n = strlen(want);

	if (!n)
		return false;
	if (want[n - 1] == '*')
		return !strncmp(want, name, n - 1) && !strchr(name, '.');
	return !strcmp(want, name);
}

#define LEAD 4        /* bytes of a name compared first */
#define MAX_LEADS 64

/* The distinct first LEAD bytes of the wanted names: most of a big library's symbols
 * (libstdc++'s tens of thousands) start otherwise and cost one short compare each. */
struct leads {
	char lead[MAX_LEADS][LEAD];
	int n;
	bool all; /* a name shorter than LEAD, or too many leads: compare everything */
};

static void leads_init(struct leads *l, const struct elf_sym_req *reqs, size_t n)
{
	l->n = 0;
	l->all = false;
	for (size_t k = 0; k < n && !l->all; k++) {
		const char *w = reqs[k].name;
		int i;

		if (!w[0])
			continue;
		if (strnlen(w, LEAD) < LEAD || memchr(w, '*', LEAD) || l->n == MAX_LEADS) {
			l->all = true;
			break;
		}
		for (i = 0; i < l->n && memcmp(l->lead[i], w, LEAD); i++)
			;
		if (i == l->n)
			memcpy(l->lead[l->n++], w, LEAD);
	}
}

static bool leads_match(const struct leads *l, const char *name)
{
	if (l->all)
		return true;
	if (strnlen(name, LEAD) < LEAD)
		return false; /* every wanted name is at least LEAD long */
	for (int i = 0; i < l->n; i++)
		if (!memcmp(l->lead[i], name, LEAD))
			return true;
	return false;
}

/* Every defined symbol whose name starts with prefix goes to fn (elf_each_symbol). */
struct visit {
	const char *prefix;
	elf_sym_fn fn;
	void *arg;
	int ret; /* fn's first nonzero return: stop */
};

/* 0, or -EIO when the table or its strings could not be read */
static int scan_symbols(Elf *elf, Elf_Scn *scn, const GElf_Shdr *sh, bool dynamic,
			struct elf_sym_req *reqs, size_t n, const struct leads *leads,
			struct visit *v)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	Elf_Scn *strs = elf_getscn(elf, sh->sh_link);
	size_t i, k, count;
	GElf_Shdr ssh;
	GElf_Sym sym;

	if (!data)
		return sh->sh_size ? -EIO : 0;
	if (!sh->sh_entsize)
		return 0;
	/* the names, read now: from here on a NULL name is a bad offset, not a read error */
	if (strs && gelf_getshdr(strs, &ssh) && ssh.sh_type == SHT_STRTAB && ssh.sh_size &&
	    !elf_getdata(strs, NULL))
		return -EIO;
	count = sh->sh_size / sh->sh_entsize;
	for (i = 0; i < count; i++) {
		const char *name;
		int type;

		if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF)
			continue;
		type = GELF_ST_TYPE(sym.st_info);
		if (type != STT_FUNC && type != STT_GNU_IFUNC && type != STT_OBJECT)
			continue;
		name = elf_strptr(elf, sh->sh_link, sym.st_name);
		if (v && name && !strncmp(name, v->prefix, strlen(v->prefix)) &&
		    (v->ret = v->fn(v->arg, name, type == STT_OBJECT, dynamic)))
			return 0;
		if (!name || !leads_match(leads, name))
			continue;
		for (k = 0; k < n; k++) {
			if (reqs[k].object != (type == STT_OBJECT) || !name_matches(reqs[k].name, name))
				continue;
			if (reqs[k].found) {
				if (!strcmp(reqs[k].symbol, name))
					reqs[k].exported |= dynamic;
				continue;
			}
			if (vaddr_to_offset(elf, sym.st_value, &reqs[k].offset))
				continue;
			reqs[k].found = true;
			reqs[k].exported = dynamic;
			reqs[k].size = sym.st_size;
			snprintf(reqs[k].symbol, sizeof(reqs[k].symbol), "%s", name);
		}
	}
	return 0;
}

static void read_interp(Elf *elf, struct elf_file_info *info)
{
	size_t n;
	GElf_Phdr ph;

	if (elf_getphdrnum(elf, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		Elf_Data *d;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_INTERP)
			continue;
		/* just those bytes (elf_rawfile would read the whole file) */
		if (ph.p_filesz > 1 && ph.p_filesz <= INTERP_MAX &&
		    (d = elf_getdata_rawchunk(elf, (int64_t)ph.p_offset, ph.p_filesz, ELF_T_BYTE)))
			snprintf(info->interp, sizeof(info->interp), "%.*s", (int)ph.p_filesz,
				 (const char *)d->d_buf);
		return;
	}
}

static int read_at(int fd, void *buf, size_t n, uint64_t off)
{
	ssize_t got;

	do
		got = pread(fd, buf, n, (off_t)off);
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return -errno;
	return (size_t)got == n ? 0 : -ENOEXEC;
}

/*
 * Before libelf: a native-endian ELF file whose counts of sections and program
 * headers (with their extensions in section 0) are within bounds. 0 or -errno.
 */
static int check_header(int fd, uint64_t size, size_t *n_scns)
{
	union {
		unsigned char ident[EI_NIDENT];
		Elf32_Ehdr e32;
		Elf64_Ehdr e64;
	} eh;
	uint64_t shoff, shnum, phnum;
	int ret;

	if (size < sizeof(eh.e32))
		return -ENOEXEC;
	ret = read_at(fd, &eh, size < sizeof(eh) ? sizeof(eh.e32) : sizeof(eh), 0);
	if (ret)
		return ret;
	if (memcmp(eh.ident, ELFMAG, SELFMAG))
		return -ENOEXEC;
	if (eh.ident[EI_DATA] != (__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? ELFDATA2LSB : ELFDATA2MSB))
		return -ENOEXEC; /* another machine's file: no probe of ours goes there */
	if (eh.ident[EI_CLASS] == ELFCLASS64 && size >= sizeof(eh.e64)) {
		shoff = eh.e64.e_shoff;
		shnum = eh.e64.e_shnum;
		phnum = eh.e64.e_phnum;
	} else if (eh.ident[EI_CLASS] == ELFCLASS32) {
		shoff = eh.e32.e_shoff;
		shnum = eh.e32.e_shnum;
		phnum = eh.e32.e_phnum;
	} else {
		return -ENOEXEC;
	}
	if (shoff && (shnum == 0 || phnum == PN_XNUM)) {
		/* more than fit in the header: section 0 holds the counts */
		uint64_t count, info;

		if (eh.ident[EI_CLASS] == ELFCLASS64) {
			Elf64_Shdr sh0;

			ret = read_at(fd, &sh0, sizeof(sh0), shoff);
			count = sh0.sh_size;
			info = sh0.sh_info;
		} else {
			Elf32_Shdr sh0;

			ret = read_at(fd, &sh0, sizeof(sh0), shoff);
			count = sh0.sh_size;
			info = sh0.sh_info;
		}
		if (ret)
			return ret;
		if (shnum == 0)
			shnum = count;
		if (phnum == PN_XNUM)
			phnum = info;
	}
	*n_scns = (size_t)shnum;
	return shnum > ELF_SCNS_MAX || phnum > ELF_SCNS_MAX ? -EFBIG : 0;
}

/* The bytes of the symbol tables and the string tables they name; 0 or -errno. */
static int symbol_bytes(Elf *elf, uint64_t *total)
{
	Elf_Scn *scn = NULL, *str;
	GElf_Shdr sh, ssh;

	*total = 0;
	while ((scn = elf_nextscn(elf, scn))) {
		if (!gelf_getshdr(scn, &sh))
			return -EIO;
		if (sh.sh_type != SHT_SYMTAB && sh.sh_type != SHT_DYNSYM)
			continue;
		*total += sh.sh_size;
		str = elf_getscn(elf, sh.sh_link);
		if (str && gelf_getshdr(str, &ssh) && ssh.sh_type == SHT_STRTAB)
			*total += ssh.sh_size;
		if (*total > ELF_SYMS_MAX)
			return -EFBIG;
	}
	return elf_errno() ? -EIO : 0; /* elf_nextscn stopped on an error */
}

/* The program headers, read now (libelf reads them all at the first): a symbol's
 * offset comes from them, and a file cut short must not look like a symbol's absence. */
static int load_phdrs(Elf *elf)
{
	GElf_Phdr ph;
	size_t n;

	if (elf_getphdrnum(elf, &n))
		return -EIO;
	return n && !gelf_getphdr(elf, 0, &ph) ? -EIO : 0;
}

const char *elf_strerror(int err)
{
	switch (err) {
	case -EFBIG:
		return "larger than llmtap reads (a 4 GiB file, 65536 sections, 64 MiB of symbols)";
	case -EIO:
		return "could not be read to its end (cut short while llmtap read it?)";
	case -ENOEXEC:
		return "not an ELF file of this machine";
	default:
		return strerror(err < 0 ? -err : err);
	}
}

static void reset(struct elf_sym_req *reqs, size_t n, struct elf_file_info *info)
{
	memset(info, 0, sizeof(*info));
	for (size_t k = 0; k < n; k++) {
		reqs[k].found = reqs[k].exported = false;
		reqs[k].offset = reqs[k].size = 0;
		reqs[k].symbol[0] = '\0';
	}
}

/* elf_resolve_fd, and each symbol to v (NULL: none) */
static int resolve_fd(int fd, struct elf_sym_req *reqs, size_t n, struct elf_file_info *info,
		      struct visit *v)
{
	Elf_Scn *scn = NULL;
	GElf_Ehdr eh;
	GElf_Shdr sh;
	Elf *elf = NULL;
	struct leads leads;
	struct stat st;
	size_t n_scns, libelf_scns;
	uint64_t syms;
	int ret;

	reset(reqs, n, info);
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -ENOEXEC;
	if (fstat(fd, &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -ENOEXEC;
	if ((uint64_t)st.st_size > ELF_FILE_MAX)
		return -EFBIG;
	ret = check_header(fd, (uint64_t)st.st_size, &n_scns);
	if (ret)
		return ret;
	leads_init(&leads, reqs, n);
	elf_errno(); /* clear libelf's last error: symbol_bytes looks at it */
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &eh)) {
		ret = -ENOEXEC;
		goto cleanup;
	}
	/* libelf sees no section headers past the end of the file: cut short since */
	if (elf_getshdrnum(elf, &libelf_scns) || libelf_scns != n_scns) {
		ret = -EIO;
		goto cleanup;
	}
	ret = symbol_bytes(elf, &syms);
	if (!ret)
		ret = load_phdrs(elf);
	if (ret)
		goto cleanup;
	info->is_dyn = eh.e_type == ET_DYN;
	read_interp(elf, info);
	while ((scn = elf_nextscn(elf, scn))) {
		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_SYMTAB)
			info->has_symtab = true;
		else if (sh.sh_type == SHT_DYNSYM)
			info->has_dynsym = true;
		else
			continue;
		if (scan_symbols(elf, scn, &sh, sh.sh_type == SHT_DYNSYM, reqs, n, &leads, v)) {
			ret = -EIO; /* the file shrank since elf_begin */
			break;
		}
		if (v && v->ret)
			break;
	}
cleanup:
	if (elf)
		elf_end(elf);
	if (ret)
		reset(reqs, n, info);
	return ret;
}

int elf_resolve_fd(int fd, struct elf_sym_req *reqs, size_t n, struct elf_file_info *info)
{
	return resolve_fd(fd, reqs, n, info, NULL);
}

int elf_each_symbol(const char *path, const char *prefix, elf_sym_fn fn, void *arg,
		    struct elf_file_info *info)
{
	struct visit v = { prefix, fn, arg, 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), ret;

	if (fd < 0) {
		memset(info, 0, sizeof(*info));
		return -errno;
	}
	ret = resolve_fd(fd, NULL, 0, info, &v);
	close(fd);
	return ret ? ret : v.ret;
}

int elf_resolve(const char *path, struct elf_sym_req *reqs, size_t n,
		struct elf_file_info *info)
{
	/* non-blocking, and only a regular file is read: a FIFO at path costs nothing */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY), ret;

	if (fd < 0) {
		reset(reqs, n, info);
		return -errno;
	}
	ret = elf_resolve_fd(fd, reqs, n, info);
	close(fd);
	return ret;
}
