/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* The libraries a program will load, from ld.so's --list output (`llmtap run`). */
#ifndef LLMTAP_LDD_H
#define LLMTAP_LDD_H

/* The libraries ld.so's --list output names ("name => /path (0x...)" lines), at most max. */
int ldd_parse(const char *text, char (*paths)[4096], int max);

#endif
