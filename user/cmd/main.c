// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* llmtap: trace llama.cpp inference servers from outside, with eBPF. */
#include <argp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/attach.h"
#include "cmd/daemon.h"
#include "cmd/run.h"
#include "lib/text.h"
#include "lib/util.h"
#include "report/report.h"
#include "target/select.h"

const char *argp_program_version = "llmtap " LLMTAP_VERSION;
error_t argp_err_exit_status = 2;

static const char attach_doc[] =
	"Trace a running llama.cpp process (llama-server, or anything that loads libllama).\n"
	"\n"
	"Finds llama.cpp in the process by its symbols (any library name, or the executable "
	"itself when linked statically) and attaches uprobes for that process only: engine steps "
	"(llama_decode/llama_encode), sampled tokens, KV-cache edits, state save/load, and, in "
	"llama-server, its task queue, slots and HTTP handling. Every request is rebuilt from "
	"outside: queue wait, prefill, generation, time to first token, prompt/cached/output "
	"tokens as the server counts them, errors.\n"
	"\n"
	"Prints a line per interval and a summary when you press Ctrl-C, send SIGTERM, "
	"--duration ends or the target exits. The target is never stopped or changed; killing "
	"llmtap at any moment leaves it running untouched. Prompt and completion text are never "
	"read.\n"
	"\n"
	"--json writes one object per line: attach, step, request, context_shift, cache_save, "
	"cache_load, model_load, context_init, interval, and a summary with every metric "
	"(OpenTelemetry names).\n"
	"\n"
	"OTLP export starts when --otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT (or a per-signal "
	"_TRACES_/_METRICS_ENDPOINT) is set: request spans with queue, prefill and generation "
	"children, engine events, and every metric, to an OpenTelemetry Collector's OTLP/HTTP "
	"receiver. Spans wait in a bounded queue (OTEL_BSP_MAX_QUEUE_SIZE, default 2048; at most "
	"16 MiB of encoded requests); failed requests are retried with backoff for up to 60s "
	"(LLMTAP_OTLP_RETRY_MAX); at exit the queue is flushed for up to 5s "
	"(LLMTAP_OTLP_FLUSH_TIMEOUT). Whatever is dropped is counted in "
	"otel.sdk.exporter.span.exported and otel.sdk.exporter.metric_data_point.exported with "
	"error.type.\n"
	"\n"
	"Needs root (or CAP_BPF + CAP_PERFMON, and CAP_SYS_PTRACE for another user's process), a "
	"kernel with BTF and uprobes.\v"
	"DURATION: a number with an optional unit: 500ms, 30s (the default unit), 5m, 1h. SIZE: "
	"bytes with an optional k, M or G suffix (powers of 1024).\n"
	"\n"
	"Environment: LLMTAP_NO_UPROBE_MULTI=1 uses a perf-event link per probe instead of "
	"uprobe_multi links (Linux 6.6+), as on older kernels.\n"
	"\n"
	"OpenTelemetry variables read: OTEL_EXPORTER_OTLP_ENDPOINT, "
	"OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT, "
	"OTEL_EXPORTER_OTLP[_{TRACES,METRICS}]_{HEADERS, TIMEOUT, COMPRESSION, PROTOCOL, "
	"CERTIFICATE, CLIENT_CERTIFICATE, CLIENT_KEY}, OTEL_SERVICE_NAME, "
	"OTEL_RESOURCE_ATTRIBUTES, OTEL_METRIC_EXPORT_INTERVAL, "
	"OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, OTEL_TRACES_SAMPLER[_ARG], "
	"OTEL_TRACES_EXPORTER and OTEL_METRICS_EXPORTER (otlp or none), "
	"OTEL_BSP_{SCHEDULE_DELAY, MAX_QUEUE_SIZE, MAX_EXPORT_BATCH_SIZE}, OTEL_SDK_DISABLED.\n"
	"\n"
	"Exit status: 0 traced and summarised, 1 could not trace, 2 bad usage.\n"
	"\n"
	"Examples:\n"
	"  llmtap attach --pid $(pgrep -o llama-server)\n"
	"  llmtap attach -p $(pgrep -o llama-server) -d 60s --json > reqs.jsonl\n"
	"  llmtap attach -p $(pgrep -o llama-server) --prometheus 127.0.0.1:9464\n"
	"  llmtap attach -p $(pgrep -o llama-server) --otlp-endpoint http://otel:4318";

