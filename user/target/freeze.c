// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/freeze.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ptrace.h>
#include <sys/wait.h>

/* Seize and stop one thread; false if it cannot be held. */
static bool hold(pid_t tid)
{
	int status;

	if (ptrace(PTRACE_SEIZE, tid, NULL, NULL))
		return false;
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL)) {
		ptrace(PTRACE_DETACH, tid, NULL, NULL);
		return false;
	}
	/* the stop is reported to us, the tracer, and to nobody else */
	while (waitpid(tid, &status, __WALL) < 0)
		if (errno != EINTR)
			return false;
	return WIFSTOPPED(status);
}

bool freeze_process(pid_t pid, struct freeze *f)
{
	char dirname[64];
	struct dirent *de;
	DIR *dir;

	f->n = 0;
	snprintf(dirname, sizeof(dirname), "/proc/%d/task", (int)pid);
	dir = opendir(dirname);
	if (!dir)
		return false;
	while ((de = readdir(dir))) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);

		if (*end || tid <= 0)
			continue;
		if (f->n == FREEZE_MAX_THREADS || !hold((pid_t)tid)) {
			closedir(dir);
			freeze_release(f);
			return false;
		}
		f->tids[f->n++] = (pid_t)tid;
	}
	closedir(dir);
	return f->n > 0;
}

void freeze_release(struct freeze *f)
{
	for (int i = 0; i < f->n; i++)
		ptrace(PTRACE_DETACH, f->tids[i], NULL, NULL);
	f->n = 0;
}
