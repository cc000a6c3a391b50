// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/target.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "target/elfsym.h"
#include "target/proc.h"

#define MAX_SEARCHED 64
#define MAX_IDS 512 /* distinct executable files a process maps, at most */
#define MAX_ALTS 3

/* Each site: the layer it belongs to and its names, newest first ("prefix*" for C++). */
static const struct {
	const char *label;
	enum target_layer layer;
	const char *names[MAX_ALTS];
} sites[SITE_MAX] = {
	[SITE_DECODE] = { "llama_decode", LAYER_ENGINE, { "llama_decode" } },
	[SITE_ENCODE] = { "llama_encode", LAYER_ENGINE, { "llama_encode" } },
	[SITE_SAMPLE_COMMON] = { "common_sampler_sample", LAYER_SAMPLING,
		{ "_Z21common_sampler_sampleP14common_samplerP13llama_context*" } },
	[SITE_SAMPLE] = { "llama_sampler_sample", LAYER_SAMPLING, { "llama_sampler_sample" } },
	[SITE_KV_SEQ_RM] = { "llama_memory_seq_rm", LAYER_ENGINE,
		{ "llama_memory_seq_rm", "llama_kv_self_seq_rm", "llama_kv_cache_seq_rm" } },
	[SITE_KV_SEQ_CP] = { "llama_memory_seq_cp", LAYER_ENGINE,
		{ "llama_memory_seq_cp", "llama_kv_self_seq_cp", "llama_kv_cache_seq_cp" } },
	[SITE_KV_SEQ_KEEP] = { "llama_memory_seq_keep", LAYER_ENGINE,
		{ "llama_memory_seq_keep", "llama_kv_self_seq_keep", "llama_kv_cache_seq_keep" } },
	[SITE_KV_SEQ_ADD] = { "llama_memory_seq_add", LAYER_ENGINE,
		{ "llama_memory_seq_add", "llama_kv_self_seq_add", "llama_kv_cache_seq_add" } },
	[SITE_KV_SEQ_DIV] = { "llama_memory_seq_div", LAYER_ENGINE,
		{ "llama_memory_seq_div", "llama_kv_self_seq_div", "llama_kv_cache_seq_div" } },
	[SITE_KV_CLEAR] = { "llama_memory_clear", LAYER_ENGINE,
		{ "llama_memory_clear", "llama_kv_self_clear", "llama_kv_cache_clear" } },
	[SITE_SRV_NEW_ID] = { "server_queue::get_new_id", LAYER_SERVER,
		{ "_ZN12server_queue10get_new_idEv" } },
	[SITE_SRV_DEFER] = { "server_queue::defer", LAYER_SERVER,
		{ "_ZN12server_queue5deferEO11server_task" } },
	[SITE_SRV_LAUNCH] = { "launch_slot_with_task", LAYER_SERVER,
		{ "_ZN19server_context_impl21launch_slot_with_taskER11server_slotO11server_task*",
		  "_ZN14server_context21launch_slot_with_taskER11server_slotO11server_task*" } },
	[SITE_SRV_FINAL] = { "send_final_response", LAYER_SERVER,
		{ "_ZN19server_context_impl19send_final_responseER11server_slot*",
		  "_ZN14server_context19send_final_responseER11server_slot*" } },
	[SITE_SRV_ERROR] = { "send_error", LAYER_SERVER,
		{ "_ZN19server_context_impl10send_errorEiRK*", "_ZN14server_context10send_errorEiRK*" } },
	[SITE_SRV_PARTIAL] = { "send_partial_response", LAYER_SERVER,
		{ "_ZN19server_context_impl21send_partial_responseER11server_slot*",
		  "_ZN14server_context21send_partial_responseER11server_slot*" } },
	[SITE_HTTP_PROCESS] = { "httplib::Server::process_request", LAYER_HTTP,
		{ "_ZN7httplib6Server15process_requestERNS_6StreamERKNSt7__cxx1112basic_string*" } },
	[SITE_HTTP_ROUTING] = { "httplib::Server::routing", LAYER_HTTP,
		{ "_ZN7httplib6Server7routingERNS_7RequestERNS_8ResponseERNS_6StreamE" } },
	[SITE_HTTP_WRITE] = { "httplib::Server::write_response_core", LAYER_HTTP,
		{ "_ZN7httplib6Server19write_response_coreERNS_6StreamEbRKNS_7RequestERNS_8ResponseEb" } },
	[SITE_CALL_SEQ_SAVE_FILE] = { "llama_state_seq_save_file", LAYER_ENGINE,
		{ "llama_state_seq_save_file" } },
	[SITE_CALL_SEQ_LOAD_FILE] = { "llama_state_seq_load_file", LAYER_ENGINE,
		{ "llama_state_seq_load_file" } },
	[SITE_CALL_SEQ_GET_DATA] = { "llama_state_seq_get_data", LAYER_ENGINE,
		{ "llama_state_seq_get_data_ext", "llama_state_seq_get_data" } },
	[SITE_CALL_SEQ_SET_DATA] = { "llama_state_seq_set_data", LAYER_ENGINE,
		{ "llama_state_seq_set_data_ext", "llama_state_seq_set_data" } },
	[SITE_CALL_SAVE_FILE] = { "llama_state_save_file", LAYER_ENGINE,
		{ "llama_state_save_file", "llama_save_session_file" } },
	[SITE_CALL_LOAD_FILE] = { "llama_state_load_file", LAYER_ENGINE,
		{ "llama_state_load_file", "llama_load_session_file" } },
	[SITE_CALL_MODEL_LOAD] = { "llama_model_load_from_file", LAYER_ENGINE,
		{ "llama_model_load_from_file", "llama_load_model_from_file" } },
	[SITE_CALL_CONTEXT_INIT] = { "llama_init_from_model", LAYER_ENGINE,
		{ "llama_init_from_model", "llama_new_context_with_model" } },
	[SITE_CALL_TOKENIZE] = { "llama_tokenize", LAYER_ENGINE, { "llama_tokenize" } },
	[SITE_CALL_SAMPLER_INIT] = { "common_sampler_init", LAYER_SAMPLING,
		{ "_Z19common_sampler_initPK11llama_modelR22common_params_sampling*",
		  "_Z19common_sampler_initPK11llama_modelRK22common_params_sampling*" } },
};

