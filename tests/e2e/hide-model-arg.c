// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * A preload library (LD_PRELOAD) that makes a llama-server lie about itself: before main,
 * every argument goes to a copy the program reads, and the command line the kernel shows
 * (/proc/PID/cmdline, the process's own memory) loses its -m/--model: the server loads
 * and serves its model as ever but looks started without one, like a router llama-server.
 */
#include <stdlib.h>
#include <string.h>

__attribute__((constructor)) static void hide_model_arg(int argc, char **argv, char **envp)
{
	(void)envp;
	for (int i = 1; i < argc; i++) {
		char *copy;

		if (strcmp(argv[i], "-m") && strcmp(argv[i], "--model"))
			continue;
		copy = strdup(argv[i]);
		if (!copy)
			return;
		memset(argv[i] + 1, 'x', strlen(argv[i]) - 1); /* "-x", "-xxxxxxx": no model */
		argv[i] = copy;
	}
}
