// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "export/otlp_export.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "lib/clock.h"
#include "model/telemetry.h"
#include "opentelemetry/proto/collector/metrics/v1/metrics_service.pb-c.h"
#include "opentelemetry/proto/collector/trace/v1/trace_service.pb-c.h"

#define BACKOFF_INITIAL_MS 1000
#define BACKOFF_MAX_MS 5000
#define RESPONSE_MAX 4096 /* bytes of a response body kept (its partial_success or error) */

struct job {
	struct job *next;
	enum otlp_signal sig;
	uint8_t *body;
	size_t len;
	uint32_t items;
	uintptr_t key; /* its submitter */
};

struct otlp_exporter {
	struct otlp_config cfg;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct job *head, *tail;  /* waiting, oldest first */
	struct otlp_stats stats;
	bool stopping;            /* drain until deadline_ms, then quit */
	uint64_t deadline_ms;     /* CLOCK_MONOTONIC */
	bool failing[OTLP_SIGNALS]; /* the last attempt failed: log the recovery */
	CURL *curl;
	struct curl_slist *headers[OTLP_SIGNALS];
	uint64_t rng;
	/* the response being read (sender thread only) */
	char response[RESPONSE_MAX];
	size_t response_len;
	char retry_after[64];
};

static const char *const drop_names[OTLP_DROP_MAX] = { "queue_full", "export_failed", "rejected",
							"shutdown" };

void otlp_print_stats(FILE *out, const struct otlp_stats *st)
{
	const struct otlp_signal_stats *t = &st->signal[OTLP_TRACES], *m = &st->signal[OTLP_METRICS];
	uint64_t dt = 0, dm = 0;

	for (int i = 0; i < OTLP_DROP_MAX; i++) {
		dt += t->dropped[i];
		dm += m->dropped[i];
	}
	fprintf(out,
		"llmtap: OTLP: %llu spans and %llu data points exported (%llu and %llu requests), "
		"%llu spans and %llu data points dropped, %llu failed attempts\n",
		(unsigned long long)t->exported, (unsigned long long)m->exported,
		(unsigned long long)t->requests, (unsigned long long)m->requests,
		(unsigned long long)dt, (unsigned long long)dm,
		(unsigned long long)(t->failures + m->failures));
}

void otlp_export_metrics(struct otlp_exporter *e, const struct otlp_config *c,
			 const struct otlp_encode_ctx *ctx, const struct metrics *m,
			 struct otlp_metric_export *x, uint64_t now_ns, bool final, uintptr_t key)
{
	uint64_t interval = c->metric_interval_ms * 1000000ull;
	uint8_t *buf;
	size_t len;
	uint32_t n;

	if (!c->signal[OTLP_METRICS].enabled)
		return;
	if (!x->next_ns)
		x->next_ns = now_ns + interval;
	/*
	 * Exports happen on the session's ticks, which land a little before or
	 * after the export's due time: the tick nearest to it exports, or an
	 * export interval equal to the tick interval would skip every other tick.
	 */
	if (!final && !tm_tick_due(now_ns + interval / 2, &x->next_ns, interval))
		return;
	if (otlp_encode_metrics(ctx, m, c->delta ? x->prev : NULL, x->prev_ns, now_ns, &buf, &len,
				&n)) {
		otlp_exporter_count_drop(e, OTLP_METRICS, OTLP_DROP_FAILED, (uint64_t)m->n_points);
		return;
	}
	if (c->delta) {
		*x->prev = *m;
		x->prev_ns = now_ns;
		if (!n) { /* nothing changed */
			free(buf);
			return;
		}
	}
	otlp_exporter_submit(e, OTLP_METRICS, buf, len, n, !c->delta, key);
}

const char *otlp_drop_name(enum otlp_drop why)
{
	return why < OTLP_DROP_MAX ? drop_names[why] : "?";
}

static uint64_t now_ms(void)
{
	return monotonic_ns() / 1000000;
}