/* sites a layer cannot work without */
static const enum target_site required[][4] = {
	[LAYER_ENGINE] = { SITE_DECODE, SITE_MAX },
	[LAYER_SAMPLING] = { SITE_MAX },
	[LAYER_SERVER] = { SITE_SRV_NEW_ID, SITE_SRV_LAUNCH, SITE_SRV_FINAL, SITE_MAX },
	[LAYER_HTTP] = { SITE_HTTP_PROCESS, SITE_HTTP_ROUTING, SITE_HTTP_WRITE, SITE_MAX },
};

const char *target_site_name(enum target_site s)
{
	return s < SITE_MAX ? sites[s].label : "?";
}

enum target_layer target_site_layer(enum target_site s)
{
	return s < SITE_MAX ? sites[s].layer : LAYER_MAX;
}

const char *target_layer_name(enum target_layer l)
{
	static const char *const names[LAYER_MAX] = { "engine", "sampling", "server", "http" };

	return l < LAYER_MAX ? names[l] : "?";
}

const struct target_file *target_core(const struct target *t)
{
	return &t->files[t->sites[SITE_DECODE].locs[0].file];
}

bool target_layer_found(const struct target *t, enum target_layer l)
{
	if (l >= LAYER_MAX)
		return false;
	if (l == LAYER_SAMPLING)
		return t->sites[SITE_SAMPLE_COMMON].found || t->sites[SITE_SAMPLE].found;
	for (int i = 0; required[l][i] != SITE_MAX; i++)
		if (!t->sites[required[l][i]].found)
			return false;
	return true;
}

