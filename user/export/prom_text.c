// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "export/prom_text.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "lib/util.h"

#define PROM_NAME_MAX 128
#define PROM_MAX_WORDS 32
#define PROM_MAX_CONST_LABELS 16
#define PROM_MAX_LABELS (METRIC_MAX_ATTRS + PROM_MAX_CONST_LABELS + 16)
#define PROM_NUM_MAX 32

/* ---- names ---- */

struct unit_map {
	const char *otel, *prom;
};

/* UCUM units to Prometheus base-unit words, as OpenTelemetry's mapping has them */
static const struct unit_map main_units[] = {
	{ "d", "days" }, { "h", "hours" }, { "min", "minutes" }, { "s", "seconds" },
	{ "ms", "milliseconds" }, { "us", "microseconds" }, { "ns", "nanoseconds" },
	{ "By", "bytes" }, { "KiBy", "kibibytes" }, { "MiBy", "mebibytes" },
	{ "GiBy", "gibibytes" }, { "TiBy", "tibibytes" }, { "KBy", "kilobytes" },
	{ "MBy", "megabytes" }, { "GBy", "gigabytes" }, { "TBy", "terabytes" },
	{ "m", "meters" }, { "V", "volts" }, { "A", "amperes" }, { "J", "joules" },
	{ "W", "watts" }, { "g", "grams" }, { "Cel", "celsius" }, { "Hz", "hertz" },
	{ "1", "" }, { "%", "percent" },
};

static const struct unit_map per_units[] = {
	{ "s", "second" }, { "m", "minute" }, { "h", "hour" }, { "d", "day" },
	{ "w", "week" }, { "mo", "month" }, { "y", "year" },
};

/* A name split into words: the runs of [a-zA-Z0-9:] between other characters. */
struct words {
	char store[PROM_NAME_MAX];
	const char *w[PROM_MAX_WORDS];
	int n;
};

static bool is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static void split_words(struct words *ws, const char *s)
{
	snprintf(ws->store, sizeof(ws->store), "%s", s);
	ws->n = 0;
	for (size_t i = 0; ws->store[i]; i++) {
		if (!is_alnum(ws->store[i]) && ws->store[i] != ':') {
			ws->store[i] = '\0';
			continue;
		}
		if ((i == 0 || !ws->store[i - 1]) && ws->n < PROM_MAX_WORDS)
			ws->w[ws->n++] = &ws->store[i];
	}
}

/* sub's words appear, in order and adjacent, among ws's (always true for no words). */
static bool has_run(const struct words *ws, const struct words *sub)
{
	for (int i = 0; i + sub->n <= ws->n; i++) {
		int j = 0;

		while (j < sub->n && !strcmp(ws->w[i + j], sub->w[j]))
			j++;
		if (j == sub->n)
			return true;
	}
	return false;
}

static void append_word(struct words *ws, const char *w)
{
	if (ws->n < PROM_MAX_WORDS)
		ws->w[ws->n++] = w;
}

/* Append sub's words unless they are there already (sub must outlive ws). */
static void append_run(struct words *ws, const struct words *sub)
{
	if (has_run(ws, sub))
		return;
	for (int i = 0; i < sub->n; i++)
		append_word(ws, sub->w[i]);
}

/* Move w to the end, once: "total" for counters, "ratio" for gauges of unit "1". */
static void end_with(struct words *ws, const char *w)
{
	int n = 0;

	for (int i = 0; i < ws->n; i++)
		if (strcmp(ws->w[i], w))
			ws->w[n++] = ws->w[i];
	ws->n = n;
	append_word(ws, w);
}

static const char *map_unit(const struct unit_map *map, size_t n, const char *u)
{
	for (size_t i = 0; i < n; i++)
		if (!strcmp(map[i].otel, u))
			return map[i].prom;
	return u;
}

/* s[0..n) without surrounding blanks into buf */
static void copy_trimmed(char *buf, size_t len, const char *s, size_t n)
{
	while (n && (*s == ' ' || *s == '\t'))
		s++, n--;
	while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		n--;
	snprintf(buf, len, "%.*s", (int)n, s);
}

