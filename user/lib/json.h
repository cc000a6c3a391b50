/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Writing JSON strings: the one escaping routine every JSON writer uses. */
#ifndef LLMTAP_JSON_H
#define LLMTAP_JSON_H

#include <stdio.h>

/* s as a quoted JSON string ("" for NULL); quotes, backslashes and controls escaped. */
void json_write_string(FILE *out, const char *s);

#endif
