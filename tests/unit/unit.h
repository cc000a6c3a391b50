/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Helpers the unit tests share (include after cmocka.h). */
#ifndef LLMTAP_TESTS_UNIT_H
#define LLMTAP_TESTS_UNIT_H

#include <stdlib.h>
#include <string.h>

#include "model/metrics.h"

/* METRIC_MAX_POINTS points: too big for the stack */
static inline struct metrics *new_metrics(void)
{
	struct metrics *m = calloc(1, sizeof(*m));

	assert_non_null(m);
	return m;
}

static inline void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("missing \"%s\" in:\n%s", needle, hay);
}

#endif
