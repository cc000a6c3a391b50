// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * What llmtap reads from a target's /proc files, which the target shapes (its
 * mapped paths, its cgroup names): each line as a /proc/PID/maps line, the whole
 * text as /proc/PID/cgroup (container id, pod UID) and as /proc/PID/stat, and the
 * bytes as a /proc/PID/cmdline and environ (router mode's claim: NULs inside).
 */
#include "fuzz.h"

#include "target/proc.h"
#include "target/resource.h"
#include "target/router.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_str(data, size), id[80], uid[48], shown[64];
	struct proc_map *m = malloc(sizeof(*m));

	if (!m)
		abort();
	for (char *line = text, *next; line; line = next) {
		char *copy;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		copy = strdup(line); /* exact bounds for ASan */
		if (!copy)
			abort();
		if (!proc_parse_maps_line(copy, m)) {
			if (strlen(m->path) >= sizeof(m->path) || strlen(m->perms) >= sizeof(m->perms))
				abort();
			proc_shown_path(m->path, shown, sizeof(shown));
		}
		free(copy);
	}
	free(text);
	text = fuzz_str(data, size);
	if (resource_container_id(text, id, sizeof(id)) && strlen(id) >= sizeof(id))
		abort();
	if (resource_pod_uid(text, uid, sizeof(uid)) && strlen(uid) >= sizeof(uid))
		abort();
	proc_stat_start_time(text);
	proc_stat_ppid(text);
	free(text);
	/* the bytes as they are, NULs and all, with a NUL after them as proc_read_small leaves */
	text = fuzz_str(data, size);
	{
		char why[320];
		const char *v = router_arg(text, size, "--alias");

		if (v && *v && (v < text || v >= text + size)) /* a value inside the bytes */
			abort();
		if (router_claimed(text, size, text, size, why, sizeof(why)) &&
		    strlen(why) >= sizeof(why))
			abort();
	}
	free(text);
	free(m);
	return 0;
}