/* "s" -> "seconds", "{token}/s" -> "" and "per_second"; "{...}" annotations give nothing. */
static void unit_suffixes(const char *unit, char *main_sfx, char *per_sfx, size_t len)
{
	const char *slash = strchr(unit, '/');
	char u[PROM_NAME_MAX / 2]; /* leaves room for "per_" */

	main_sfx[0] = per_sfx[0] = '\0';
	copy_trimmed(u, sizeof(u), unit, slash ? (size_t)(slash - unit) : strlen(unit));
	if (u[0] && !strpbrk(u, "{}"))
		snprintf(main_sfx, len, "%s", map_unit(main_units, ARRAY_SIZE(main_units), u));
	if (!slash)
		return;
	copy_trimmed(u, sizeof(u), slash + 1, strlen(slash + 1));
	if (u[0] && !strpbrk(u, "{}"))
		snprintf(per_sfx, len, "per_%s", map_unit(per_units, ARRAY_SIZE(per_units), u));
}

static void join_words(const struct words *ws, char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	/* a name cannot start with a digit */
	if (ws->n && is_digit(ws->w[0][0]))
		off += (size_t)snprintf(buf, len, "_");
	for (int i = 0; i < ws->n && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? "_" : "", ws->w[i]);
}

void prom_metric_name(const struct instrument *in, char *buf, size_t len)
{
	char main_sfx[PROM_NAME_MAX], per_sfx[PROM_NAME_MAX];
	struct words name, main_words, per_words;
	const char *unit = in->unit ? in->unit : "";

	if (!len)
		return;
	split_words(&name, in->name ? in->name : "");
	unit_suffixes(unit, main_sfx, per_sfx, sizeof(main_sfx));
	split_words(&main_words, main_sfx);
	split_words(&per_words, per_sfx);
	append_run(&name, &main_words);
	append_run(&name, &per_words);
	if (in->kind == INSTR_COUNTER)
		end_with(&name, "total");
	if (in->kind == INSTR_GAUGE && !strcmp(unit, "1"))
		end_with(&name, "ratio");
	join_words(&name, buf, len);
}

void prom_label_name(const char *key, char *buf, size_t len)
{
	char tmp[PROM_NAME_MAX];
	size_t n = 0;

	if (!len)
		return;
	for (; key && *key && n + 1 < sizeof(tmp); key++) {
		char c = is_alnum(*key) ? *key : '_';

		if (c != '_' || !n || tmp[n - 1] != '_')
			tmp[n++] = c;
	}
	tmp[n] = '\0';
	/* digits cannot start a label name, and "__" would be reserved */
	snprintf(buf, len, "%s%s", is_digit(tmp[0]) ? "key_" : tmp[0] == '_' ? "key" : "", tmp);
}

/* ---- rendering ---- */

struct label {
	char name[PROM_NAME_MAX];
	const char *key, *value;
};

struct labels {
	struct label l[PROM_MAX_LABELS];
	int n;
};

static void add_label(struct labels *ls, const char *key, const char *value)
{
	struct label *l;

	if (!value || ls->n >= PROM_MAX_LABELS)
		return;
	l = &ls->l[ls->n];
	prom_label_name(key, l->name, sizeof(l->name));
	if (!l->name[0])
		return;
	l->key = key;
	l->value = value;
	ls->n++;
}

/* by name, then by original key: keys that sanitise alike share one label */
static int cmp_label(const void *a, const void *b)
{
	const struct label *la = a, *lb = b;
	int c = strcmp(la->name, lb->name);

	return c ? c : strcmp(la->key, lb->key);
}