int otlp_gzip(const uint8_t *in, size_t len, uint8_t **out, size_t *out_len)
{
	z_stream z = { 0 };
	uLong bound;
	int ret;

	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
		return -ENOMEM;
	bound = deflateBound(&z, (uLong)len);
	*out = malloc(bound);
	if (!*out) {
		deflateEnd(&z);
		return -ENOMEM;
	}
	z.next_in = (Bytef *)in;
	z.avail_in = (uInt)len;
	z.next_out = *out;
	z.avail_out = (uInt)bound;
	ret = deflate(&z, Z_FINISH);
	*out_len = z.total_out;
	deflateEnd(&z);
	if (ret != Z_STREAM_END) {
		free(*out);
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

long otlp_retry_after(const char *v, long now_unix)
{
	struct tm tm = { 0 };
	char *end;
	long secs;

	while (isspace((unsigned char)*v))
		v++;
	if (isdigit((unsigned char)*v)) {
		secs = strtol(v, &end, 10);
		while (isspace((unsigned char)*end))
			end++;
		return *end ? -1 : secs;
	}
	end = strptime(v, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	if (!end)
		return -1;
	secs = (long)timegm(&tm) - now_unix;
	return secs < 0 ? 0 : secs;
}

/* ---- the queue (callers hold lock) ---- */

static uint32_t queue_limit(const struct otlp_exporter *e, enum otlp_signal sig)
{
	/* spans: the batch span processor's queue; data points: whatever the bytes allow */
	return sig == OTLP_TRACES ? e->cfg.max_queue_size : UINT32_MAX;
}

static size_t total_bytes(const struct otlp_exporter *e)
{
	return e->stats.signal[OTLP_TRACES].queued_bytes + e->stats.signal[OTLP_METRICS].queued_bytes;
}

static void job_free(struct job *j)
{
	if (j) {
		free(j->body);
		free(j);
	}
}

static void unlink_job(struct otlp_exporter *e, struct job *prev, struct job *j)
{
	struct otlp_signal_stats *st = &e->stats.signal[j->sig];

	if (prev)
		prev->next = j->next;
	else
		e->head = j->next;
	if (e->tail == j)
		e->tail = prev;
	st->queued -= j->items;
	st->queued_bytes -= j->len;
}

bool otlp_exporter_has_room(struct otlp_exporter *e, enum otlp_signal sig, uint32_t items)
{
	bool room;

	pthread_mutex_lock(&e->lock);
	room = e->stats.signal[sig].queued + items <= queue_limit(e, sig);
	pthread_mutex_unlock(&e->lock);
	return room;
}

void otlp_exporter_count_drop(struct otlp_exporter *e, enum otlp_signal sig, enum otlp_drop why,
			      uint64_t items)
{
	pthread_mutex_lock(&e->lock);
	e->stats.signal[sig].dropped[why] += items;
	pthread_mutex_unlock(&e->lock);
}

bool otlp_exporter_submit(struct otlp_exporter *e, enum otlp_signal sig, uint8_t *body,
			  size_t len, uint32_t items, bool replace, uintptr_t key)
{
	struct otlp_signal_stats *st = &e->stats.signal[sig];
	struct job *j = calloc(1, sizeof(*j));
	bool ok = false;

	pthread_mutex_lock(&e->lock);
	if (replace) {
		/*
		 * An older request of this signal and source still waiting is
		 * superseded: the new body takes its place in the line, so a slow
		 * collector still gets every source's metrics in turn (appending
		 * would send the same sources first on every tick and starve the
		 * last one).
		 */
		for (struct job *p = NULL, *q = e->head; q; p = q, q = q->next) {
			if (q->sig != sig || q->key != key)
				continue;
			st->dropped[OTLP_DROP_QUEUE_FULL] += q->items;
			if (!e->stopping && st->queued - q->items + items <= queue_limit(e, sig) &&
			    total_bytes(e) - q->len + len <= e->cfg.max_queue_bytes) {
				st->queued = st->queued - q->items + items;
				st->queued_bytes = st->queued_bytes - q->len + len;
				free(q->body);
				q->body = body;
				q->len = len;
				q->items = items;
				pthread_mutex_unlock(&e->lock);
				free(j);
				return true;
			}
			unlink_job(e, p, q);
			job_free(q);
			break;
		}
	}
	if (j && !e->stopping && st->queued + items <= queue_limit(e, sig) &&
	    total_bytes(e) + len <= e->cfg.max_queue_bytes) {
		*j = (struct job){ .sig = sig, .body = body, .len = len, .items = items, .key = key };
		if (e->tail)
			e->tail->next = j;
		else
			e->head = j;
		e->tail = j;
		st->queued += items;
		st->queued_bytes += len;
		ok = true;
		pthread_cond_signal(&e->cond);
	} else {
		st->dropped[OTLP_DROP_QUEUE_FULL] += items;
	}
	pthread_mutex_unlock(&e->lock);
	if (!ok) {
		free(j);
		free(body);
	}
	return ok;
}

void otlp_exporter_stats(struct otlp_exporter *e, struct otlp_stats *st)
{
	pthread_mutex_lock(&e->lock);
	*st = e->stats;
	pthread_mutex_unlock(&e->lock);
}

/* ---- one request ---- */

static size_t on_body(char *data, size_t size, size_t n, void *arg)
{
	struct otlp_exporter *e = arg;
	size_t len = size * n, room = sizeof(e->response) - e->response_len;

	if (len > room)
		len = room;
	memcpy(e->response + e->response_len, data, len);
	e->response_len += len;
	return size * n;
}

static size_t on_header(char *data, size_t size, size_t n, void *arg)
{
	struct otlp_exporter *e = arg;
	size_t len = size * n;

	if (len > 12 && !strncasecmp(data, "Retry-After:", 12)) {
		size_t v = len - 12 < sizeof(e->retry_after) - 1 ? len - 12 : sizeof(e->retry_after) - 1;

		memcpy(e->retry_after, data + 12, v);
		e->retry_after[v] = '\0';
		e->retry_after[strcspn(e->retry_after, "\r\n")] = '\0';
	}
	return len;
}

/* curl's progress callback: abort a transfer running past the final flush's deadline */
static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
	struct otlp_exporter *e = arg;
	bool late;

	(void)a, (void)b, (void)c, (void)d;
	pthread_mutex_lock(&e->lock);
	late = e->stopping && now_ms() >= e->deadline_ms;
	pthread_mutex_unlock(&e->lock);
	return late;
}

static int build_headers(struct otlp_exporter *e)
{
	for (int s = 0; s < OTLP_SIGNALS; s++) {
		const struct otlp_signal_config *sc = &e->cfg.signal[s];
		struct curl_slist *l = NULL, *n;
		char line[sizeof(sc->headers[0].key) + sizeof(sc->headers[0].value) + 4];

		if (!(l = curl_slist_append(l, "Content-Type: application/x-protobuf")) ||
		    !(n = curl_slist_append(l, "User-Agent: llmtap/" LLMTAP_VERSION)))
			goto fail;
		l = n;
		if (sc->gzip) {
			if (!(n = curl_slist_append(l, "Content-Encoding: gzip")))
				goto fail;
			l = n;
		}
		if (!(n = curl_slist_append(l, "Expect:"))) /* no 100-continue round trip */
			goto fail;
		l = n;
		for (int i = 0; i < sc->n_headers; i++) {
			snprintf(line, sizeof(line), "%s: %s", sc->headers[i].key, sc->headers[i].value);
			if (!(n = curl_slist_append(l, line)))
				goto fail;
			l = n;
		}
		e->headers[s] = l;
		continue;
fail:
		curl_slist_free_all(l);
		return -ENOMEM;
	}
	return 0;
}

/* The items a 2xx response's partial_success rejected. */
static int64_t rejected(const struct otlp_exporter *e, enum otlp_signal sig)
{
	int64_t n = 0;

	if (sig == OTLP_TRACES) {
		Opentelemetry__Proto__Collector__Trace__V1__ExportTraceServiceResponse *r =
			opentelemetry__proto__collector__trace__v1__export_trace_service_response__unpack(
				NULL, e->response_len, (const uint8_t *)e->response);

		if (r && r->partial_success)
			n = r->partial_success->rejected_spans;
		if (r)
			opentelemetry__proto__collector__trace__v1__export_trace_service_response__free_unpacked(r, NULL);
	} else {
		Opentelemetry__Proto__Collector__Metrics__V1__ExportMetricsServiceResponse *r =
			opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__unpack(
				NULL, e->response_len, (const uint8_t *)e->response);

		if (r && r->partial_success)
			n = r->partial_success->rejected_data_points;
		if (r)
			opentelemetry__proto__collector__metrics__v1__export_metrics_service_response__free_unpacked(r, NULL);
	}
	return n > 0 ? n : 0;
}

enum outcome { SENT, RETRY, GIVE_UP };

/* POST one body; what to do next, and why in why. */
static enum outcome post(struct otlp_exporter *e, const struct job *j, const uint8_t *body,
			 size_t len, char *why, size_t whylen, long *http)
{
	const struct otlp_signal_config *sc = &e->cfg.signal[j->sig];
	CURL *c = e->curl;
	CURLcode rc;

	curl_easy_reset(c);
	e->response_len = 0;
	e->retry_after[0] = '\0';
	*http = 0;
	curl_easy_setopt(c, CURLOPT_URL, sc->url);
	curl_easy_setopt(c, CURLOPT_POST, 1L);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, e->headers[j->sig]);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)sc->timeout_ms);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, e);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, e);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, e);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	if (sc->ca_file[0])
		curl_easy_setopt(c, CURLOPT_CAINFO, sc->ca_file);
	if (sc->client_cert[0]) {
		curl_easy_setopt(c, CURLOPT_SSLCERT, sc->client_cert);
		curl_easy_setopt(c, CURLOPT_SSLKEY, sc->client_key);
	}
	rc = curl_easy_perform(c);
	if (rc != CURLE_OK) {
		snprintf(why, whylen, "%s", curl_easy_strerror(rc));
		switch (rc) { /* the network or the receiver may come back */
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
		case CURLE_SSL_CONNECT_ERROR:
			return RETRY;
		default:
			return GIVE_UP; /* TLS verification, a bad URL, the deadline: retrying won't help */
		}
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, http);
	if (*http >= 200 && *http < 300)
		return SENT;
	{
		/* the status, then the printable start of what the receiver said */
		size_t n = (size_t)snprintf(why, whylen, "HTTP %ld", *http);

		if (e->response_len && n + 2 < whylen) {
			why[n++] = ':';
			why[n++] = ' ';
			for (size_t k = 0; k < e->response_len && k < 160 && n + 1 < whylen; k++)
				if (isprint((unsigned char)e->response[k]))
					why[n++] = e->response[k];
			why[n] = '\0';
		}
	}
	return *http == 429 || *http == 502 || *http == 503 || *http == 504 ? RETRY : GIVE_UP;
}

