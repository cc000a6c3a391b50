// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The OpenTelemetry environment: the input is NAME=VALUE lines, the environment
 * otlp_config_load sees (through its getenv hook); every value is also parsed as
 * OTEL_RESOURCE_ATTRIBUTES (resource_parse_attrs, which a target's own
 * environment feeds) and as OTEL_EXPORTER_OTLP_HEADERS.
 */
#include "fuzz.h"

#include "export/otlp_config.h"
#include "target/resource.h"

#define MAX_VARS 64

static char *names[MAX_VARS], *values[MAX_VARS];
static int n_vars;

static const char *fake_getenv(const char *name)
{
	for (int i = n_vars - 1; i >= 0; i--)
		if (!strcmp(names[i], name))
			return values[i];
	return NULL;
}

static void check_resource(const struct resource *r)
{
	if (r->n < 0 || r->n > RESOURCE_MAX_ATTRS)
		abort();
	for (int i = 0; i < r->n; i++)
		if (strlen(r->attrs[i].key) >= sizeof(r->attrs[i].key) ||
		    strlen(r->attrs[i].value) >= sizeof(r->attrs[i].value))
			abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = fuzz_str(data, size), err[256];
	struct otlp_config *c = malloc(sizeof(*c));
	struct otlp_signal_config *sc = calloc(1, sizeof(*sc));
	struct resource *r = calloc(1, sizeof(*r));

	if (!c || !sc || !r)
		abort();
	n_vars = 0;
	for (char *line = text, *next; line && n_vars < MAX_VARS; line = next) {
		char *eq;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq = '\0';
		names[n_vars] = strdup(line);
		values[n_vars] = strdup(eq + 1); /* exact bounds for ASan */
		if (!names[n_vars] || !values[n_vars])
			abort();
		n_vars++;
	}
	if (!otlp_config_load(c, NULL, fake_getenv, err, sizeof(err))) {
		for (int s = 0; s < OTLP_SIGNALS; s++)
			if (c->signal[s].n_headers < 0 || c->signal[s].n_headers > OTLP_MAX_HEADERS ||
			    strlen(c->signal[s].url) >= sizeof(c->signal[s].url))
				abort();
	} else if (strlen(err) >= sizeof(err)) {
		abort();
	}
	for (int i = 0; i < n_vars; i++) {
		resource_parse_attrs(r, values[i]);
		check_resource(r);
		otlp_parse_headers(sc, values[i]);
		if (sc->n_headers < 0 || sc->n_headers > OTLP_MAX_HEADERS)
			abort();
	}
	for (int i = 0; i < n_vars; i++) {
		free(names[i]);
		free(values[i]);
	}
	free(r);
	free(sc);
	free(c);
	free(text);
	return 0;
}