struct search {
	struct target *t;
	char exe[PATH_MAX];
	char searched[MAX_SEARCHED][PATH_MAX];
	int n_searched;
	int n_skipped;        /* more files than MAX_SEARCHED */
	char stripped[PATH_MAX];
	int unreadable;
	int last_err;
	struct elf_sym_req reqs[SITE_MAX * MAX_ALTS];
	/* files searched, by device and inode: one file mapped at two paths (a bind
	 * mount, a container's view and the host's) is searched and probed once */
	struct file_id {
		uint64_t ino;
		unsigned int major, minor;
	} ids[MAX_IDS];
	int n_ids;
};

/* True when m's file was searched already; else remembers it. */
static bool seen_inode(struct search *s, const struct proc_map *m)
{
	for (int i = 0; i < s->n_ids; i++)
		if (s->ids[i].ino == m->inode && s->ids[i].major == m->dev_major &&
		    s->ids[i].minor == m->dev_minor)
			return true;
	if (s->n_ids < MAX_IDS)
		s->ids[s->n_ids++] = (struct file_id){ m->inode, m->dev_major, m->dev_minor };
	return false;
}

static bool already_searched(const struct search *s, const char *path)
{
	for (int i = 0; i < s->n_searched; i++)
		if (!strcmp(s->searched[i], path))
			return true;
	return false;
}

/* Record every site this file defines (per site, the first of its names found here). */
static bool take_sites(struct search *s, const char *path, const char *host)
{
	struct target *t = s->t;
	int file = -1;
	bool any = false;

	for (int i = 0; i < SITE_MAX; i++) {
		struct target_site_locs *site = &t->sites[i];

		for (int a = 0; a < MAX_ALTS && sites[i].names[a]; a++) {
			const struct elf_sym_req *r = &s->reqs[i * MAX_ALTS + a];
			struct target_loc *loc;

			if (!r->found || site->n_locs >= TARGET_MAX_LOCS)
				continue;
			if (file < 0) {
				if (t->n_files >= TARGET_MAX_FILES)
					return any;
				file = t->n_files++;
				snprintf(t->files[file].path, PATH_MAX, "%s", path);
				snprintf(t->files[file].host, PATH_MAX, "%s", host);
			}
			loc = &site->locs[site->n_locs++];
			loc->file = file;
			loc->offset = r->offset;
			snprintf(loc->symbol, sizeof(loc->symbol), "%s", r->symbol);
			site->found = true;
			any = true;
			break;
		}
	}
	return any;
}

/* Search one file (path: as the target sees it; host: how we reach it). */
static void search_file(struct search *s, const char *path, const char *host)
{
	struct target *t = s->t;
	struct elf_file_info info;
	int err;

	if (already_searched(s, path))
		return;
	if (s->n_searched < MAX_SEARCHED)
		snprintf(s->searched[s->n_searched++], PATH_MAX, "%s", path);
	else
		s->n_skipped++;

	err = elf_resolve(host, s->reqs, SITE_MAX * MAX_ALTS, &info);
	if (err) {
		s->unreadable++;
		s->last_err = err;
		return;
	}
	if (!t->sites[SITE_DECODE].found && !s->reqs[SITE_DECODE * MAX_ALTS].found &&
	    !info.has_symtab && !strcmp(path, s->exe))
		snprintf(s->stripped, sizeof(s->stripped), "%s", path);
	if (take_sites(s, path, host) && t->sites[SITE_DECODE].found &&
	    t->sites[SITE_DECODE].locs[0].file == t->n_files - 1 && !strcmp(path, s->exe))
		t->in_executable = true;
}

static int check_mapping(const struct proc_map *m, void *arg)
{
	struct search *s = arg;
	struct target *t = s->t;
	char path[PATH_MAX], host[PATH_MAX];
	size_t len = strlen(m->path);

	if (!t->model[0] && len > 5 && !strcmp(m->path + len - 5, ".gguf"))
		snprintf(t->model, sizeof(t->model), "%s", m->path); /* llama.cpp mmaps its model */
	if (m->perms[2] != 'x' || m->path[0] != '/' ||
	    proc_map_file(t->pid, m, path, sizeof(path), host, sizeof(host)))
		return 0;
	if (m->inode && seen_inode(s, m))
		return 0;
	search_file(s, path, host);
	return 0;
}