static const char record_doc[] =
	"Record a running llama.cpp process into a Chrome / Perfetto trace-event file.\n"
	"\n"
	"The file has a track per slot with each request's prefill and generation (and its queue "
	"wait), a track of engine steps with the batch size as a counter, KV cells and active "
	"requests as counters, and markers for context shifts, cache loads and saves, and failed "
	"requests. Open it as it is in ui.perfetto.dev or chrome://tracing. The file is streamed "
	"(memory stays flat) and renamed into place when the recording ends; the console shows "
	"the live view meanwhile.\n"
	"\n"
	"--duration defaults to 60s here. The other options are attach's: --json, --prometheus "
	"and OTLP export (--otlp-endpoint or OTEL_EXPORTER_OTLP_ENDPOINT) go on while it "
	"records.\v"
	"DURATION: a number with an optional unit: 500ms, 30s (the default unit), 5m, 1h. SIZE: "
	"bytes with an optional k, M or G suffix (powers of 1024). The OpenTelemetry variables "
	"read are attach's (llmtap attach --help).\n"
	"\n"
	"Exit status: 0 recorded, 1 could not trace or write, 2 bad usage.\n"
	"\n"
	"Examples:\n"
	"  llmtap record -p $(pgrep -o llama-server) -d 60s -o trace.json\n"
	"  llmtap record -p $(pgrep -o llama-server) -d 5m -o trace.json --json\n"
	"  llmtap report trace.json -o report.html";

static const char top_doc[] =
	"A live full-screen view of a running llama.cpp process.\n"
	"\n"
	"Redrawn every --interval: requests per second, active and queued requests, failed ones, "
	"tokens per second in and out, time to first token and time per output token "
	"percentiles, engine steps and batch sizes, KV-cache cells in use, context shifts, cache "
	"loads and saves, llmtap's own CPU and lost events, and a row per slot: idle, prefill or "
	"generating, with its request's progress.\n"
	"\n"
	"Keys: q quits (with the summary), p pauses or resumes, s changes the slot order (slot, "
	"elapsed, KV cells). It follows the terminal's size; when stdout is not a terminal it "
	"prints attach's plain line per interval instead.\v"
	"The other options are attach's (llmtap attach --help).\n"
	"\n"
	"Exit status: 0 traced, 1 could not trace, 2 bad usage.\n"
	"\n"
	"Examples:\n"
	"  llmtap top --pid $(pgrep -o llama-server)\n"
	"  llmtap top -p $(pgrep -o llama-server) --interval 500ms";

enum { OPT_NO_STEPS = 256, OPT_RINGBUF, OPT_INTERVAL, OPT_DEBUG_EVENTS, OPT_PROMETHEUS,
       OPT_TAIL, OPT_TAIL_DIR, OPT_TAIL_TTFT, OPT_OTLP_ENDPOINT, OPT_OTLP_HEADER,
       OPT_OTLP_COMPRESSION, OPT_OTLP_TIMEOUT, OPT_OTLP_INTERVAL, OPT_OTLP_TEMPORALITY,
       OPT_OTLP_SAMPLER, OPT_OTLP_PROTOCOL, OPT_OTLP_CA, OPT_OTLP_CERT, OPT_OTLP_KEY,
       OPT_EXE, OPT_CGROUP, OPT_PORT, OPT_EXCLUDE, OPT_MAX_TARGETS, OPT_RESCAN, OPT_NO_EXEC, OPT_NO_FREEZE };

/*
 * The options every command that traces shares (attach, top, record, run and
 * daemon): trace_argp, a child of each one's argp, with the --otlp-* options
 * as its own child. Its input is the command's attach_opts.
 */
