// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/ldd.h"

#include <stdio.h>
#include <string.h>

int ldd_parse(const char *text, char (*paths)[4096], int max)
{
	int n = 0;

	for (const char *line = text; line && *line && n < max;) {
		const char *nl = strchr(line, '\n'), *arrow = strstr(line, "=> /"), *end;

		if (arrow && (!nl || arrow < nl)) {
			arrow += 3;
			end = strstr(arrow, " (");
			if (!end || (nl && end > nl))
				end = nl ? nl : arrow + strlen(arrow);
			snprintf(paths[n++], 4096, "%.*s", (int)(end - arrow), arrow);
		}
		line = nl ? nl + 1 : NULL;
	}
	return n;
}
