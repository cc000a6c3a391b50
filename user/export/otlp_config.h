/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Where and how OTLP/HTTP export goes: the OpenTelemetry exporter contract
 * (OTEL_EXPORTER_OTLP_*, OTEL_TRACES_SAMPLER, OTEL_METRIC_EXPORT_INTERVAL,
 * OTEL_BSP_*, OTEL_SDK_DISABLED, ...) read from the environment, then the
 * command line's --otlp-* flags on top.
 */
#ifndef LLMTAP_OTLP_CONFIG_H
#define LLMTAP_OTLP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define OTLP_MAX_HEADERS 16
#define OTLP_URL_LEN 1024

enum otlp_signal { OTLP_TRACES = 0, OTLP_METRICS, OTLP_SIGNALS };

enum otlp_sampler { OTLP_SAMPLE_ALWAYS_ON = 0, OTLP_SAMPLE_ALWAYS_OFF, OTLP_SAMPLE_RATIO };

struct otlp_header {
	char key[64];
	char value[512];
};

/* One signal's exporter. */
struct otlp_signal_config {
	bool enabled;
	char url[OTLP_URL_LEN]; /* the full URL requests go to */
	struct otlp_header headers[OTLP_MAX_HEADERS];
	int n_headers;
	uint64_t timeout_ms;  /* per request */
	bool gzip;
	char ca_file[512];     /* "" = the system's CA store */
	char client_cert[512]; /* PEM, "" = none */
	char client_key[512];
};

struct otlp_config {
	bool enabled; /* at least one signal goes out */
	struct otlp_signal_config signal[OTLP_SIGNALS];
	enum otlp_sampler sampler;
	double sampler_ratio;         /* traceidratio's probability */
	uint64_t metric_interval_ms;  /* OTEL_METRIC_EXPORT_INTERVAL */
	bool delta;                   /* delta temporality for sums and histograms */
	/* the batch span processor (OTEL_BSP_*) */
	uint32_t max_queue_size;      /* spans waiting to go out, at most */
	uint32_t max_export_batch;    /* spans per request */
	uint64_t schedule_delay_ms;   /* a partial batch goes out after this */
	uint64_t retry_max_ms;        /* give up on a request after retrying this long */
	uint64_t flush_timeout_ms;    /* the final flush's deadline */
	size_t max_queue_bytes;       /* encoded requests waiting, at most */
};

/* The command line's part; NULL / 0 = not given. */
struct otlp_cli {
	const char *endpoint;     /* --otlp-endpoint URL (base, like OTEL_EXPORTER_OTLP_ENDPOINT) */
	const char *headers[OTLP_MAX_HEADERS]; /* --otlp-header KEY=VALUE */
	int n_headers;
	const char *compression;  /* gzip | none */
	const char *protocol;     /* http/protobuf only */
	const char *sampler;      /* always_on | always_off | traceidratio[=RATIO] */
	const char *temporality;  /* cumulative | delta */
	uint64_t timeout_ms;
	uint64_t interval_ms;
	const char *ca_file;
	const char *client_cert;
	const char *client_key;
};

typedef const char *(*otlp_getenv_fn)(const char *name);

/*
 * Fill c from the environment (through getenv_fn, getenv when NULL) and cli.
 * Export is enabled by --otlp-endpoint or any OTEL_EXPORTER_OTLP_*ENDPOINT;
 * OTEL_SDK_DISABLED=true turns an environment-only configuration off.
 * Returns 0, or -EINVAL with a one-line reason naming the variable or flag.
 */
int otlp_config_load(struct otlp_config *c, const struct otlp_cli *cli, otlp_getenv_fn getenv_fn,
		     char *err, size_t errlen);

/* Parse "k1=v1,k2=v2" (OTEL_EXPORTER_OTLP_HEADERS syntax, values percent-decoded)
 * into sc's headers, replacing keys already there. 0 or -EINVAL. */
int otlp_parse_headers(struct otlp_signal_config *sc, const char *s);

const char *otlp_signal_name(enum otlp_signal sig);

#endif