static const struct argp_option trace_options[] = {
	{ "duration", 'd', "DURATION", 0, "Stop after this long (default: until Ctrl-C or the target exits)", 0 },
	{ "interval", OPT_INTERVAL, "DURATION", 0, "Live output period (default 1s)", 0 },
	{ "json", 'j', NULL, 0, "Write JSON lines to stdout: attach, step, interval and summary records", 0 },
	{ "no-steps", OPT_NO_STEPS, NULL, 0, "With --json, leave out the per-step records", 0 },
	{ "prometheus", OPT_PROMETHEUS, "ADDR:PORT", 0, "Serve the metrics for Prometheus on http://ADDR:PORT/metrics (e.g. 127.0.0.1:9464, :9464 for every interface)", 0 },
	{ "tail", OPT_TAIL, "DURATION", 0, "Keep the last DURATION of events in memory (64 MiB at most) and write them as a trace-event file on SIGUSR1 or --tail-ttft", 0 },
	{ "tail-ttft", OPT_TAIL_TTFT, "DURATION", 0, "With --tail: also write it when a request's time to first token exceeds DURATION (at most once per window)", 0 },
	{ "tail-dir", OPT_TAIL_DIR, "DIR", 0, "With --tail: where the captures go (default: the current directory)", 0 },
	{ "ringbuf-size", OPT_RINGBUF, "SIZE", 0, "BPF ring buffer size, a power of two >= 4k (default 4M)", 0 },
	{ "verbose", 'v', NULL, 0, "Print libbpf's diagnostics (verifier log on load failures)", 0 },
	{ "debug-events", OPT_DEBUG_EVENTS, NULL, 0, "Print every raw probe record to stderr (for debugging llmtap)", 0 },
	{ 0 },
};

static const struct argp_option otlp_options[] = {
	{ "otlp-endpoint", OPT_OTLP_ENDPOINT, "URL", 0, "Send spans and metrics to URL/v1/traces and URL/v1/metrics (e.g. http://collector:4318); like OTEL_EXPORTER_OTLP_ENDPOINT", 0 },
	{ "otlp-header", OPT_OTLP_HEADER, "KEY=VALUE", 0, "Add a request header (repeatable; like OTEL_EXPORTER_OTLP_HEADERS)", 0 },
	{ "otlp-compression", OPT_OTLP_COMPRESSION, "gzip|none", 0, "Compress request bodies (default none)", 0 },
	{ "otlp-timeout", OPT_OTLP_TIMEOUT, "DURATION", 0, "Give up on one request after this long (default 10s)", 0 },
	{ "otlp-interval", OPT_OTLP_INTERVAL, "DURATION", 0, "Metric export period (default 60s; OTEL_METRIC_EXPORT_INTERVAL)", 0 },
	{ "otlp-temporality", OPT_OTLP_TEMPORALITY, "cumulative|delta", 0, "Temporality of sums and histograms (default cumulative)", 0 },
	{ "otlp-sampler", OPT_OTLP_SAMPLER, "SAMPLER", 0, "always_on (default), always_off or traceidratio=RATIO (OTEL_TRACES_SAMPLER[_ARG])", 0 },
	{ "otlp-protocol", OPT_OTLP_PROTOCOL, "PROTOCOL", 0, "http/protobuf, the only one llmtap speaks", 0 },
	{ "otlp-ca", OPT_OTLP_CA, "FILE", 0, "Trust this CA bundle (PEM) for https instead of the system's store", 0 },
	{ "otlp-client-cert", OPT_OTLP_CERT, "FILE", 0, "Client certificate (PEM) for mutual TLS, with --otlp-client-key", 0 },
	{ "otlp-client-key", OPT_OTLP_KEY, "FILE", 0, "The client certificate's private key (PEM)", 0 },
	{ 0 },
};

