// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "export/otlp_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lib/util.h"

#define DEFAULT_ENDPOINT "http://localhost:4318"

static const char *const signal_names[OTLP_SIGNALS] = { "traces", "metrics" };
static const char *const signal_env[OTLP_SIGNALS] = { "TRACES", "METRICS" };
static const char *const signal_paths[OTLP_SIGNALS] = { "v1/traces", "v1/metrics" };

const char *otlp_signal_name(enum otlp_signal sig)
{
	return sig < OTLP_SIGNALS ? signal_names[sig] : "?";
}

static const char *env_getenv(const char *name)
{
	return getenv(name);
}

struct loader {
	otlp_getenv_fn get;
	char *err;
	size_t errlen;
};

/* A variable's value; an empty one counts as unset, as the specification says. */
static const char *env(const struct loader *l, const char *name)
{
	const char *v = l->get(name);

	return v && *v ? v : NULL;
}

/* OTEL_EXPORTER_OTLP_{SIGNAL}_{what}, else OTEL_EXPORTER_OTLP_{what}; name gets the one used. */
static const char *env_signal(const struct loader *l, enum otlp_signal sig, const char *what,
			      char *name, size_t len)
{
	const char *v;

	snprintf(name, len, "OTEL_EXPORTER_OTLP_%s_%s", signal_env[sig], what);
	if ((v = env(l, name)))
		return v;
	snprintf(name, len, "OTEL_EXPORTER_OTLP_%s", what);
	return env(l, name);
}

__attribute__((format(printf, 2, 3)))
static int fail(const struct loader *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->err, l->errlen, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static int parse_ms(const char *s, uint64_t *ms)
{
	char *end;
	unsigned long long v;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || !v)
		return -EINVAL;
	*ms = v;
	return 0;
}

static bool is_url(const char *s)
{
	return (!strncmp(s, "http://", 7) && s[7]) || (!strncmp(s, "https://", 8) && s[8]);
}

/* Trim, then percent-decode src[0..n) into dst: all of it, and no line break (it goes
 * into an HTTP header). */
static int decode_part(const char *src, size_t n, char *dst, size_t len)
{
	ssize_t m;

	while (n && isspace((unsigned char)*src))
		src++, n--;
	while (n && isspace((unsigned char)src[n - 1]))
		n--;
	m = pct_decode(src, n, dst, len);
	if (m < 0 || (size_t)m >= len || memchr(dst, '\r', (size_t)m) || memchr(dst, '\n', (size_t)m))
		return -EINVAL;
	return 0;
}

int otlp_parse_headers(struct otlp_signal_config *sc, const char *s)
{
	while (*s) {
		const char *comma = strchr(s, ','), *eq;
		size_t n = comma ? (size_t)(comma - s) : strlen(s);
		struct otlp_header h;
		int i;

		eq = memchr(s, '=', n);
		if (!eq || decode_part(s, (size_t)(eq - s), h.key, sizeof(h.key)) || !h.key[0] ||
		    strpbrk(h.key, ": \t") ||
		    decode_part(eq + 1, n - (size_t)(eq + 1 - s), h.value, sizeof(h.value)))
			return -EINVAL;
		for (i = 0; i < sc->n_headers && strcasecmp(sc->headers[i].key, h.key); i++)
			;
		if (i == OTLP_MAX_HEADERS)
			return -EINVAL;
		sc->headers[i] = h;
		if (i == sc->n_headers)
			sc->n_headers++;
		s += n + (comma ? 1 : 0);
	}
	return 0;
}

/* base + "/v1/traces", or the per-signal URL as it is */
static void signal_url(char *url, size_t len, const char *base, enum otlp_signal sig)
{
	size_t n = strlen(base);

	snprintf(url, len, "%s%s%s", base, n && base[n - 1] == '/' ? "" : "/", signal_paths[sig]);
}