static void collect_labels(struct labels *ls, const struct metric_point *p,
			   const char *const *const_labels)
{
	int n_attrs = p->n_attrs < METRIC_MAX_ATTRS ? p->n_attrs : METRIC_MAX_ATTRS;

	ls->n = 0;
	for (int i = 0; const_labels && const_labels[i]; i += 2)
		add_label(ls, const_labels[i], const_labels[i + 1]);
	for (int i = 0; i < n_attrs; i++)
		if (p->attrs[i].key)
			add_label(ls, p->attrs[i].key, p->attrs[i].value);
	qsort(ls->l, (size_t)ls->n, sizeof(ls->l[0]), cmp_label);
}

/* A label value: backslash, double quote and newline escaped. */
static void write_label_value(FILE *out, const char *s)
{
	for (; *s; s++) {
		if (*s == '\\' || *s == '"')
			fprintf(out, "\\%c", *s);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

/* HELP text: backslash and newline escaped. */
static void write_help(FILE *out, const char *s)
{
	for (; s && *s; s++) {
		if (*s == '\\')
			fputs("\\\\", out);
		else if (*s == '\n')
			fputs("\\n", out);
		else
			fputc(*s, out);
	}
}

/* {a="x",b="y;z",le="0.5"}; values of keys that sanitise alike are joined by ';' */
static void write_labels(FILE *out, const struct labels *ls, const char *le)
{
	const char *sep = "{";

	for (int i = 0; i < ls->n;) {
		fprintf(out, "%s%s=\"", sep, ls->l[i].name);
		write_label_value(out, ls->l[i].value);
		while (++i < ls->n && !strcmp(ls->l[i].name, ls->l[i - 1].name)) {
			fputc(';', out);
			write_label_value(out, ls->l[i].value);
		}
		fputc('"', out);
		sep = ",";
	}
	if (le) {
		fprintf(out, "%sle=\"%s\"", sep, le);
		sep = ",";
	}
	if (*sep == ',')
		fputc('}', out);
}

/*
 * The shortest of %.15g, %.16g, %.17g that reads back as v: 0.005 stays 0.005,
 * integers have no exponent below 1e15. Assumes the "C" numeric locale.
 */
static const char *fmt_num(char *buf, size_t len, double v)
{
	if (isnan(v))
		return "NaN";
	if (isinf(v))
		return v > 0 ? "+Inf" : "-Inf";
	for (int prec = 15; prec <= 17; prec++) {
		snprintf(buf, len, "%.*g", prec, v);
		if (strtod(buf, NULL) == v)
			break;
	}
	return buf;
}

static void write_series(FILE *out, const char *name, const char *suffix,
			 const struct labels *ls, const char *le, const char *value)
{
	fprintf(out, "%s%s", name, suffix);
	write_labels(out, ls, le);
	fprintf(out, " %s\n", value);
}

static void write_histogram(FILE *out, const char *name, const struct instrument *in,
			    const struct metric_point *p, const struct labels *ls)
{
	int n_bounds = in->n_bounds < METRIC_MAX_BOUNDS ? in->n_bounds : METRIC_MAX_BOUNDS;
	char num[PROM_NUM_MAX], le[PROM_NUM_MAX];
	uint64_t cumulative = 0;

	for (int b = 0; b <= n_bounds; b++) {
		cumulative += p->buckets[b];
		snprintf(num, sizeof(num), "%" PRIu64, cumulative);
		write_series(out, name, "_bucket", ls,
			     b < n_bounds ? fmt_num(le, sizeof(le), in->bounds[b]) : "+Inf", num);
	}
	write_series(out, name, "_sum", ls, NULL, fmt_num(num, sizeof(num), p->sum));
	snprintf(num, sizeof(num), "%" PRIu64, p->count);
	write_series(out, name, "_count", ls, NULL, num);
}

static void write_point(FILE *out, const char *name, const struct instrument *in,
			const struct metric_point *p, const char *const *const_labels)
{
	char num[PROM_NUM_MAX];
	struct labels ls;

	collect_labels(&ls, p, const_labels);
	if (in->kind == INSTR_HISTOGRAM)
		write_histogram(out, name, in, p, &ls);
	else
		write_series(out, name, "", &ls, NULL, fmt_num(num, sizeof(num), p->value));
}

/* HELP and TYPE once (unless head: written already), then every point of the
 * instrument, wherever it is in points[]. Returns whether the head is written. */
static bool write_family(FILE *out, const struct metrics *m, enum instr_id id, const char *name,
			 const char *const *const_labels, bool head)
{
	static const char *const types[] = { "counter", "gauge", "histogram" };
	const struct instrument *in = metric_instrument(id);
	int n_points = m->n_points < METRIC_MAX_POINTS ? m->n_points : METRIC_MAX_POINTS;

	for (int i = 0; i < n_points; i++) {
		if (m->points[i].id != id)
			continue;
		if (!head) {
			fprintf(out, "# HELP %s ", name);
			write_help(out, in->description);
			fprintf(out, "\n# TYPE %s %s\n", name, types[in->kind]);
			head = true;
		}
		write_point(out, name, in, &m->points[i], const_labels);
	}
	return head;
}

struct family {
	enum instr_id id;
	char name[PROM_NAME_MAX];
};

static int cmp_family(const void *a, const void *b)
{
	return strcmp(((const struct family *)a)->name, ((const struct family *)b)->name);
}

static int count_pairs(const char *const *kv)
{
	int n = 0;

	while (kv && kv[2 * n])
		n++;
	return n;
}

int prom_render_many(const struct metrics *const *ms, const char *const *const *const_labels,
		     int n, FILE *out)
{
	struct family fams[M_INSTR_MAX];

	if (!ms || !out || n < 0)
		return -EINVAL;
	for (int t = 0; t < n; t++)
		if (!ms[t] || count_pairs(const_labels ? const_labels[t] : NULL) > PROM_MAX_CONST_LABELS)
			return -EINVAL;
	for (int id = 0; id < M_INSTR_MAX; id++) {
		fams[id].id = (enum instr_id)id;
		prom_metric_name(metric_instrument(id), fams[id].name, sizeof(fams[id].name));
	}
	/* sorted by name, as Prometheus client libraries write them; one family, every set */
	qsort(fams, M_INSTR_MAX, sizeof(fams[0]), cmp_family);
	errno = 0;
	for (int i = 0; i < M_INSTR_MAX; i++) {
		bool head = false;

		for (int t = 0; t < n; t++)
			head = write_family(out, ms[t], fams[i].id, fams[i].name,
					    const_labels ? const_labels[t] : NULL, head);
	}
	if (fflush(out) || ferror(out))
		return errno ? -errno : -EIO;
	return 0;
}

int prom_render(const struct metrics *m, const char *const *const_labels, FILE *out)
{
	return prom_render_many(&m, &const_labels, 1, out);
}

/* target_info with labels; head_done: HELP and TYPE written already. */
static int prom_render_info_labels(const char *const *labels, FILE *out, bool head_done)
{
	struct labels ls = { .n = 0 };

	if (!out)
		return -EINVAL;
	if (!count_pairs(labels))
		return 0; /* labels past PROM_MAX_LABELS are left out */
	for (int i = 0; labels[i]; i += 2)
		add_label(&ls, labels[i], labels[i + 1]);
	qsort(ls.l, (size_t)ls.n, sizeof(ls.l[0]), cmp_label);
	if (!head_done)
		fputs("# HELP target_info Target metadata\n# TYPE target_info gauge\n", out);
	fputs("target_info", out);
	write_labels(out, &ls, NULL);
	fputs(" 1\n", out);
	return ferror(out) ? -EIO : 0;
}

int prom_render_info(const char *const *labels, FILE *out)
{
	return prom_render_info_labels(labels, out, false);
}

int prom_render_targets(const struct metrics *const *ms, const char *const *const *labels,
			const char *const *const *infos, int n, FILE *out)
{
	int ret = 0;

	/* the resource names the target already (service.instance.id, process.pid) */
	for (int t = 0; t < n && !ret; t++)
		ret = prom_render_info_labels(infos ? infos[t] : NULL, out, t > 0);
	return ret ? ret : prom_render_many(ms, labels, n, out);
}
