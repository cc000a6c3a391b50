// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
#include "export/prom_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "export/prom_text.h"
#include "lib/clock.h"
#include "model/metrics.h"

/*
 * Every connection is served at once by one poll loop, each with its own
 * deadlines and size limit, so a scrape is answered promptly whatever other
 * clients do (idle connections, a request sent a byte a second, a reader that
 * never reads): a request head must arrive whole within PROM_HEAD_TIMEOUT_MS,
 * a response be taken within PROM_IO_TIMEOUT_MS; past PROM_MAX_CONNS the
 * connection waiting longest for its request head is dropped.
 */
#define PROM_HEAD_TIMEOUT_MS 2000
#define PROM_IO_TIMEOUT_MS 5000
#define PROM_LINGER_MS 500
#define PROM_HEAD_MAX 8192
#define PROM_BACKLOG 64
#define PROM_MAX_CONNS 32
/* /healthz fails when nothing was published for this long (or 3 intervals, if longer) */
#define PROM_STALE_MS 10000

enum conn_state { CONN_FREE = 0, CONN_READ, CONN_WRITE, CONN_LINGER };

struct conn {
	enum conn_state state;
	int fd;
	int64_t deadline; /* ms, monotonic: dropped past it */
	size_t head_len;
	char *out;        /* the response, malloc'ed */
	size_t out_len, out_off;
	char head[PROM_HEAD_MAX];
};

/* One traced process's metrics as scrapes see them. */
struct prom_target {
	bool used;
	int id;
	struct metrics *snap;
	char **info;   /* target_info labels: key, value, ..., NULL */
	char **labels; /* labels on each of its series, NULL for none */
};

struct prom_server {
	int lfd;
	int wakefd; /* eventfd: readable once stopping */
	pthread_t thread;
	pthread_mutex_t lock; /* guards targets */
	struct prom_target targets[PROM_MAX_TARGETS]; /* [0]: the single target of attach */
	struct conn conns[PROM_MAX_CONNS];
	/* liveness: when the main loop last published, and the gap before (ms; atomics) */
	int64_t started_ms, beat_ms, beat_gap_ms, stale_ms;
};

struct listen_addr {
	struct sockaddr_storage ss;
	socklen_t len;
	unsigned int port;
	bool any; /* ":PORT": every interface, IPv6 and IPv4 */
};

__attribute__((format(printf, 3, 4)))
static void set_err(char *err, size_t len, const char *fmt, ...)
{
	va_list ap;

	if (!err || !len)
		return;
	va_start(ap, fmt);
	vsnprintf(err, len, fmt, ap);
	va_end(ap);
}

static int parse_port(const char *s, unsigned int *port)
{
	unsigned long v;
	char *end;

	if (s[0] < '0' || s[0] > '9' || strlen(s) > 5)
		return -EINVAL;
	v = strtoul(s, &end, 10);
	if (*end || v == 0 || v > 65535)
		return -EINVAL;
	*port = (unsigned int)v;
	return 0;
}

