/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Strings from a traced process (its memory, files, /proc entries) made safe
 * to pass on: valid UTF-8 for every sink, and no control characters on a
 * terminal or in a log line.
 */
#ifndef LLMTAP_TEXT_H
#define LLMTAP_TEXT_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Copy src[0..len) (stopping at a NUL) into dst as valid UTF-8: each byte of
 * an invalid or overlong sequence becomes U+FFFD, and the copy is cut on a
 * character boundary to fit cap - 1 bytes. Always NUL-terminates (cap > 0).
 * Returns the bytes written. dst and src may not overlap.
 */
size_t utf8_sanitize(char *dst, size_t cap, const char *src, size_t len);
/* The same in place (s holds cap bytes, its string may grow up to that). */
size_t utf8_sanitize_inplace(char *s, size_t cap);
/* Cut s (valid UTF-8) to at most max bytes on a character boundary. */
void utf8_cut(char *s, size_t max);
/* True when s is valid UTF-8 (no overlong forms, no surrogates, <= U+10FFFF). */
bool utf8_valid(const char *s, size_t len);

/*
 * s for a terminal or a log line: control characters (C0, DEL, C1) written as
 * \xNN, a backslash as \\, invalid UTF-8 as U+FFFD; cut to fit cap - 1 bytes.
 * Returns buf.
 */
const char *term_safe(char *buf, size_t cap, const char *s);

/*
 * "llmtap: " and the formatted message on stderr, made terminal-safe as a
 * whole (the message may quote a target's strings), and a newline.
 */
__attribute__((format(printf, 1, 2))) void tell(const char *fmt, ...);

#endif
