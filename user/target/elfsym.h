/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Function symbols of an ELF file, resolved to file offsets for uprobes (libelf). */
#ifndef LLMTAP_ELFSYM_H
#define LLMTAP_ELFSYM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define ELF_SYM_NAME_MAX 256

struct elf_sym_req {
	const char *name;  /* in: exact symbol name, or "prefix*" (no compiler clones) */
	bool object;       /* in: a data object (STT_OBJECT), not a function */
	bool found;        /* out */
	bool exported;     /* out: found in .dynsym */
	uint64_t offset;   /* out: file offset of the first instruction (or of the object) */
	uint64_t size;     /* out: st_size */
	char symbol[ELF_SYM_NAME_MAX]; /* out: the name that matched */
};

struct elf_file_info {
	bool has_symtab;   /* a .symtab section: not stripped */
	bool has_dynsym;
	bool is_dyn;       /* ET_DYN (shared library or PIE) */
	char interp[256];  /* PT_INTERP: the dynamic loader it asks for, "" when static */
};

/*
 * Resolve every request in reqs[0..n) against path's .dynsym and .symtab.
 * Returns 0 (individual symbols may still be unfound), -errno when the file
 * cannot be opened, -ENOEXEC when it is not a regular file or not a readable ELF
 * file of this machine, -EFBIG when it is larger than llmtap reads (a 4 GiB file,
 * 65536 sections, 64 MiB of symbol tables), -EIO when it shrank while being read.
 * The file is read (never mapped: a file cut short is an error, not a SIGBUS) and
 * opened non-blocking. On error every request is unfound and info zeroed.
 */
int elf_resolve(const char *path, struct elf_sym_req *reqs, size_t n,
		struct elf_file_info *info);
/* The same from an open file (read with pread: its offset is left alone). */
int elf_resolve_fd(int fd, struct elf_sym_req *reqs, size_t n, struct elf_file_info *info);
/* A defined symbol (object: STT_OBJECT, else a function); dynamic: from .dynsym. */
typedef int (*elf_sym_fn)(void *arg, const char *name, bool object, bool dynamic);
/*
 * Call fn for every defined function or object symbol of path's .dynsym and .symtab
 * whose name starts with prefix ("" all), until it returns nonzero. Returns that value,
 * 0 when it never did, or -errno as elf_resolve (fn may have been called before an
 * error: a caller deciding on all of them must look at the result first).
 */
int elf_each_symbol(const char *path, const char *prefix, elf_sym_fn fn, void *arg,
		    struct elf_file_info *info);
/* What an error of elf_resolve means, in a few words. */
const char *elf_strerror(int err);

#endif