static uint64_t jitter(struct otlp_exporter *e, uint64_t ms)
{
	/* xorshift: 80% to 120% of the delay */
	e->rng ^= e->rng << 13;
	e->rng ^= e->rng >> 7;
	e->rng ^= e->rng << 17;
	return ms * (80 + e->rng % 41) / 100;
}

/* Sleep ms unless the deadline comes first (lock held). false: the deadline passed. */
static bool wait_ms(struct otlp_exporter *e, uint64_t ms)
{
	uint64_t until = now_ms() + ms;

	while (now_ms() < until) {
		struct timespec ts;
		uint64_t t = until;

		if (e->stopping && e->deadline_ms <= until)
			t = e->deadline_ms;
		if (e->stopping && now_ms() >= e->deadline_ms)
			return false;
		clock_gettime(CLOCK_REALTIME, &ts);
		{
			uint64_t d = t > now_ms() ? t - now_ms() : 0;
			uint64_t ns = (uint64_t)ts.tv_nsec + (d % 1000) * 1000000;

			ts.tv_sec += (time_t)(d / 1000 + ns / 1000000000);
			ts.tv_nsec = (long)(ns % 1000000000);
		}
		pthread_cond_timedwait(&e->cond, &e->lock, &ts);
	}
	return true;
}

/* Send one job with retries (lock held on entry and exit, dropped while sending). */
static void send_job(struct otlp_exporter *e, struct job *j)
{
	struct otlp_signal_stats *st = &e->stats.signal[j->sig];
	const char *sig = otlp_signal_name(j->sig);
	uint64_t start = now_ms(), backoff = BACKOFF_INITIAL_MS;
	uint8_t *gz = NULL;
	const uint8_t *body = j->body;
	size_t len = j->len;
	char why[256];
	long http;

	pthread_mutex_unlock(&e->lock);
	if (e->cfg.signal[j->sig].gzip && !otlp_gzip(j->body, j->len, &gz, &len))
		body = gz;
	else if (e->cfg.signal[j->sig].gzip)
		len = j->len, body = NULL;
	for (;;) {
		enum outcome o = body ? post(e, j, body, len, why, sizeof(why), &http) : GIVE_UP;
		uint64_t delay;
		long ra;

		if (!body)
			snprintf(why, sizeof(why), "out of memory compressing it");
		pthread_mutex_lock(&e->lock);
		if (o == SENT) {
			int64_t rej = rejected(e, j->sig);

			if (rej > j->items)
				rej = j->items;
			st->exported += j->items - (uint64_t)rej;
			st->dropped[OTLP_DROP_REJECTED] += (uint64_t)rej;
			st->requests++;
			if (e->failing[j->sig])
				fprintf(stderr, "llmtap: OTLP %s export to %s works again\n", sig,
					e->cfg.signal[j->sig].url);
			e->failing[j->sig] = false;
			break;
		}
		st->failures++;
		if (!e->failing[j->sig])
			fprintf(stderr, "llmtap: OTLP %s export to %s failed: %s%s\n", sig,
				e->cfg.signal[j->sig].url, why,
				o == RETRY ? " (retrying; further failures are counted in "
					     "llmtap.otlp.export.failures)" : "");
		e->failing[j->sig] = true;
		ra = e->retry_after[0] ? otlp_retry_after(e->retry_after, (long)time(NULL)) : -1;
		delay = ra >= 0 ? (uint64_t)ra * 1000 : jitter(e, backoff);
		if (o == GIVE_UP || now_ms() + delay - start > e->cfg.retry_max_ms) {
			st->dropped[OTLP_DROP_FAILED] += j->items;
			break;
		}
		if (!wait_ms(e, delay)) {
			st->dropped[OTLP_DROP_SHUTDOWN] += j->items;
			break;
		}
		backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
		pthread_mutex_unlock(&e->lock);
	}
	free(gz);
}

