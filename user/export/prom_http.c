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

#define PROM_IO_TIMEOUT_MS 5000
#define PROM_LINGER_MS 500
#define PROM_HEAD_MAX 8192
#define PROM_BACKLOG 16

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

/* 1 once fd has one of events, 0 at the deadline or when stopping, -1 on error */
static int wait_fd(const struct prom_server *s, int fd, short events, int64_t deadline)
{
	struct pollfd pfd[2] = {
		{ .fd = fd, .events = events },
		{ .fd = s->wakefd, .events = POLLIN },
	};

	for (;;) {
		int64_t left = deadline - now_ms();
		int n;

		if (left <= 0)
			return 0;
		n = poll(pfd, 2, (int)left);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n;
		return pfd[1].revents ? 0 : 1;
	}
}

static int send_all(const struct prom_server *s, int fd, const char *buf, size_t len, int flags,
		    int64_t deadline)
{
	while (len) {
		ssize_t n = send(fd, buf, len, flags | MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN) {
			if (wait_fd(s, fd, POLLOUT, deadline) <= 0)
				return -1;
			continue;
		}
		if (n < 0)
			return -1;
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * The request head, up to its blank line, NUL-terminated in buf: its length,
 * -1 to drop the client (silent, closed, too slow, stopping), -2 if too long.
 */
static ssize_t read_head(const struct prom_server *s, int fd, char *buf, size_t size)
{
	int64_t deadline = now_ms() + PROM_IO_TIMEOUT_MS;
	size_t len = 0;

	while (len + 1 < size) {
		ssize_t n;

		if (wait_fd(s, fd, POLLIN, deadline) <= 0)
			return -1;
		n = recv(fd, buf + len, size - 1 - len, 0);
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			continue;
		if (n <= 0)
			return -1;
		len += (size_t)n;
		buf[len] = '\0';
		if (memmem(buf, len, "\r\n\r\n", 4) || memmem(buf, len, "\n\n", 2))
			return (ssize_t)len;
	}
	return -2;
}

/* The status for a request head; *head_only for HEAD. */
static int route(const char *head, bool *head_only)
{
	char method[16], target[1024], version[16];

	if (sscanf(head, "%15s %1023s %15s", method, target, version) != 3 ||
	    strncmp(version, "HTTP/", 5))
		return 400;
	target[strcspn(target, "?")] = '\0';
	if (strcmp(target, "/metrics"))
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

static void respond(const struct prom_server *s, int fd, int status, const char *body, size_t len,
		    bool head_only)
{
	int64_t deadline = now_ms() + PROM_IO_TIMEOUT_MS;
	char hdr[256], text[64];
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
		     status == 200 ? PROM_CONTENT_TYPE : "text/plain; charset=utf-8", len,
		     status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (send_all(s, fd, hdr, (size_t)n, head_only || !len ? 0 : MSG_MORE, deadline) ||
	    head_only)
		return;
	send_all(s, fd, body, len, 0, deadline);
}

/* Half-close and read what the client still sends, so closing does not reset the reply. */
static void linger_close(const struct prom_server *s, int fd)
{
	int64_t deadline = now_ms() + PROM_LINGER_MS;
	char scratch[512];

	shutdown(fd, SHUT_WR);
	while (wait_fd(s, fd, POLLIN, deadline) > 0) {
		ssize_t n = recv(fd, scratch, sizeof(scratch), 0);

		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
			break;
	}
	close(fd);
}

/* One request per connection. */
static void serve_client(struct prom_server *s, int fd)
{
	char head[PROM_HEAD_MAX];
	bool head_only = false;
	char *body = NULL;
	size_t len = 0;
	ssize_t n;
	int status;

	n = read_head(s, fd, head, sizeof(head));
	if (n == -1) {
		close(fd);
		return;
	}
	status = n < 0 ? 431 : route(head, &head_only);
	if (status == 200 && !(body = render_snapshot(s, &len)))
		status = 500;
	respond(s, fd, status, body, len, head_only);
	free(body);
	linger_close(s, fd);
}

static void *serve(void *arg)
{
	struct prom_server *s = arg;
	struct pollfd pfd[2] = {
		{ .fd = s->lfd, .events = POLLIN },
		{ .fd = s->wakefd, .events = POLLIN },
	};

	for (;;) {
		int fd, n = poll(pfd, 2, -1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || pfd[1].revents)
			break;
		if (!(pfd[0].revents & POLLIN))
			continue;
		fd = accept4(s->lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0)
			serve_client(s, fd);
		else if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM)
			poll(&pfd[1], 1, 100); /* out of resources: do not spin */
	}
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

int prom_server_publish_target(struct prom_server *s, int id, const char *const *labels,
			       const struct metrics *m)
{
	struct prom_target *t;
	int ret = 0;

	if (!s)
		return -EINVAL;
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