static int load_protocol(const struct loader *l, const char *v, const char *what)
{
	if (!strcmp(v, "http/protobuf"))
		return 0;
	if (!strcmp(v, "grpc") || !strcmp(v, "http/json"))
		return fail(l, "%s=%s is not supported: llmtap sends OTLP/HTTP with protobuf "
			       "(http/protobuf; a Collector's OTLP receiver takes it on port 4318)",
			    what, v);
	return fail(l, "%s: unknown protocol '%s' (llmtap speaks http/protobuf)", what, v);
}

static int load_compression(const struct loader *l, const char *v, const char *what, bool *gzip)
{
	if (!strcasecmp(v, "gzip") || !strcasecmp(v, "none")) {
		*gzip = !strcasecmp(v, "gzip");
		return 0;
	}
	return fail(l, "%s: '%s' is not gzip or none", what, v);
}

static int load_signal(const struct loader *l, const struct otlp_cli *cli, enum otlp_signal sig,
		       struct otlp_signal_config *sc)
{
	char name[96];
	const char *v;
	int ret;

	/* where: the CLI's base URL, the per-signal variable, the base variable */
	if (cli->endpoint) {
		if (!is_url(cli->endpoint))
			return fail(l, "--otlp-endpoint: '%s' is not an http:// or https:// URL",
				    cli->endpoint);
		signal_url(sc->url, sizeof(sc->url), cli->endpoint, sig);
	} else {
		snprintf(name, sizeof(name), "OTEL_EXPORTER_OTLP_%s_ENDPOINT", signal_env[sig]);
		if ((v = env(l, name))) {
			if (!is_url(v))
				return fail(l, "%s: '%s' is not an http:// or https:// URL", name, v);
			snprintf(sc->url, sizeof(sc->url), "%s", v);
		} else if ((v = env(l, "OTEL_EXPORTER_OTLP_ENDPOINT"))) {
			if (!is_url(v))
				return fail(l, "OTEL_EXPORTER_OTLP_ENDPOINT: '%s' is not an http:// "
					       "or https:// URL", v);
			signal_url(sc->url, sizeof(sc->url), v, sig);
		} else {
			signal_url(sc->url, sizeof(sc->url), DEFAULT_ENDPOINT, sig);
		}
	}
	/* headers: the common ones, then the signal's, then the CLI's replace by key */
	/* headers carry credentials: a malformed one is never echoed */
	if ((v = env(l, "OTEL_EXPORTER_OTLP_HEADERS")) && otlp_parse_headers(sc, v))
		return fail(l, "OTEL_EXPORTER_OTLP_HEADERS is not key=value[,key=value...] "
			       "(values percent-encoded; not shown, as it may hold a secret)");
	snprintf(name, sizeof(name), "OTEL_EXPORTER_OTLP_%s_HEADERS", signal_env[sig]);
	if ((v = env(l, name)) && otlp_parse_headers(sc, v))
		return fail(l, "%s is not key=value[,key=value...] (values percent-encoded; "
			       "not shown, as it may hold a secret)", name);
	for (int i = 0; i < cli->n_headers; i++)
		if (otlp_parse_headers(sc, cli->headers[i]))
			return fail(l, "--otlp-header number %d is not KEY=VALUE (not shown, as it "
				       "may hold a secret)", i + 1);

	sc->timeout_ms = 10000;
	if (cli->timeout_ms)
		sc->timeout_ms = cli->timeout_ms;
	else if ((v = env_signal(l, sig, "TIMEOUT", name, sizeof(name))) &&
		 parse_ms(v, &sc->timeout_ms))
		return fail(l, "%s: '%s' is not a positive number of milliseconds", name, v);

	if (cli->compression) {
		if ((ret = load_compression(l, cli->compression, "--otlp-compression", &sc->gzip)))
			return ret;
	} else if ((v = env_signal(l, sig, "COMPRESSION", name, sizeof(name))) &&
		   (ret = load_compression(l, v, name, &sc->gzip))) {
		return ret;
	}

	if (cli->protocol) {
		if ((ret = load_protocol(l, cli->protocol, "--otlp-protocol")))
			return ret;
	} else if ((v = env_signal(l, sig, "PROTOCOL", name, sizeof(name))) &&
		   (ret = load_protocol(l, v, name))) {
		return ret;
	}

