/* Connections a MSG listener's provider accepted but never reported.
 *
 * libfabric 1.17's tcp and sockets providers accept a TCP connection on a
 * passive endpoint, then wait for the peer's connection request with no
 * timeout: a client that connects and sends nothing, or one whose host
 * vanished mid-way (make soak found it after resets cut a dialer off),
 * keeps an fd of the listener's process for good, and no FI_CONNREQ ever
 * gives nnofi a handle to refuse it. tcp:// sheds such a connection when
 * its handshake times out; this does the same for ofi://.
 *
 * Every STRAY_SWEEP_MS the listener looks at the process's TCP sockets
 * whose local address is its own: only connections accepted on its port
 * have one. A socket whose peer is none of the listener's pipes, and stays
 * so for MSG_HANDSHAKE_MS, is shut down: shutdown(2), not close, so the
 * provider sees a hang-up, frees what it holds and closes its fd itself
 * (the way it does when such a peer hangs up).
 *
 * The tcp provider only: its accepted socket's peer is the address its
 * connection request reports. The sockets provider (deprecated upstream)
 * holds such connections too, but its accepted sockets show a port other
 * than that address's, so a sweep could not tell its pipes from strays. */
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rdma/fi_cm.h>

#include "ofi_internal.h"

#define STRAY_SWEEP_MS 2000

static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b, bool with_ip)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && (!with_ip || x->sin_addr.s_addr == y->sin_addr.s_addr);
	}
	if (a->ss_family == AF_INET6) {
		const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
		return x->sin6_port == y->sin6_port &&
		       (!with_ip || !memcmp(&x->sin6_addr, &y->sin6_addr, sizeof(x->sin6_addr)));
	}
	return false;
}

static bool wildcard(const struct sockaddr_storage *a)
{
	if (a->ss_family == AF_INET)
		return ((const struct sockaddr_in *)a)->sin_addr.s_addr == htonl(INADDR_ANY);
	if (a->ss_family == AF_INET6)
		return !memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &in6addr_any, sizeof(in6addr_any));
	return false;
}

/* A pipe of this listener has this peer (sock locked). */
static bool known_peer(struct ofi_ep *oe, const struct sockaddr_storage *peer)
{
	struct nnofi_sock *s = oe->ep->sock;
	for (int i = 0; i < s->npipes; i++) {
		struct pipe *p = s->pipes[i];
		if (p->ep == oe->ep && p->ops == &opipe_ops && ((struct opipe *)p)->peer_sa_len &&
		    same_addr(&((struct opipe *)p)->peer_sa, peer, true))
			return true;
	}
	for (struct opipe *op = oe->unattached; op; op = op->next_unattached)
		if (op->peer_sa_len && same_addr(&op->peer_sa, peer, true))
			return true;
	return false;
}

/* The stray seen last sweep as (fd, inode), or NULL. */
static struct stray *last_seen(struct ofi_ep *oe, int fd, ino_t ino)
{
	for (int i = 0; i < oe->nstray; i++)
		if (oe->strays[i].fd == fd && oe->strays[i].ino == ino)
			return &oe->strays[i];
	return NULL;
}

static void sweep(struct ofi_ep *oe)
{
	DIR *dir = opendir("/proc/self/fd");
	if (!dir)
		return;
	struct stray now_seen[MAX_STRAYS];
	int n = 0;
	int64_t now = now_ms();
	struct dirent *d;
	while ((d = readdir(dir))) {
		char *end;
		long fd = strtol(d->d_name, &end, 10);
		if (*end || end == d->d_name || fd == dirfd(dir))
			continue;
		struct stat st;
		struct sockaddr_storage local, peer;
		socklen_t llen = sizeof(local), plen = sizeof(peer);
		int listening = 0;
		socklen_t ilen = sizeof(listening);
		if (fstat((int)fd, &st) || !S_ISSOCK(st.st_mode) ||
		    getsockname((int)fd, (struct sockaddr *)&local, &llen) ||
		    !same_addr(&local, &oe->local, !oe->local_wildcard) ||
		    getsockopt((int)fd, SOL_SOCKET, SO_ACCEPTCONN, &listening, &ilen) || listening ||
		    getpeername((int)fd, (struct sockaddr *)&peer, &plen) || known_peer(oe, &peer))
			continue;
		struct stray *before = last_seen(oe, (int)fd, st.st_ino);
		int64_t since = before ? before->since : now;
		if (now - since >= MSG_HANDSHAKE_MS) {
			struct stat again;
			/* still that socket: fds are reused, inodes are not */
			if (!fstat((int)fd, &again) && again.st_ino == st.st_ino && !shutdown((int)fd, SHUT_RDWR)) {
				DBG("ofi listener: shed a connection with no request for %d ms\n", MSG_HANDSHAKE_MS);
				sock_stat(oe->ep->sock, NNOFI_STAT_HANDSHAKE_TIMEOUTS, 1);
			}
			continue;
		}
		if (n < MAX_STRAYS)
			now_seen[n++] = (struct stray){ .fd = (int)fd, .ino = st.st_ino, .since = since };
	}
	closedir(dir);
	memcpy(oe->strays, now_seen, (size_t)n * sizeof(now_seen[0]));
	oe->nstray = n;
}

static void stray_fire(struct bg_timer *t)
{
	struct ofi_ep *oe = (struct ofi_ep *)((char *)t - offsetof(struct ofi_ep, stray_sweep));
	pthread_mutex_lock(&oe->ep->sock->mtx);
	if (!oe->stopped) {
		sweep(oe);
		bg_timer_arm(&oe->stray_sweep, now_ms() + STRAY_SWEEP_MS);
	}
	pthread_mutex_unlock(&oe->ep->sock->mtx);
}

void stray_watch_start(struct ofi_ep *oe)
{
	size_t len = sizeof(oe->local);
	if (strcmp(oe->info->fabric_attr->prov_name, "tcp") || fi_getname(&oe->pep->fid, &oe->local, &len) ||
	    (oe->local.ss_family != AF_INET && oe->local.ss_family != AF_INET6))
		return; /* not IP: nothing of this kind to look for */
	oe->local_wildcard = wildcard(&oe->local);
	oe->stray_sweep.fire = stray_fire;
	bg_timer_arm(&oe->stray_sweep, now_ms() + STRAY_SWEEP_MS);
}

/* The peer of a connection request: its pipe's, not a stray's. */
void note_peer(struct opipe *op, const struct fi_info *fi)
{
	if (fi->dest_addr && fi->dest_addrlen <= sizeof(op->peer_sa) &&
	    (fi->addr_format == FI_SOCKADDR_IN || fi->addr_format == FI_SOCKADDR_IN6 ||
	     fi->addr_format == FI_SOCKADDR)) {
		memcpy(&op->peer_sa, fi->dest_addr, fi->dest_addrlen);
		op->peer_sa_len = fi->dest_addrlen;
	}
}
