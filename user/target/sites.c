// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "target/sites.h"

#include <stddef.h>

#define ALTS_OF(...) ((const struct site_alt[]){ __VA_ARGS__ })
#define N_ALTS(...) (sizeof(ALTS_OF(__VA_ARGS__)) / sizeof(struct site_alt))

static const struct site_info table[SITE_MAX] = {
#define SITE(id, label_, layer_, need_, probe, enter, exit, op, why_, ...)                         \
	[SITE_##id] = { .label = label_,                                                           \
			.layer = LAYER_##layer_,                                                   \
			.need = NEED_##need_,                                                     \
			.entry = (PROBE_##probe & PROBE_ENTRY) != 0,                               \
			.ret = (PROBE_##probe & PROBE_RETURN) != 0,                                \
			.session = (PROBE_##probe & PROBE_SESSION_BIT) != 0,                       \
			.why = why_,                                                               \
			.alts = { __VA_ARGS__ } },
#include "llmtap_sites.def"
#undef SITE
};

/* Each row: names within the table's room; "none" is a handler exactly when its probe is absent. */
#define SITE(id, label, layer, need, probe, enter, exit, op, why, ...)                             \
	_Static_assert(N_ALTS(__VA_ARGS__) >= 1 && N_ALTS(__VA_ARGS__) <= SITE_MAX_ALTS,           \
		       #id ": 1 to SITE_MAX_ALTS names");                                         \
	_Static_assert((__builtin_strcmp(#enter, "none") == 0) == !(PROBE_##probe & PROBE_ENTRY),  \
		       #id ": an entry handler exactly when probed at entry");                     \
	_Static_assert((__builtin_strcmp(#exit, "none") == 0) == !(PROBE_##probe & PROBE_RETURN),  \
		       #id ": a return handler exactly when probed at return");
#include "llmtap_sites.def"
#undef SITE

const struct site_info *site_info(enum llmtap_site s)
{
	return &table[s < SITE_MAX ? s : 0];
}

const char *site_layer_name(enum llmtap_layer l)
{
	static const char *const names[LAYER_MAX] = { "engine", "sampling", "server", "http" };

	return l < LAYER_MAX ? names[l] : "?";
}
