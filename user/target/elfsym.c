// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/elfsym.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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

static void scan_symbols(Elf *elf, Elf_Scn *scn, const GElf_Shdr *sh, bool dynamic,
			 struct elf_sym_req *reqs, size_t n, const struct leads *leads)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t i, k, count;
	GElf_Sym sym;

	if (!data || !sh->sh_entsize)
		return;
	count = sh->sh_size / sh->sh_entsize;
	for (i = 0; i < count; i++) {
		const char *name;
		int type;

		if (!gelf_getsym(data, (int)i, &sym) || sym.st_shndx == SHN_UNDEF)
			continue;
		type = GELF_ST_TYPE(sym.st_info);
		if (type != STT_FUNC && type != STT_GNU_IFUNC)
			continue;
		name = elf_strptr(elf, sh->sh_link, sym.st_name);
		if (!name || !leads_match(leads, name))
			continue;
		for (k = 0; k < n; k++) {
			if (!name_matches(reqs[k].name, name))
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
}

static void read_interp(Elf *elf, struct elf_file_info *info)
{
	size_t n, size;
	char *raw = elf_rawfile(elf, &size);
	GElf_Phdr ph;

	if (!raw || elf_getphdrnum(elf, &n))
		return;
	for (size_t i = 0; i < n; i++) {
		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_INTERP)
			continue;
		if (ph.p_offset < size && ph.p_filesz <= size - ph.p_offset && ph.p_filesz > 1)
			snprintf(info->interp, sizeof(info->interp), "%.*s", (int)ph.p_filesz,
				 raw + ph.p_offset);
		return;
	}
}

int elf_resolve(const char *path, struct elf_sym_req *reqs, size_t n,
		struct elf_file_info *info)
{
	Elf_Scn *scn = NULL;
	GElf_Ehdr eh;
	GElf_Shdr sh;
	Elf *elf = NULL;
	int fd, ret = 0;
	struct leads leads;
	size_t k;

	memset(info, 0, sizeof(*info));
	for (k = 0; k < n; k++) {
		reqs[k].found = reqs[k].exported = false;
		reqs[k].offset = reqs[k].size = 0;
		reqs[k].symbol[0] = '\0';
	}
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -ENOEXEC;
	leads_init(&leads, reqs, n);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, &eh)) {
		ret = -ENOEXEC;
		goto cleanup;
	}
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
		scan_symbols(elf, scn, &sh, sh.sh_type == SHT_DYNSYM, reqs, n, &leads);
	}
cleanup:
	if (elf)
		elf_end(elf);
	close(fd);
	return ret;
}