static void set_any(struct listen_addr *a, int family)
{
	memset(&a->ss, 0, sizeof(a->ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

		sin6->sin6_family = AF_INET6;
		sin6->sin6_addr = in6addr_any;
		sin6->sin6_port = htons((uint16_t)a->port);
		a->len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

		sin->sin_family = AF_INET;
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
		sin->sin_port = htons((uint16_t)a->port);
		a->len = sizeof(*sin);
	}
}

static int set_host(struct listen_addr *a, int family, const char *host)
{
	memset(&a->ss, 0, sizeof(a->ss));
	if (family == AF_INET6) {
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a->ss;

		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -EINVAL;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons((uint16_t)a->port);
		a->len = sizeof(*sin6);
	} else {
		struct sockaddr_in *sin = (struct sockaddr_in *)&a->ss;

		if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
			return -EINVAL;
		sin->sin_family = AF_INET;
		sin->sin_port = htons((uint16_t)a->port);
		a->len = sizeof(*sin);
	}
	return 0;
}

/* "IPV4:PORT", ":PORT" or "[IPV6]:PORT" */
static int parse_addr(const char *s, struct listen_addr *a, char *err, size_t errlen)
{
	static const char *const usage = "e.g. 127.0.0.1:9464, :9464 or [::1]:9464";
	int family = AF_INET;
	const char *host = s, *port;
	char buf[INET6_ADDRSTRLEN];
	size_t host_len;

	memset(a, 0, sizeof(*a));
	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':') {
			set_err(err, errlen, "invalid listen address \"%s\": expected [IPV6]:PORT (%s)",
				s, usage);
			return -EINVAL;
		}
		family = AF_INET6;
		host = s + 1;
		host_len = (size_t)(close - host);
		port = close + 2;
	} else {
		const char *colon = strrchr(s, ':');

		if (!colon) {
			set_err(err, errlen, "invalid listen address \"%s\": no :PORT (%s)", s, usage);
			return -EINVAL;
		}
		host_len = (size_t)(colon - s);
		port = colon + 1;
		if (memchr(s, ':', host_len)) {
			set_err(err, errlen,
				"invalid listen address \"%s\": an IPv6 address goes in brackets (%s)",
				s, usage);
			return -EINVAL;
		}
	}
	if (parse_port(port, &a->port)) {
		set_err(err, errlen, "invalid listen address \"%s\": port \"%s\" is not 1-65535", s,
			port);
		return -EINVAL;
	}
	if (!host_len && family == AF_INET) {
		a->any = true;
		set_any(a, AF_INET6);
		return 0;
	}
	snprintf(buf, sizeof(buf), "%.*s", (int)host_len, host);
	if (host_len >= sizeof(buf) || set_host(a, family, buf)) {
		set_err(err, errlen, "invalid listen address \"%s\": \"%.*s\" is not an %s address (%s)",
			s, (int)host_len, host, family == AF_INET6 ? "IPv6" : "IPv4", usage);
		return -EINVAL;
	}
	return 0;
}

/* A non-blocking listening socket, or -errno. */
static int open_listener(const struct listen_addr *a)
{
	int fd, one = 1, zero = 0, err;

	fd = socket(a->ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)))
		goto fail;
	/* ":PORT" listens on IPv4 too, through v4-mapped addresses */
	if (a->any && a->ss.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero)))
		goto fail;
	if (bind(fd, (const struct sockaddr *)&a->ss, a->len) || listen(fd, PROM_BACKLOG))
		goto fail;
	return fd;
fail:
	err = errno;
	close(fd);
	return -err;
}

static int listen_on(struct listen_addr *a, const char *text, char *err, size_t errlen)
{
	int fd = open_listener(a);

	/* a kernel without IPv6: ":PORT" is every IPv4 interface */
	if (fd == -EAFNOSUPPORT && a->any) {
		set_any(a, AF_INET);
		fd = open_listener(a);
	}
	if (fd >= 0)
		return fd;
	switch (-fd) {
	case EADDRINUSE:
		set_err(err, errlen, "cannot listen on %s: address already in use", text);
		break;
	case EACCES:
		set_err(err, errlen, "cannot listen on %s: permission denied%s", text,
			a->port < 1024 ? " (ports below 1024 need CAP_NET_BIND_SERVICE)" : "");
		break;
	case EADDRNOTAVAIL:
		set_err(err, errlen, "cannot listen on %s: no local interface has that address",
			text);
		break;
	default:
		set_err(err, errlen, "cannot listen on %s: %s", text, strerror(-fd));
	}
	return -1;
}

static int64_t now_ms(void)
{
	return (int64_t)(monotonic_ns() / 1000000);
}

int prom_route(const char *head, bool *head_only, enum prom_path *path)
{
	char method[16], target[1024], version[16];

	if (sscanf(head, "%15s %1023s %15s", method, target, version) != 3 ||
	    strncmp(version, "HTTP/", 5))
		return 400;
	target[strcspn(target, "?")] = '\0';
	if (!strcmp(target, "/metrics"))
		*path = PROM_PATH_METRICS;
	else if (!strcmp(target, "/healthz"))
		*path = PROM_PATH_HEALTHZ;
	else
		return 404;
	*head_only = !strcmp(method, "HEAD");
	if (strcmp(method, "GET") && !*head_only)
		return 405;
	return 200;
}