static void *sender(void *arg)
{
	struct otlp_exporter *e = arg;

	pthread_mutex_lock(&e->lock);
	for (;;) {
		struct job *j = e->head;

		if (e->stopping && (!j || now_ms() >= e->deadline_ms))
			break;
		if (!j) {
			pthread_cond_wait(&e->cond, &e->lock);
			continue;
		}
		unlink_job(e, NULL, j);
		send_job(e, j);
		job_free(j);
	}
	/* what the deadline left behind */
	while (e->head) {
		struct job *j = e->head;

		unlink_job(e, NULL, j);
		e->stats.signal[j->sig].dropped[OTLP_DROP_SHUTDOWN] += j->items;
		job_free(j);
	}
	pthread_mutex_unlock(&e->lock);
	return NULL;
}

struct otlp_exporter *otlp_exporter_start(const struct otlp_config *c, char *err, size_t errlen)
{
	struct otlp_exporter *e;

	if (curl_global_init(CURL_GLOBAL_DEFAULT)) {
		snprintf(err, errlen, "libcurl could not start");
		return NULL;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		snprintf(err, errlen, "out of memory");
		curl_global_cleanup();
		return NULL;
	}
	e->cfg = *c;
	e->rng = (uint64_t)now_ms() * 0x9e3779b97f4a7c15ull | 1;
	pthread_mutex_init(&e->lock, NULL);
	pthread_cond_init(&e->cond, NULL);
	e->curl = curl_easy_init();
	if (!e->curl || build_headers(e)) {
		snprintf(err, errlen, "libcurl could not start (out of memory)");
		goto fail;
	}
	if (pthread_create(&e->thread, NULL, sender, e)) {
		snprintf(err, errlen, "cannot start the OTLP sender thread");
		goto fail;
	}
	return e;
fail:
	for (int s = 0; s < OTLP_SIGNALS; s++)
		curl_slist_free_all(e->headers[s]);
	if (e->curl)
		curl_easy_cleanup(e->curl);
	pthread_cond_destroy(&e->cond);
	pthread_mutex_destroy(&e->lock);
	free(e);
	curl_global_cleanup();
	return NULL;
}

void otlp_exporter_shutdown(struct otlp_exporter *e, uint64_t timeout_ms, struct otlp_stats *st)
{
	if (!e)
		return;
	pthread_mutex_lock(&e->lock);
	e->stopping = true;
	e->deadline_ms = now_ms() + timeout_ms;
	pthread_cond_broadcast(&e->cond);
	pthread_mutex_unlock(&e->lock);
	pthread_join(e->thread, NULL);
	if (st)
		*st = e->stats;
	for (int s = 0; s < OTLP_SIGNALS; s++)
		curl_slist_free_all(e->headers[s]);
	curl_easy_cleanup(e->curl);
	pthread_cond_destroy(&e->cond);
	pthread_mutex_destroy(&e->lock);
	free(e);
	curl_global_cleanup();
}