	/* TLS: the system's CA store unless a CA file is given; an optional client certificate */
	v = cli->ca_file ? cli->ca_file : env_signal(l, sig, "CERTIFICATE", name, sizeof(name));
	snprintf(sc->ca_file, sizeof(sc->ca_file), "%s", v ? v : "");
	v = cli->client_cert ? cli->client_cert :
			       env_signal(l, sig, "CLIENT_CERTIFICATE", name, sizeof(name));
	snprintf(sc->client_cert, sizeof(sc->client_cert), "%s", v ? v : "");
	v = cli->client_key ? cli->client_key : env_signal(l, sig, "CLIENT_KEY", name, sizeof(name));
	snprintf(sc->client_key, sizeof(sc->client_key), "%s", v ? v : "");
	if (!sc->client_cert[0] != !sc->client_key[0])
		return fail(l, "a client certificate needs its key and a key its certificate "
			       "(--otlp-client-cert and --otlp-client-key, or "
			       "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE and _CLIENT_KEY)");
	return 0;
}

static int load_sampler(const struct loader *l, const char *v, const char *arg, const char *what,
			struct otlp_config *c)
{
	char name[64], *end;
	const char *eq = strchr(v, '=');
	size_t n = eq ? (size_t)(eq - v) : strlen(v);

	snprintf(name, sizeof(name), "%.*s", (int)n, v);
	if (eq)
		arg = eq + 1;
	if (!strcmp(name, "always_on") || !strcmp(name, "parentbased_always_on")) {
		c->sampler = OTLP_SAMPLE_ALWAYS_ON;
	} else if (!strcmp(name, "always_off") || !strcmp(name, "parentbased_always_off")) {
		c->sampler = OTLP_SAMPLE_ALWAYS_OFF;
	} else if (!strcmp(name, "traceidratio") || !strcmp(name, "parentbased_traceidratio")) {
		c->sampler = OTLP_SAMPLE_RATIO;
		c->sampler_ratio = 1.0;
		if (arg) {
			errno = 0;
			c->sampler_ratio = strtod(arg, &end);
			if (errno || end == arg || *end || !(c->sampler_ratio >= 0) ||
			    c->sampler_ratio > 1)
				return fail(l, "%s: the ratio '%s' is not a number from 0 to 1", what,
					    arg);
		}
	} else {
		return fail(l, "%s: unknown sampler '%s' (always_on, always_off, traceidratio, "
			       "or their parentbased_ forms)", what, name);
	}
	return 0;
}

static int load_bsp(const struct loader *l, const char *name, uint64_t *out)
{
	const char *v = env(l, name);

	if (v && parse_ms(v, out))
		return fail(l, "%s: '%s' is not a positive integer", name, v);
	return 0;
}

static int load_llmtap_duration(const struct loader *l, const char *name, uint64_t *ms)
{
	const char *v = env(l, name);
	uint64_t ns;

	if (!v)
		return 0;
	if (parse_duration(v, &ns) || ns < 1000000)
		return fail(l, "%s: '%s' is not a duration (e.g. 30s, 500ms)", name, v);
	*ms = ns / 1000000;
	return 0;
}

/* OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER: otlp (the default) or none */
static int load_exporter(const struct loader *l, const char *name, bool *on)
{
	const char *v = env(l, name);

	if (!v || !strcmp(v, "otlp"))
		return 0;
	if (!strcmp(v, "none")) {
		*on = false;
		return 0;
	}
	return fail(l, "%s=%s is not supported: llmtap exports otlp (or none; Prometheus "
		       "has its own flag, --prometheus)", name, v);
}