static const char *reason(int status)
{
	switch (status) {
	case 200:
		return "OK";
	case 400:
		return "Bad Request";
	case 404:
		return "Not Found";
	case 405:
		return "Method Not Allowed";
	case 431:
		return "Request Header Fields Too Large";
	case 503:
		return "Service Unavailable";
	default:
		return "Internal Server Error";
	}
}

/* target_info of every target, then every family across them (lock held). */
static int render_targets(struct prom_server *s, FILE *f)
{
	const struct metrics *ms[PROM_MAX_TARGETS];
	const char *const *labels[PROM_MAX_TARGETS];
	const char *const *info[PROM_MAX_TARGETS];
	int n = 0;

	for (int i = 0; i < PROM_MAX_TARGETS; i++) {
		const struct prom_target *t = &s->targets[i];

		if (!t->used)
			continue;
		ms[n] = t->snap;
		info[n] = (const char *const *)t->info;
		labels[n++] = (const char *const *)t->labels;
	}
	return prom_render_targets(ms, labels, info, n, f);
}

/* The snapshot in the exposition format (malloc'ed), or NULL. */
static char *render_snapshot(struct prom_server *s, size_t *len)
{
	char *buf = NULL;
	FILE *f = open_memstream(&buf, len);
	int ret;

	if (!f)
		return NULL;
	pthread_mutex_lock(&s->lock);
	ret = render_targets(s, f);
	pthread_mutex_unlock(&s->lock);
	if (fclose(f) || ret) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* The whole response (malloc'ed) in c->out, sent from the next POLLOUT on. */
/* type: the body's content type; NULL: plain text (a body NULL: the status's reason) */
static void respond(struct conn *c, int status, const char *type, const char *body, size_t len,
		    bool head_only)
{
	char hdr[256], text[160];
	int n;

	if (!body) {
		snprintf(text, sizeof(text), "%s\n", reason(status));
		body = text;
		len = strlen(text);
	}
	n = snprintf(hdr, sizeof(hdr),
		     "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n%s"
		     "Connection: close\r\n\r\n",
		     status, reason(status),
		     type && body != text ? type : "text/plain; charset=utf-8",
		     len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	c->out_len = (size_t)n + (head_only ? 0 : len);
	c->out = malloc(c->out_len);
	if (!c->out) {
		c->out_len = 0;
		return;
	}
	memcpy(c->out, hdr, (size_t)n);
	if (!head_only)
		memcpy(c->out + n, body, len);
}

/* 200 while the main loop publishes; 503 with how long it has not. */
static int health(const struct prom_server *s, char *text, size_t len)
{
	int64_t now = now_ms(), beat = __atomic_load_n(&s->beat_ms, __ATOMIC_RELAXED);
	int64_t gap = __atomic_load_n(&s->beat_gap_ms, __ATOMIC_RELAXED);
	int64_t floor_ms = __atomic_load_n(&s->stale_ms, __ATOMIC_RELAXED);
	int64_t stale = gap * 3 > floor_ms ? gap * 3 : floor_ms;
	int64_t since = now - (beat ? beat : s->started_ms);

	if (since <= stale) {
		snprintf(text, len, "ok\n");
		return 200;
	}
	snprintf(text, len, "stale: llmtap's main loop has not made progress for %.1f s\n",
		 (double)since / 1e3);
	return 503;
}

/* A whole request head arrived (or too much of one): build the answer. */
static void answer(struct prom_server *s, struct conn *c, bool too_long)
{
	enum prom_path path = PROM_PATH_METRICS;
	bool head_only = false;
	char *body = NULL, text[160];
	size_t len = 0;
	int status;

	status = too_long ? 431 : prom_route(c->head, &head_only, &path);
	if (status == 200 && path == PROM_PATH_HEALTHZ) {
		status = health(s, text, sizeof(text));
		respond(c, status, NULL, text, strlen(text), head_only);
	} else {
		if (status == 200 && !(body = render_snapshot(s, &len)))
			status = 500;
		respond(c, status, PROM_CONTENT_TYPE, body, len, head_only);
		free(body);
	}
	c->state = CONN_WRITE;
	c->deadline = now_ms() + PROM_IO_TIMEOUT_MS;
}

static void conn_close(struct conn *c)
{
	close(c->fd);
	free(c->out);
	c->out = NULL;
	c->state = CONN_FREE;
}

/* Reading the request head: true while the connection lives. */
static bool conn_read(struct prom_server *s, struct conn *c)
{
	ssize_t n = recv(c->fd, c->head + c->head_len, sizeof(c->head) - 1 - c->head_len, 0);

	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	if (n == 0)
		return false;
	/* only where the new bytes can complete the blank line: a head sent a byte at a
	 * time costs linear work, not quadratic */
	size_t from = c->head_len > 3 ? c->head_len - 3 : 0;

	c->head_len += (size_t)n;
	c->head[c->head_len] = '\0';
	if (memmem(c->head + from, c->head_len - from, "\r\n\r\n", 4) ||
	    memmem(c->head + from, c->head_len - from, "\n\n", 2))
		answer(s, c, false);
	else if (c->head_len + 1 >= sizeof(c->head))
		answer(s, c, true);
	return true;
}

/* Sending the response, then half-closing: true while the connection lives. */
static bool conn_write(struct conn *c)
{
	while (c->out_off < c->out_len) {
		ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		c->out_off += (size_t)n;
	}
	/* read what the client still sends, so closing does not reset the reply */
	shutdown(c->fd, SHUT_WR);
	c->state = CONN_LINGER;
	c->deadline = now_ms() + PROM_LINGER_MS;
	return true;
}

static bool conn_linger(struct conn *c)
{
	char scratch[512];
	ssize_t n = recv(c->fd, scratch, sizeof(scratch), 0);

	return n > 0 || (n < 0 && (errno == EAGAIN || errno == EINTR));
}

/* A free connection slot; when all are taken, the one waiting longest for its head. */
/*
 * A free connection slot. When all are taken, one is dropped: the one waiting
 * longest for its request head, else (clients that ask and never read) the one
 * longest in its answer; a new scraper always gets in.
 */
static struct conn *conn_slot(struct prom_server *s)
{
	struct conn *oldest = NULL;

	for (int i = 0; i < PROM_MAX_CONNS; i++) {
		struct conn *c = &s->conns[i];

		if (c->state == CONN_FREE)
			return c;
		if (!oldest || (c->state == CONN_READ) > (oldest->state == CONN_READ) ||
		    ((c->state == CONN_READ) == (oldest->state == CONN_READ) &&
		     c->deadline < oldest->deadline))
			oldest = c;
	}
	conn_close(oldest);
	return oldest;
}

/* Take the waiting connections; false when out of resources (EMFILE...): pause accepting. */
static bool accept_all(struct prom_server *s)
{
	for (;;) {
		int fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		struct conn *c;

		if (fd < 0)
			return errno == EAGAIN || errno == EINTR || errno == ECONNABORTED;
		c = conn_slot(s);
		memset(c, 0, offsetof(struct conn, head));
		c->state = CONN_READ;
		c->fd = fd;
		c->deadline = now_ms() + PROM_HEAD_TIMEOUT_MS;
	}
}

static void *serve(void *arg)
{
	struct prom_server *s = arg;
	struct pollfd pfd[2 + PROM_MAX_CONNS];
	struct conn *which[2 + PROM_MAX_CONNS];
	int64_t accept_after = 0; /* out of fds: the listener rests until then */

	for (;;) {
		int64_t now = now_ms(), next = now + 1000;
		int n = 2, ready;

		/* a listener left readable while accept fails would wake every poll at once */
		pfd[0] = (struct pollfd){ .fd = s->lfd, .events = now >= accept_after ? POLLIN : 0 };
		if (now < accept_after && accept_after < next)
			next = accept_after;
		pfd[1] = (struct pollfd){ .fd = s->wakefd, .events = POLLIN };
		for (int i = 0; i < PROM_MAX_CONNS; i++) {
			struct conn *c = &s->conns[i];

			if (c->state == CONN_FREE)
				continue;
			if (now >= c->deadline) { /* too slow: dropped */
				conn_close(c);
				continue;
			}
			if (c->deadline < next)
				next = c->deadline;
			which[n] = c;
			pfd[n++] = (struct pollfd){ .fd = c->fd,
						    .events = c->state == CONN_WRITE ? POLLOUT : POLLIN };
		}
		ready = poll(pfd, (nfds_t)n, (int)(next - now));
		if (ready < 0 && errno == EINTR)
			continue;
		if (ready < 0 || pfd[1].revents)
			break;
		for (int i = 2; i < n; i++) {
			struct conn *c = which[i];
			bool alive;

			if (!pfd[i].revents)
				continue;
			if (c->state == CONN_READ)
				alive = conn_read(s, c);
			else if (c->state == CONN_WRITE)
				alive = c->out ? conn_write(c) : false;
			else
				alive = conn_linger(c);
			if (alive && c->state == CONN_WRITE && c->out && c->out_off == 0)
				alive = conn_write(c); /* try at once: most answers fit the socket */
			if (!alive)
				conn_close(c);
		}
		if ((pfd[0].revents & POLLIN) && !accept_all(s))
			accept_after = now_ms() + 100;
	}
	for (int i = 0; i < PROM_MAX_CONNS; i++)
		if (s->conns[i].state != CONN_FREE)
			conn_close(&s->conns[i]);
	return NULL;
}

static void free_info(char **info)
{
	for (int i = 0; info && info[i]; i++)
		free(info[i]);
	free(info);
}

static void free_target(struct prom_target *t)
{
	free(t->snap);
	free_info(t->info);
	free_info(t->labels);
	memset(t, 0, sizeof(*t));
}

static void free_server(struct prom_server *s)
{
	if (s->lfd >= 0)
		close(s->lfd);
	if (s->wakefd >= 0)
		close(s->wakefd);
	pthread_mutex_destroy(&s->lock);
	for (int i = 0; i < PROM_MAX_TARGETS; i++)
		free_target(&s->targets[i]);
	free(s);
}

/* The thread takes no signals: they stay with the threads that handle them. */
static int start_thread(struct prom_server *s)
{
	sigset_t all, old;
	int ret;

	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	ret = pthread_create(&s->thread, NULL, serve, s);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	return ret;
}

struct prom_server *prom_server_start(const char *addr_port, char *err, size_t errlen)
{
	struct listen_addr a;
	struct prom_server *s;
	int ret;

	if (!addr_port) {
		set_err(err, errlen, "no listen address");
		return NULL;
	}
	if (parse_addr(addr_port, &a, err, errlen))
		return NULL;
	s = calloc(1, sizeof(*s));
	if (!s) {
		set_err(err, errlen, "cannot start the metrics server: %s", strerror(ENOMEM));
		return NULL;
	}
	s->lfd = -1;
	s->started_ms = now_ms();
	s->stale_ms = PROM_STALE_MS;
	pthread_mutex_init(&s->lock, NULL);
	s->wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (s->wakefd < 0) {
		set_err(err, errlen, "cannot start the metrics server: %s", strerror(errno));
		goto fail;
	}
	s->lfd = listen_on(&a, addr_port, err, errlen);
	if (s->lfd < 0)
		goto fail;
	ret = start_thread(s);
	if (ret) {
		set_err(err, errlen, "cannot start the metrics server thread: %s", strerror(ret));
		goto fail;
	}
	return s;
fail:
	free_server(s);
	return NULL;
}

static char **copy_pairs(const char *const *labels, bool *failed)
{
	char **copy;
	int n = 0;

	*failed = false;
	while (labels && labels[2 * n])
		n++;
	if (!n)
		return NULL;
	copy = calloc((size_t)(2 * n + 1), sizeof(*copy));
	for (int i = 0; copy && i < 2 * n; i++) {
		copy[i] = strdup(labels[i] ? labels[i] : "");
		if (!copy[i]) {
			free_info(copy);
			copy = NULL;
		}
	}
	*failed = !copy;
	return copy;
}

/* The target with id (created when create), or NULL (lock held). */
static struct prom_target *find_target(struct prom_server *s, int id, bool create)
{
	struct prom_target *free_slot = NULL;

	for (int i = 0; i < PROM_MAX_TARGETS; i++) {
		if (s->targets[i].used && s->targets[i].id == id)
			return &s->targets[i];
		if (!s->targets[i].used && !free_slot)
			free_slot = &s->targets[i];
	}
	if (!create || !free_slot)
		return NULL;
	free_slot->snap = calloc(1, sizeof(*free_slot->snap));
	if (!free_slot->snap)
		return NULL;
	free_slot->used = true;
	free_slot->id = id;
	return free_slot;
}

/* The main loop is alive: it publishes every interval. */
static void beat(struct prom_server *s)
{
	int64_t now = now_ms(), last = __atomic_exchange_n(&s->beat_ms, now, __ATOMIC_RELAXED);

	/* the last gap, not the longest: one long stall (an attach to a frozen target)
	 * must not make a loop that hangs later look alive for minutes */
	if (last && now - last >= 100) /* several targets publish within one tick */
		__atomic_store_n(&s->beat_gap_ms, now - last, __ATOMIC_RELAXED);
}

int prom_server_publish_target(struct prom_server *s, int id, const char *const *labels,
			       const struct metrics *m)
{
	struct prom_target *t;
	int ret = 0;

	if (!s)
		return -EINVAL;
	beat(s);
	pthread_mutex_lock(&s->lock);
	t = find_target(s, id, true);
	if (!t) {
		ret = -ENOSPC;
	} else {
		bool failed;

		if (m)
			memcpy(t->snap, m, sizeof(*m));
		else
			memset(t->snap, 0, sizeof(*t->snap));
		if (labels && !t->labels) {
			t->labels = copy_pairs(labels, &failed);
			ret = failed ? -ENOMEM : 0;
		}
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int prom_server_set_target_info(struct prom_server *s, int id, const char *const *info)
{
	struct prom_target *t;
	char **copy;
	bool failed;

	if (!s)
		return -EINVAL;
	copy = copy_pairs(info, &failed);
	if (failed)
		return -ENOMEM;
	pthread_mutex_lock(&s->lock);
	t = find_target(s, id, true);
	if (t) {
		free_info(t->info);
		t->info = copy;
	}
	pthread_mutex_unlock(&s->lock);
	if (!t)
		free_info(copy);
	return t ? 0 : -ENOSPC;
}

void prom_server_remove_target(struct prom_server *s, int id)
{
	struct prom_target *t;

	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	t = find_target(s, id, false);
	if (t)
		free_target(t);
	pthread_mutex_unlock(&s->lock);
}

void prom_server_publish(struct prom_server *s, const struct metrics *m)
{
	prom_server_publish_target(s, 0, NULL, m);
}

int prom_server_set_info(struct prom_server *s, const char *const *labels)
{
	return prom_server_set_target_info(s, 0, labels);
}

void prom_server_set_stale_ms(struct prom_server *s, int64_t ms)
{
	if (s)
		__atomic_store_n(&s->stale_ms, ms, __ATOMIC_RELAXED);
}

void prom_server_stop(struct prom_server *s)
{
	uint64_t one = 1;
	ssize_t n;

	if (!s)
		return;
	n = write(s->wakefd, &one, sizeof(one));
	(void)n; /* an eventfd write only fails on overflow: it is readable anyway */
	pthread_join(s->thread, NULL);
	free_server(s);
}
