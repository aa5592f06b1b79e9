/* Clock, error strings and internal invariants. */
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "core.h"

int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int64_t deadline_after(int64_t timeout_ms)
{
	if (timeout_ms < 0)
		return INT64_MAX;
	return now_ms() + timeout_ms;
}

/* A peer whose host died, or whose connection was reset on its side
 * alone, leaves ours half-open: an idle pipe never learns, and a listener
 * keeps it for good (make soak: a REP held a vanished REQ's connection).
 * Keepalive probes it after idle_ms of silence, every fifth of that, and
 * the kernel ends it after 3 unanswered probes; a live peer's kernel
 * answers them whether or not its application reads, even stopped. */
void tcp_keepalive(int fd, int64_t idle_ms)
{
	int on = idle_ms > 0;
	setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof(on));
	if (!on)
		return;
	int idle = (int)((idle_ms + 999) / 1000), intvl = idle / 5 > 0 ? idle / 5 : 1, count = 3;
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof(idle));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof(intvl));
	setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &count, sizeof(count));
}

void die_on(int cond, const char *what)
{
	if (cond) {
		fprintf(stderr, "nnofi: fatal: %s\n", what);
		abort();
	}
}

const char *nnofi_strerror(int err)
{
	switch (err) {
	case EPROTO:
		return "operation not valid in the socket's current state";
	case EBADF:
		return "socket is closed";
	case ENOTSUP:
		return "operation not supported by this socket type";
	case EMSGSIZE:
		return "message larger than recv_max_size";
	default:
		return strerror(err);
	}
}