int otlp_config_load(struct otlp_config *c, const struct otlp_cli *cli, otlp_getenv_fn getenv_fn,
		     char *err, size_t errlen)
{
	const struct loader l = { getenv_fn ? getenv_fn : env_getenv, err, errlen };
	const struct otlp_cli none = { 0 };
	const char *v, *disabled;
	bool flags, wanted;
	uint64_t n;
	int ret;

	cli = cli ? cli : &none;
	memset(c, 0, sizeof(*c));
	c->metric_interval_ms = 60000;
	c->max_queue_size = 2048;
	c->max_export_batch = 512;
	c->schedule_delay_ms = 5000;
	c->retry_max_ms = 60000;
	c->flush_timeout_ms = 5000;
	c->max_queue_bytes = 16u << 20;

	flags = cli->endpoint || cli->n_headers || cli->compression || cli->protocol ||
		cli->sampler || cli->temporality || cli->timeout_ms || cli->interval_ms ||
		cli->ca_file || cli->client_cert || cli->client_key;
	wanted = cli->endpoint || env(&l, "OTEL_EXPORTER_OTLP_ENDPOINT") ||
		 env(&l, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") ||
		 env(&l, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT");
	if (flags && !wanted)
		return fail(&l, "the --otlp-* flags need somewhere to send: --otlp-endpoint URL "
				"(or OTEL_EXPORTER_OTLP_ENDPOINT)");
	disabled = env(&l, "OTEL_SDK_DISABLED");
	if (!wanted || (!cli->endpoint && disabled && !strcasecmp(disabled, "true")))
		return 0;

	c->signal[OTLP_TRACES].enabled = c->signal[OTLP_METRICS].enabled = true;
	if ((ret = load_exporter(&l, "OTEL_TRACES_EXPORTER", &c->signal[OTLP_TRACES].enabled)) ||
	    (ret = load_exporter(&l, "OTEL_METRICS_EXPORTER", &c->signal[OTLP_METRICS].enabled)))
		return ret;
	for (int s = 0; s < OTLP_SIGNALS; s++)
		if ((ret = load_signal(&l, cli, (enum otlp_signal)s, &c->signal[s])))
			return ret;

	c->sampler = OTLP_SAMPLE_ALWAYS_ON;
	c->sampler_ratio = 1.0;
	if (cli->sampler)
		ret = load_sampler(&l, cli->sampler, NULL, "--otlp-sampler", c);
	else if ((v = env(&l, "OTEL_TRACES_SAMPLER")))
		ret = load_sampler(&l, v, env(&l, "OTEL_TRACES_SAMPLER_ARG"), "OTEL_TRACES_SAMPLER", c);
	if (ret)
		return ret;

	v = cli->temporality ? cli->temporality :
			       env(&l, "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE");
	if (v) {
		/* lowmemory is delta for counters and histograms, which is all llmtap's sums */
		if (!strcasecmp(v, "delta") || !strcasecmp(v, "lowmemory"))
			c->delta = true;
		else if (strcasecmp(v, "cumulative"))
			return fail(&l, "%s: '%s' is not cumulative or delta",
				    cli->temporality ? "--otlp-temporality" :
						       "OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE",
				    v);
	}

	if (cli->interval_ms)
		c->metric_interval_ms = cli->interval_ms;
	else if ((ret = load_bsp(&l, "OTEL_METRIC_EXPORT_INTERVAL", &c->metric_interval_ms)))
		return ret;
	if ((ret = load_bsp(&l, "OTEL_BSP_SCHEDULE_DELAY", &c->schedule_delay_ms)))
		return ret;
	n = c->max_queue_size;
	if ((ret = load_bsp(&l, "OTEL_BSP_MAX_QUEUE_SIZE", &n)))
		return ret;
	c->max_queue_size = n > 1000000 ? 1000000 : (uint32_t)n;
	n = c->max_export_batch;
	if ((ret = load_bsp(&l, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", &n)))
		return ret;
	c->max_export_batch = n > c->max_queue_size ? c->max_queue_size : (uint32_t)n;
	if ((ret = load_llmtap_duration(&l, "LLMTAP_OTLP_RETRY_MAX", &c->retry_max_ms)) ||
	    (ret = load_llmtap_duration(&l, "LLMTAP_OTLP_FLUSH_TIMEOUT", &c->flush_timeout_ms)))
		return ret;

	c->enabled = c->signal[OTLP_TRACES].enabled || c->signal[OTLP_METRICS].enabled;
	return 0;
}
