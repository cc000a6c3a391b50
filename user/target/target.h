/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Finding llama.cpp inside a target process: which mapped files define the
 * probe sites (the libllama C API, the sampler, llama-server's C++ functions),
 * and where.
 */
#ifndef LLMTAP_TARGET_H
#define LLMTAP_TARGET_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "target/sites.h"

#define TARGET_MAX_FILES 8

struct gguf_info;
struct gguf_vocab;

struct target_file {
	char path[PATH_MAX]; /* as the target sees it */
	char host[PATH_MAX]; /* the same file reached from our namespace, for the kernel:
			      * /proc/PID/map_files/START-END, else /proc/PID/root/PATH */
};

#define TARGET_MAX_LOCS 4

/* Where a site's code is: one place per mapped file that defines it (a C++
 * library function can be linked into several of the process's libraries). */
struct target_loc {
	int file;        /* index in files[] */
	uint64_t offset; /* file offset of the first instruction */
	char symbol[256];
};

struct target_site_locs {
	bool found;
	int n_locs;
	struct target_loc locs[TARGET_MAX_LOCS];
};

/* llama.cpp's build information objects (common/build-info.cpp), where a file defines them. */
enum target_info_obj {
	INFO_BUILD_NUMBER = 0, /* int LLAMA_BUILD_NUMBER */
	INFO_COMMIT,           /* const char *LLAMA_COMMIT */
	INFO_MAX,
};

struct target_obj {
	bool found;
	char path[PATH_MAX]; /* the file that defines it, as the target sees it */
	uint64_t offset;     /* its file offset */
};

struct target {
	pid_t pid;
	char comm[16];
	bool in_executable; /* llama_decode is linked into the main executable */
	char model[PATH_MAX]; /* the first .gguf file the process maps, "" if none */
	struct target_file files[TARGET_MAX_FILES];
	int n_files;
	struct target_site_locs sites[SITE_MAX];
	struct target_obj info[INFO_MAX];
};

/* The file that defines llama_decode. */
const struct target_file *target_core(const struct target *t);
/* true when every site the layer needs was found */
bool target_layer_found(const struct target *t, enum llmtap_layer l);

/*
 * Find the mapped files of pid that define the probe sites. llama_decode is
 * required; the rest is optional. Each file is read as mapped (proc_open_mapped:
 * never by a path the target could point elsewhere). Returns 0, or a -errno with
 * a one-line, actionable explanation in err.
 */
int target_find(pid_t pid, struct target *t, char *err, size_t errlen);

/*
 * The same from a list of files (paths[0]: the executable), for a process that
 * has not mapped them yet (`llmtap run` attaches before the program runs): paths
 * llmtap chose itself, opened as they are (non-blocking, regular files only).
 */
int target_find_files(pid_t pid, const char *comm, const char *const *paths, int n,
		      struct target *t, char *err, size_t errlen);

/*
 * The GGUF header of the model pid maps (model: its path as in t->model), read
 * from the mapped file itself (proc_open_mapped), and the vocabulary's
 * end-of-generation facts into vocab (may be NULL; zeroed or from an earlier read,
 * which is freed; see gguf_read_model_fd: to be freed by gguf_vocab_free). 0, or -errno with a reason in
 * err (-EINVAL: not a GGUF file llmtap reads; see gguf_read_info).
 */
int target_model_read(pid_t pid, const char *model, struct gguf_info *info,
		      struct gguf_vocab *vocab, char *err, size_t errlen);

#endif
