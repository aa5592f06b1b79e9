/* Clock, error strings and internal invariants. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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