static void explain_not_found(const struct search *s, char *err, size_t errlen)
{
	const struct target *t = s->t;
	size_t off;
	int i;

	off = (size_t)snprintf(err, errlen,
			       "no llama.cpp in PID %d (%s): none of its %d mapped executable files defines llama_decode (searched:",
			       (int)t->pid, t->comm, s->n_searched + s->n_skipped);
	for (i = 0; i < s->n_searched && off < errlen; i++)
		off += (size_t)snprintf(err + off, errlen - off, "%s %s", i ? "," : "",
					s->searched[i]);
	if (s->n_skipped && off < errlen)
		off += (size_t)snprintf(err + off, errlen - off, ", and %d more", s->n_skipped);
	if (off < errlen)
		off += (size_t)snprintf(err + off, errlen - off, ")");
	if (s->stripped[0] && off < errlen)
		off += (size_t)snprintf(err + off, errlen - off,
					"; %s is stripped (no .symtab): if llama.cpp is linked into it statically, trace an unstripped build",
					s->stripped);
	if (s->unreadable && off < errlen)
		snprintf(err + off, errlen - off, "; %d file(s) could not be read (%s)%s",
			 s->unreadable, strerror(-s->last_err),
			 s->last_err == -EACCES || s->last_err == -EPERM ?
				 ": reading another user's (or a more privileged) process's files through "
				 "/proc/PID/root needs CAP_SYS_PTRACE, and files closed to others "
				 "CAP_DAC_READ_SEARCH" : "");
}

static struct search *search_new(pid_t pid, struct target *t, const char *exe)
{
	struct search *s;

	memset(t, 0, sizeof(*t));
	t->pid = pid;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->t = t;
	for (int i = 0; i < SITE_MAX; i++)
		for (int a = 0; a < MAX_ALTS; a++) /* "" never matches */
			s->reqs[i * MAX_ALTS + a].name = sites[i].names[a] ? sites[i].names[a] : "";
	snprintf(s->exe, sizeof(s->exe), "%s", exe);
	return s;
}

int target_find(pid_t pid, struct target *t, char *err, size_t errlen)
{
	struct search *s;
	char exe[PATH_MAX];
	int ret;

	ret = proc_check(pid);
	if (ret) {
		memset(t, 0, sizeof(*t));
		snprintf(err, errlen, "no process with PID %d", (int)pid);
		return ret;
	}
	proc_exe(pid, exe, sizeof(exe));
	s = search_new(pid, t, exe);
	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	proc_comm(pid, t->comm, sizeof(t->comm));

	ret = proc_for_each_map(pid, check_mapping, s);
	if (ret < 0) {
		snprintf(err, errlen, "cannot read /proc/%d/maps: %s%s", (int)pid, strerror(-ret),
			 ret == -EACCES || ret == -EPERM ? " (run as root)" : "");
	} else if (proc_check(pid)) {
		snprintf(err, errlen, "PID %d exited while llmtap was looking at it", (int)pid);
		ret = -ESRCH;
	} else if (!t->sites[SITE_DECODE].found) {
		explain_not_found(s, err, errlen);
		ret = -ENOENT;
	}
	free(s);
	return ret;
}

int target_find_files(pid_t pid, const char *comm, const char *const *paths, int n,
		      struct target *t, char *err, size_t errlen)
{
	struct search *s = search_new(pid, t, n > 0 ? paths[0] : "");
	int ret = 0;

	if (!s) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	snprintf(t->comm, sizeof(t->comm), "%s", comm);
	for (int i = 0; i < n; i++)
		search_file(s, paths[i], paths[i]);
	if (!t->sites[SITE_DECODE].found) {
		explain_not_found(s, err, errlen);
		ret = -ENOENT;
	}
	free(s);
	return ret;
}
