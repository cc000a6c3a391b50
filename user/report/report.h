/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * `llmtap report`: a trace file written by `llmtap record` as one self-contained
 * HTML page (inline CSS and SVG, no script, nothing loaded from elsewhere):
 * a summary, latency distributions, throughput, KV cache and queue over time,
 * and the slowest requests.
 */
#ifndef LLMTAP_REPORT_H
#define LLMTAP_REPORT_H

#include <stddef.h>

/*
 * Read a `llmtap record` trace file and write a self-contained HTML report.
 * Returns 0, or -errno / -EINVAL with a one-line reason in err (unreadable file,
 * not a trace-event JSON object, no llmtap events in it).
 */
int report_write(const char *trace_path, const char *html_path, char *err, size_t errlen);

#endif
