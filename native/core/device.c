/* Devices: forward messages between two raw sockets in both directions,
 * headers included (so REQ/REP and SURVEYOR backtraces survive the hop),
 * like nn_device. With one socket it is a reflector (PAIR, BUS). */
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core.h"

/* Move every message ready on `from` to `to`; EBADF once either closes. */
static int forward_ready(struct nnofi_sock *from, struct nnofi_sock *to)
{
	for (;;) {
		nnofi_recv_result r;
		int rc = nnofi_recv(from, NNOFI_DONTWAIT, &r);
		if (rc == EAGAIN)
			return 0;
		if (rc)
			return rc;
		rc = nnofi_send_msg(to, r.msg, 0);
		msg_free(r.msg);
		if (rc == EBADF)
			return rc;
	}
}

int nnofi_device(nnofi_sock *a, nnofi_sock *b)
{
	if (!b)
		b = a;
	if (!a->raw || !b->raw)
		return EINVAL; /* cooked sockets would strip the headers */
	if (a->proto->peer_id != b->proto->id)
		return EINVAL; /* e.g. REP must face REQ */
	int fda, fdb;
	nnofi_recv_fd(a, &fda);
	nnofi_recv_fd(b, &fdb);
	int ep = epoll_create1(EPOLL_CLOEXEC);
	if (ep < 0)
		return errno;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = a };
	epoll_ctl(ep, EPOLL_CTL_ADD, fda, &ev);
	if (b != a) {
		ev.data.ptr = b;
		epoll_ctl(ep, EPOLL_CTL_ADD, fdb, &ev);
	}
	/* what is queued already: the fds only tell of what comes next */
	int rc = forward_ready(a, b);
	if (rc == 0 && b != a)
		rc = forward_ready(b, a);
	while (rc == 0) {
		struct epoll_event evs[2];
		int n = epoll_wait(ep, evs, 2, -1);
		if (n < 0 && errno != EINTR) {
			rc = errno;
			break;
		}
		for (int i = 0; i < n && rc == 0; i++) {
			struct nnofi_sock *from = evs[i].data.ptr;
			rc = forward_ready(from, from == a ? b : a);
		}
	}
	close(ep);
	return rc == EBADF ? 0 : rc;
}
