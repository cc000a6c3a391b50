/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* `llmtap run -- COMMAND...`: start a program under llmtap, traced from its first instruction. */
#ifndef LLMTAP_RUN_H
#define LLMTAP_RUN_H

#include "cmd/attach.h"

/*
 * Run argv (NULL-terminated) traced with attach's options (pid unused). Returns
 * the program's exit status (128 + signal when a signal ended it), or 1 with a
 * message when it could not be started or traced (nothing is run then).
 */
int cmd_run(const struct attach_opts *o, char *const *argv);

#endif
