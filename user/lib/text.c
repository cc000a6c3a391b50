// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "lib/text.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char replacement[] = "\xef\xbf\xbd"; /* U+FFFD */

/* The length of the valid UTF-8 character at s[0..n), or 0 when it is not one. */
static size_t char_len(const unsigned char *s, size_t n)
{
	uint32_t cp;
	size_t len;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;

	for (size_t i = 0; i < len;) {
		size_t n = char_len(p + i, len - i);

		if (!n)
			return false;
		i += n;
	}
	return true;
}

size_t utf8_sanitize(char *dst, size_t cap, const char *src, size_t len)
{
	const unsigned char *p = (const unsigned char *)src;
	size_t out = 0;

	if (!cap)
		return 0;
	for (size_t i = 0; i < len && p[i];) {
		size_t n = char_len(p + i, len - i);
		const char *piece = n ? src + i : replacement;
		size_t plen = n ? n : sizeof(replacement) - 1;

		if (out + plen > cap - 1)
			break;
		memcpy(dst + out, piece, plen);
		out += plen;
		i += n ? n : 1;
	}
	dst[out] = '\0';
	return out;
}

size_t utf8_sanitize_inplace(char *s, size_t cap)
{
	size_t len, out;
	char *copy;

	if (!cap)
		return 0;
	s[cap - 1] = '\0'; /* a string that fills s is cut to cap - 1 bytes */
	len = strlen(s);
	if (utf8_valid(s, len))
		return len;
	copy = malloc(len + 1);
	if (!copy) { /* no memory: drop what is not ASCII */
		for (size_t i = 0; i < len; i++)
			if ((unsigned char)s[i] >= 0x80)
				s[i] = '?';
		return len;
	}
	memcpy(copy, s, len);
	out = utf8_sanitize(s, cap, copy, len);
	free(copy);
	return out;
}

void utf8_cut(char *s, size_t max)
{
	size_t len = strlen(s);

	if (len <= max)
		return;
	while (max > 0 && ((unsigned char)s[max] & 0xc0) == 0x80)
		max--; /* s[max] continues a character: cut before that character */
	s[max] = '\0';
}

const char *term_safe(char *buf, size_t cap, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t out = 0, len = strlen(s);

	if (!cap)
		return buf;
	for (size_t i = 0; i < len;) {
		size_t n = char_len(p + i, len - i);
		char esc[8];
		const char *piece = esc;
		size_t plen;

		if (!n) {
			piece = replacement;
			plen = sizeof(replacement) - 1;
			n = 1;
		} else if (p[i] < 0x20 || p[i] == 0x7f) {
			plen = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", p[i]);
		} else if (n == 2 && p[i] == 0xc2 && p[i + 1] < 0xa0) { /* C1: U+0080..U+009F */
			plen = (size_t)snprintf(esc, sizeof(esc), "\\x%02x", p[i + 1]);
		} else if (p[i] == '\\') {
			piece = "\\\\";
			plen = 2;
		} else {
			piece = s + i;
			plen = n;
		}
		if (out + plen > cap - 1)
			break;
		memcpy(buf + out, piece, plen);
		out += plen;
		i += n;
	}
	buf[out] = '\0';
	return buf;
}

void tell(const char *fmt, ...)
{
	char msg[4096], safe[4096];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "llmtap: %s\n", term_safe(safe, sizeof(safe), msg));
}