/* The --otlp-* flags: into the otlp_cli that is this parser's input. */
static error_t otlp_parse(int key, char *arg, struct argp_state *state)
{
	struct otlp_cli *c = state->input;

	switch (key) {
	case OPT_OTLP_ENDPOINT:
		c->endpoint = arg;
		break;
	case OPT_OTLP_HEADER:
		if (c->n_headers >= OTLP_MAX_HEADERS)
			argp_error(state, "--otlp-header: at most %d headers", OTLP_MAX_HEADERS);
		c->headers[c->n_headers++] = arg;
		break;
	case OPT_OTLP_COMPRESSION:
		c->compression = arg;
		break;
	case OPT_OTLP_TIMEOUT:
	case OPT_OTLP_INTERVAL: {
		uint64_t ns;

		if (parse_duration(arg, &ns) || ns < 1000000)
			argp_error(state, "--otlp-%s: '%s' is not a duration of at least 1ms",
				   key == OPT_OTLP_TIMEOUT ? "timeout" : "interval", arg);
		*(key == OPT_OTLP_TIMEOUT ? &c->timeout_ms : &c->interval_ms) = ns / 1000000;
		break;
	}
	case OPT_OTLP_TEMPORALITY:
		c->temporality = arg;
		break;
	case OPT_OTLP_SAMPLER:
		c->sampler = arg;
		break;
	case OPT_OTLP_PROTOCOL:
		c->protocol = arg;
		break;
	case OPT_OTLP_CA:
		c->ca_file = arg;
		break;
	case OPT_OTLP_CERT:
		c->client_cert = arg;
		break;
	case OPT_OTLP_KEY:
		c->client_key = arg;
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static const struct argp otlp_argp = { otlp_options, otlp_parse, NULL, NULL, NULL, NULL, NULL };

static const struct argp_child trace_children[] = {
	{ &otlp_argp, 0, "OpenTelemetry export, OTLP/HTTP protobuf (each flag overrides its OTEL_* variable):", 1 },
	{ 0 },
};

static error_t trace_parse(int key, char *arg, struct argp_state *state)
{
	struct attach_opts *o = state->input;

	switch (key) {
	case ARGP_KEY_INIT:
		state->child_inputs[0] = &o->otlp;
		break;
	case 'd':
		if (parse_duration(arg, &o->duration_ns) || !o->duration_ns)
			argp_error(state, "--duration: '%s' is not a positive duration (e.g. 30s, 500ms, 5m)", arg);
		break;
	case OPT_INTERVAL:
		if (parse_duration(arg, &o->interval_ns) || o->interval_ns < 10000000ull)
			argp_error(state, "--interval: '%s' is not a duration of at least 10ms", arg);
		break;
	case 'j':
		o->json = true;
		break;
	case OPT_NO_STEPS:
		o->json_steps = false;
		break;
	case OPT_RINGBUF:
		if (parse_size(arg, &o->ringbuf_bytes) || o->ringbuf_bytes < 4096 ||
		    (o->ringbuf_bytes & (o->ringbuf_bytes - 1)) || o->ringbuf_bytes > (1ul << 30))
			argp_error(state, "--ringbuf-size: '%s' is not a power of two between 4k and 1G", arg);
		break;
	case 'v':
		o->verbose = true;
		break;
	case OPT_DEBUG_EVENTS:
		o->debug_events = true;
		break;
	case OPT_PROMETHEUS:
		o->prometheus = arg;
		break;
	case OPT_TAIL:
		if (parse_duration(arg, &o->tail_ns) || !o->tail_ns)
			argp_error(state, "--tail: '%s' is not a positive duration (e.g. 60s)", arg);
		break;
	case OPT_TAIL_TTFT:
		if (parse_duration(arg, &o->tail_ttft_ns) || !o->tail_ttft_ns)
			argp_error(state, "--tail-ttft: '%s' is not a positive duration (e.g. 2s)", arg);
		break;
	case OPT_TAIL_DIR:
		o->tail_dir = arg;
		break;
	case ARGP_KEY_SUCCESS: /* after every ARGP_KEY_END: the command's own checks come first */
		if ((o->tail_ttft_ns || o->tail_dir) && !o->tail_ns)
			argp_error(state, "--tail-ttft and --tail-dir go with --tail DURATION");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static const struct argp trace_argp = { trace_options, trace_parse, NULL, NULL, trace_children,
					NULL, NULL };

/* The daemon's wording of the same options: for every process it traces. */
static char *daemon_trace_help(int key, const char *text, void *input)
{
	const char *doc;

	(void)input;
	switch (key) {
	case 'd':
		doc = "Stop after this long (default: until SIGINT or SIGTERM)";
		break;
	case OPT_INTERVAL:
		doc = "Telemetry period (default 1s)";
		break;
	case 'j':
		doc = "JSON lines for every process on stdout (each record has its pid)";
		break;
	case OPT_PROMETHEUS:
		doc = "Serve every process's metrics on http://ADDR:PORT/metrics";
		break;
	case OPT_RINGBUF:
		doc = "BPF ring buffer per process, a power of two >= 4k (default 1M)";
		break;
	case OPT_TAIL:
		doc = "Keep each process's last DURATION of events in memory (64 MiB at most each) and write them on SIGUSR1 or --tail-ttft";
		break;
	case OPT_TAIL_TTFT:
		doc = "With --tail: also write a process's capture when one of its requests' time to first token exceeds DURATION";
		break;
	case OPT_TAIL_DIR:
		doc = "With --tail: where the captures go (default: the current directory; llmtap-tail-PID-...json)";
		break;
	case 'v':
		doc = "Print libbpf's diagnostics";
		break;
	default:
		return (char *)text;
	}
	return strdup(doc); /* argp frees what differs from text */
}

static const struct argp daemon_trace_argp = { trace_options, trace_parse, NULL, NULL,
					       trace_children, daemon_trace_help, NULL };

/* --pid, for the commands that trace a running process (attach, top, record). */
static const struct argp_option pid_options[] = {
	{ "pid", 'p', "PID", 0, "Process to trace (required)", 0 },
	{ 0 },
};

static const struct argp_child pid_children[] = {
	{ &trace_argp, 0, NULL, 0 },
	{ 0 },
};

static error_t pid_parse(int key, char *arg, struct argp_state *state)
{
	struct attach_opts *o = state->input;

	switch (key) {
	case ARGP_KEY_INIT:
		state->child_inputs[0] = o;
		break;
	case 'p':
		if (parse_pid(arg, &o->pid))
			argp_error(state, "--pid: '%s' is not a process ID (a positive number)", arg);
		break;
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	case ARGP_KEY_END:
		if (!o->pid)
			argp_error(state, "which process? give --pid PID (e.g. --pid $(pgrep -o llama-server))");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static const struct argp pid_argp = { pid_options, pid_parse, NULL, NULL, pid_children, NULL, NULL };

/* attach's and top's argp: --pid and the shared options (no parser: pid_argp gets the input) */
static const struct argp_child attach_children[] = {
	{ &pid_argp, 0, NULL, 0 },
	{ 0 },
};

/* What attach, record and top share: the defaults, then parse and trace. */
static struct attach_opts attach_defaults(void)
{
	return (struct attach_opts){
		.interval_ns = 1000000000ull,
		.ringbuf_bytes = 4u << 20,
		.json_steps = true,
	};
}

static int parse_and_trace(const struct argp *argp, int argc, char **argv, struct attach_opts *o)
{
	if (argp_parse(argp, argc, argv, 0, NULL, o))
		return 2;
	return cmd_attach(o);
}

static int run_attach(int argc, char **argv)
{
	static const struct argp argp = { NULL, NULL, NULL, attach_doc, attach_children, NULL, NULL };
	struct attach_opts o = attach_defaults();

	return parse_and_trace(&argp, argc, argv, &o);
}

/* record's own option: where the trace goes; the others are attach's */
static error_t record_parse(int key, char *arg, struct argp_state *state)
{
	struct attach_opts *o = state->input;

	switch (key) {
	case ARGP_KEY_INIT:
		state->child_inputs[0] = o;
		break;
	case 'o':
		o->record_path = arg;
		break;
	case ARGP_KEY_END:
		if (!o->record_path)
			argp_error(state, "where to? give -o FILE (e.g. -o trace.json)");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static int run_record(int argc, char **argv)
{
	static const struct argp_option options[] = {
		{ "output", 'o', "FILE", 0, "The trace-event file to write (required)", 0 },
		{ 0 },
	};
	static const struct argp argp = { options, record_parse, NULL, record_doc, attach_children,
					  NULL, NULL };
	struct attach_opts o = attach_defaults();

	o.duration_ns = 60000000000ull;
	return parse_and_trace(&argp, argc, argv, &o);
}

static int run_top(int argc, char **argv)
{
	static const struct argp argp = { NULL, NULL, NULL, top_doc, attach_children, NULL, NULL };
	struct attach_opts o = attach_defaults();

	o.top = true;
	return parse_and_trace(&argp, argc, argv, &o);
}

static const char report_doc[] =
	"Write one self-contained HTML page about a trace file made by `llmtap record`.\n"
	"\n"
	"The page has a summary; distributions of time to first token, time per output token, "
	"queue wait and request duration with p50/p90/p99; requests and tokens per second; KV "
	"cache cells and requests in flight over time; the slowest requests, each split into "
	"queue, prefill and generation. Inline SVG and CSS only: no script, nothing fetched; "
	"open it in any browser or attach it to an incident.\v"
	"Exit status: 0 written, 1 could not read the trace or write the page, 2 bad usage.\n"
	"\n"
	"Examples:\n"
	"  llmtap record -p $(pgrep -o llama-server) -d 60s -o trace.json\n"
	"  llmtap report trace.json -o report.html";

struct report_opts {
	const char *trace;
	const char *out;
};

static error_t report_parse(int key, char *arg, struct argp_state *state)
{
	struct report_opts *o = state->input;

	switch (key) {
	case 'o':
		o->out = arg;
		break;
	case ARGP_KEY_ARG:
		if (o->trace)
			argp_error(state, "unexpected argument '%s'", arg);
		o->trace = arg;
		break;
	case ARGP_KEY_END:
		if (!o->trace)
			argp_error(state, "which recording? give TRACE.json (written by llmtap record)");
		if (!o->out)
			argp_error(state, "where to? give -o FILE (e.g. -o report.html)");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static int run_report(int argc, char **argv)
{
	static const struct argp_option options[] = {
		{ "output", 'o', "REPORT.html", 0, "The HTML file to write (required)", 0 },
		{ 0 },
	};
	static const struct argp argp = { options, report_parse, "TRACE.json -o REPORT.html",
					  report_doc, NULL, NULL, NULL };
	struct report_opts o = { 0 };
	char err[512];

	if (argp_parse(&argp, argc, argv, 0, NULL, &o))
		return 2;
	if (report_write(o.trace, o.out, err, sizeof(err))) {
		tell("%s", err);
		return 1;
	}
	fprintf(stderr, "llmtap: wrote %s\n", o.out);
	return 0;
}

static const char daemon_doc[] =
	"Trace every llama.cpp process of this host: the ones running now, and the ones that "
	"start later.\n"
	"\n"
	"An exec tracepoint sees new processes within milliseconds; a /proc rescan every "
	"--rescan is the safety net. Each is attached when it maps a file that defines "
	"llama_decode, in any container (paths are resolved through /proc/PID/root), and "
	"detached when it exits. A process started after the daemon is attached before its model "
	"loads, so model load and context creation are traced too: a process seen within 3 s of "
	"its exec is held still while the probes go on (ptrace's invisible stop, tens of "
	"milliseconds, before it serves anything; --no-freeze turns that off).\n"
	"\n"
	"Each process gets its own OpenTelemetry resource: service.name (its name, or "
	"OTEL_SERVICE_NAME in its own environment), service.instance.id, process.pid, "
	"container.id and k8s.pod.uid from its cgroup, k8s.pod.name and k8s.namespace.name from "
	"its environment (K8S_POD_NAME or POD_NAME, K8S_NAMESPACE or POD_NAMESPACE: the downward "
	"API), k8s.node.name from the daemon's K8S_NODE_NAME, and its own "
	"OTEL_RESOURCE_ATTRIBUTES.\n"
	"\n"
	"Output: OTLP (one sender for all processes), --prometheus (every process's series with "
	"its service_instance_id and process_pid labels, and a target_info each), --json lines "
	"for every process; attach and detach lines on stderr.\n"
	"\n"
	"Selection: every llama.cpp process unless --exe, --cgroup or --port narrow it (each "
	"kind given must match one of its values) and --exclude drops some.\v"
	"GLOB: an fnmatch(3) pattern, '*' also crossing '/', matched against the executable's "
	"path (as the process sees it) and its name; for --cgroup, against the cgroup path in "
	"/proc/PID/cgroup.\n"
	"\n"
	"Memory: per process, a ring buffer (--ringbuf-size, 1M by default) and about 2 MiB of "
	"state; --max-targets bounds how many.\n"
	"\n"
	"Stop it with SIGINT or SIGTERM: every process is detached, nothing is left attached.\n"
	"\n"
	"Exit status: 0 stopped, 1 could not start, 2 bad usage.\n"
	"\n"
	"Examples:\n"
	"  llmtap daemon --otlp-endpoint http://otel-collector:4318\n"
	"  llmtap daemon --exe '*/llama-server' --exclude '*test*' --json\n"
	"  llmtap daemon --cgroup '*kubepods*' --prometheus :9464\n"
	"  llmtap daemon --port 8080 --port 8081 --tail 60s --tail-dir /var/tmp";

static const struct argp_option daemon_options[] = {
	{ "exe", OPT_EXE, "GLOB", 0, "Trace only executables matching GLOB (repeatable)", 0 },
	{ "cgroup", OPT_CGROUP, "GLOB", 0, "Trace only processes in a cgroup matching GLOB, e.g. '*kubepods*' (repeatable)", 0 },
	{ "port", OPT_PORT, "PORT", 0, "Trace only processes listening on this TCP port (repeatable)", 0 },
	{ "exclude", OPT_EXCLUDE, "GLOB", 0, "Never trace executables matching GLOB (repeatable)", 0 },
	{ "max-targets", OPT_MAX_TARGETS, "N", 0, "Trace at most N processes at once (default 32, at most 64)", 0 },
	{ "rescan", OPT_RESCAN, "DURATION", 0, "Look through /proc this often (default 2s)", 0 },
	{ "no-exec-watch", OPT_NO_EXEC, NULL, 0, "No exec tracepoint: find new processes by rescans only", 0 },
	{ "no-freeze", OPT_NO_FREEZE, NULL, 0, "Never hold a just-started process still while attaching (its model load may then be missed)", 0 },
	{ 0 },
};

static void add_glob(struct argp_state *state, const char *flag, const char **list, int *n,
		     const char *arg)
{
	if (*n >= SELECT_MAX)
		argp_error(state, "%s: at most %d", flag, SELECT_MAX);
	list[(*n)++] = arg;
}

static error_t daemon_parse(int key, char *arg, struct argp_state *state)
{
	struct daemon_opts *o = state->input;
	char *end;
	long v;

	switch (key) {
	case OPT_EXE:
		add_glob(state, "--exe", o->sel.exe, &o->sel.n_exe, arg);
		break;
	case OPT_CGROUP:
		add_glob(state, "--cgroup", o->sel.cgroup, &o->sel.n_cgroup, arg);
		break;
	case OPT_EXCLUDE:
		add_glob(state, "--exclude", o->sel.exclude, &o->sel.n_exclude, arg);
		break;
	case OPT_PORT:
		v = strtol(arg, &end, 10);
		if (*end || v < 1 || v > 65535)
			argp_error(state, "--port: '%s' is not a TCP port (1-65535)", arg);
		if (o->sel.n_ports >= SELECT_MAX)
			argp_error(state, "--port: at most %d", SELECT_MAX);
		o->sel.ports[o->sel.n_ports++] = (unsigned int)v;
		break;
	case OPT_MAX_TARGETS:
		v = strtol(arg, &end, 10);
		if (*end || v < 1 || v > 64)
			argp_error(state, "--max-targets: '%s' is not a number from 1 to 64", arg);
		o->max_targets = (int)v;
		break;
	case OPT_RESCAN:
		if (parse_duration(arg, &o->rescan_ns) || o->rescan_ns < 100000000ull)
			argp_error(state, "--rescan: '%s' is not a duration of at least 100ms", arg);
		break;
	case OPT_NO_EXEC:
		o->no_exec_watch = true;
		break;
	case OPT_NO_FREEZE:
		o->no_freeze = true;
		break;
	case ARGP_KEY_INIT:
		state->child_inputs[0] = &o->trace;
		break;
	case ARGP_KEY_ARG:
		argp_error(state, "unexpected argument '%s'", arg);
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static int run_daemon(int argc, char **argv)
{
	static const struct argp_child children[] = {
		{ &daemon_trace_argp, 0, NULL, 0 },
		{ 0 },
	};
	static const struct argp argp = { daemon_options, daemon_parse, NULL, daemon_doc, children,
					  NULL, NULL };
	struct daemon_opts o = {
		.trace = attach_defaults(),
		.rescan_ns = 2000000000ull,
		.max_targets = 32,
	};

	o.trace.ringbuf_bytes = 1u << 20; /* per process; there may be many */
	if (argp_parse(&argp, argc, argv, 0, NULL, &o))
		return 2;
	return cmd_daemon(&o);
}

static const char run_doc[] =
	"Start a program under llmtap, traced from its first instruction.\n"
	"\n"
	"llmtap finds llama.cpp in the executable and the libraries its dynamic loader will map, "
	"attaches, and only then lets the program run, so model load (how long, which file) and "
	"context creation (n_ctx, n_batch, n_ubatch, n_seq_max) are traced like every request "
	"after them.\n"
	"\n"
	"The program's descendants that load llama.cpp are traced too, each as a process of its "
	"own, as they start: a router llama-server (--models-dir DIR) starts a child per model "
	"when the model is first requested; the router's requests are proxy spans, the tokens "
	"are the children's.\n"
	"\n"
	"Signals sent to llmtap (kill, systemd, a container runtime) go on to the program; "
	"Ctrl-C reaches both from the terminal. llmtap ends when the program does, with the "
	"summary, and exits with the program's status (128 + N when signal N ended it). SIGUSR1 "
	"stays llmtap's (--tail). A program without llama.cpp is not started.\v"
	"The options are attach's (without --pid); --duration stops the tracing, the program "
	"runs on and llmtap still waits for its status.\n"
	"\n"
	"Exit status: the program's, or 1 when it could not be started or traced, 2 bad usage.\n"
	"\n"
	"Examples:\n"
	"  llmtap run -- llama-server -m model.gguf --port 8080\n"
	"  llmtap run --json --no-steps -- llama-server -m model.gguf > reqs.jsonl\n"
	"  llmtap run --otlp-endpoint http://otel:4318 -- llama-server -m model.gguf\n"
	"  llmtap run --json -- llama-server --models-dir /srv/models --port 8080";

struct run_args {
	struct attach_opts o;
	char **argv; /* the program and its arguments */
};

static error_t run_parse(int key, char *arg, struct argp_state *state)
{
	struct run_args *r = state->input;

	(void)arg; /* ARGP_KEY_ARG's is state->argv[state->next - 1] */
	switch (key) {
	case ARGP_KEY_INIT:
		state->child_inputs[0] = &r->o;
		break;
	case ARGP_KEY_ARG: /* the program: it and everything after it are its own */
		r->argv = &state->argv[state->next - 1];
		state->next = state->argc;
		break;
	case ARGP_KEY_END:
		if (!r->argv)
			argp_error(state, "which program? give it after --, e.g. "
					  "llmtap run -- llama-server -m model.gguf");
		break;
	default:
		return ARGP_ERR_UNKNOWN;
	}
	return 0;
}

static int run_run(int argc, char **argv)
{
	static const struct argp_child children[] = {
		{ &trace_argp, 0, NULL, 0 },
		{ 0 },
	};
	static const struct argp argp = { NULL, run_parse, "-- PROGRAM [ARG...]", run_doc, children,
					  NULL, NULL };
	struct run_args r = { .o = attach_defaults() };

	if (argp_parse(&argp, argc, argv, ARGP_IN_ORDER, NULL, &r))
		return 2;
	return cmd_run(&r.o, r.argv);
}

static void usage(FILE *out)
{
	fprintf(out,
		"Usage: llmtap COMMAND [OPTION...]\n"
		"Trace llama.cpp inference servers from outside the process, with eBPF.\n"
		"\n"
		"Commands:\n"
		"  attach   trace a running process\n"
		"  top      a live full-screen view of a running process\n"
		"  record   record a running process into a trace-event file\n"
		"  report   an HTML page about a recording\n"
		"  run      start a program traced from its first instruction\n"
		"  daemon   trace every llama.cpp process of the host\n"
		"\n"
		"'llmtap COMMAND --help' shows a command's options and examples.\n"
		"'llmtap --version' shows the version.\n"
		"Tracing needs root (or CAP_BPF, CAP_PERFMON and CAP_SYS_PTRACE).\n"
		"\n"
		"Examples:\n"
		"  llmtap attach --pid $(pgrep -o llama-server)\n"
		"  llmtap top --pid $(pgrep -o llama-server)\n"
		"  llmtap record --pid $(pgrep -o llama-server) --duration 60s -o trace.json\n"
		"  llmtap report trace.json -o report.html\n"
		"  llmtap run -- llama-server -m model.gguf --port 8080\n"
		"  llmtap daemon --otlp-endpoint http://otel-collector:4318\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V")) {
		printf("%s\n", argp_program_version);
		return 0;
	}
	if (!strcmp(argv[1], "attach")) {
		argv[1] = "llmtap attach";
		return run_attach(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "top")) {
		argv[1] = "llmtap top";
		return run_top(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "record")) {
		argv[1] = "llmtap record";
		return run_record(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "run")) {
		argv[1] = "llmtap run";
		return run_run(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "daemon")) {
		argv[1] = "llmtap daemon";
		return run_daemon(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "report")) {
		argv[1] = "llmtap report";
		return run_report(argc - 1, argv + 1);
	}
	fprintf(stderr, "llmtap: unknown command '%s'\n", argv[1]);
	usage(stderr);
	return 2;
}
