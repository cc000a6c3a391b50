/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * What llmtap_sites.def's rows become, for the BPF programs and the loader:
 * the flat site ids (a probe's BPF cookie), the layers and the probe policies.
 */
#ifndef LLMTAP_SITES_H
#define LLMTAP_SITES_H

/* What a group of probe sites lets llmtap see. */
enum llmtap_layer {
	LAYER_ENGINE = 0, /* libllama: decode/encode, KV cache, state and load calls */
	LAYER_SAMPLING,   /* sampled tokens */
	LAYER_SERVER,     /* llama-server tasks and slots */
	LAYER_HTTP,       /* llama-server's cpp-httplib request handling */
	LAYER_MAX,
};

/* Which probes a site gets. */
enum llmtap_probe_policy {
	PROBE_ENTRY = 1,  /* entry only */
	PROBE_RETURN = 2, /* return only */
	PROBE_BOTH = 3,   /* entry and return */
	/* entry and return, as one uprobe session where the kernel has them (Linux 6.13,
	 * uprobe_multi links): the return probe runs only when the entry handler asks
	 * (returns 0), so a call the entry ignores costs no return trampoline */
	PROBE_SESSION = 7,
};
#define PROBE_SESSION_BIT 4

/* Whether the site's layer needs it (see target_layer_found). */
enum llmtap_site_need {
	NEED_OPT = 0, /* used where found */
	NEED_REQ = 1, /* the layer cannot work without it */
	NEED_ANY = 2, /* the layer needs one of its ANY sites */
};

enum llmtap_site {
#define SITE(id, ...) SITE_##id,
#include "llmtap_sites.def"
#undef SITE
	SITE_MAX,
};

/* A probe's cookie is its site id; the upper bits are kept free but for these flags. */
_Static_assert(SITE_MAX < 256, "site ids fit the cookie's low byte");
#define LLMTAP_COOKIE_SITE 0xffull
/* a row serving two jobs: the loader chose this probe for its (sampling) layer */
#define LLMTAP_COOKIE_SAMPLE (1ull << 8)
/* a row with a return probe attached at entry alone (the loader: a backend whose
 * calls may throw through it): its entry handler records what it can there */
#define LLMTAP_COOKIE_ENTRY_ONLY (1ull << 9)

#endif /* LLMTAP_SITES_H */
