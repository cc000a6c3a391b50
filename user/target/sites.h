/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The probe-site table (include/llmtap_sites.def) as data for the loader. */
#ifndef LLMTAP_SITES_INFO_H
#define LLMTAP_SITES_INFO_H

#include <stdbool.h>

#include "llmtap_sites.h"

#define SITE_MAX_ALTS 3

/* One of a site's names, and the llama.cpp era it belongs to. */
struct site_alt {
	const char *symbol; /* "prefix*": a C++ mangled name by its prefix */
	const char *era;
};

struct site_info {
	const char *label;
	enum llmtap_layer layer;
	enum llmtap_site_need need;
	bool entry;     /* probed at entry */
	bool ret;       /* probed at return */
	bool session;   /* entry and return as one uprobe session, where the kernel has them */
	const char *why; /* why that policy */
	struct site_alt alts[SITE_MAX_ALTS]; /* newest first; unused ones NULL */
};

/* The row of site s (s < SITE_MAX). */
const struct site_info *site_info(enum llmtap_site s);
/* "engine", "sampling", "server", "http" */
const char *site_layer_name(enum llmtap_layer l);

#endif
