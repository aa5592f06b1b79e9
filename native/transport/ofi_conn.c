/* One ofi connection's life, from set-up to failure: its domain, queues
 * and endpoint (opipe_new), the background thread's watches on its EQ and
 * CQ, the SP header exchange that joins it to its socket, and its timers
 * (RDM polling, heartbeat and handshake timeout; MSG shutdown grace). */
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>

#include "core.h"
#include "framing.h"
#include "mr_cache.h"
#include "ofi_internal.h"

/* RDM: a CQ without wait fd is polled this often by the background
 * thread (a waiting caller polls it itself while it spins); a dialer that
 * hears nothing back within HANDSHAKE_MS tries again. */
#define POLL_MS 1
#define HANDSHAKE_MS 2000
/* RDM has no connection to break when a peer dies: each side pings every
 * HEARTBEAT_MS, and a pipe that hears nothing for PEER_TIMEOUT_MS is
 * broken. */
#define HEARTBEAT_MS 500
#define PEER_TIMEOUT_MS 3000
#define PROBE_TIMEOUT_MS 1500 /* a probed MSG peer answers within a round trip */
/* MSG: how long a peer's last data may trail its FI_SHUTDOWN when no BYE
 * came (it died, or its BYE was lost as it closed) */
#define SHUTDOWN_GRACE_MS 500

static void unattached_remove(struct opipe *op)
{
	struct ofi_ep *oe = op->ep->tdata;
	for (struct opipe **pp = &oe->unattached; *pp; pp = &(*pp)->next_unattached) {
		if (*pp == op) {
			*pp = op->next_unattached;
			break;
		}
	}
	if (oe->pending == op)
		oe->pending = NULL;
}

/* Never joined the socket (set-up, dial or handshake failed): free it. */
void discard_unattached(void *arg)
{
	struct opipe *op = arg;
	release_fids(op);
	opipe_destroy(&op->base);
}

/* The pipe failed (sock locked). */
void opipe_fail(struct opipe *op)
{
	if (op->base.dead)
		return;
	if (op->attached) {
		sock_remove_pipe(op->base.sock, &op->base, true);
		return;
	}
	op->base.dead = true;
	stop_watching(op);
	unattached_remove(op);
	if (op->ep->kind == EP_CONNECT)
		sock_ep_redial_later(op->ep);
	bg_defer(discard_unattached, op);
}

/* The peer's SP header arrived: check it and join the socket. */
bool handshake_done(struct opipe *op)
{
	struct nnofi_sock *s = op->base.sock;
	DBG("ofi %p: handshake done\n", (void *)op);
	int peer = sp_header_decode(op->dec.sp);
	if (peer < 0 || !sock_peer_compatible(s, peer)) {
		DBG("ofi %p: rejected header %02x %02x %02x %02x %02x %02x %02x %02x\n", (void *)op,
		    op->dec.sp[0], op->dec.sp[1], op->dec.sp[2], op->dec.sp[3], op->dec.sp[4], op->dec.sp[5],
		    op->dec.sp[6], op->dec.sp[7]);
		sock_stat(s, NNOFI_STAT_HANDSHAKES_REJECTED, 1);
		opipe_fail(op);
		return false;
	}
	/* data can come before our FI_CONNECTED event is read (sockets
	 * provider): our header must still lead our side of the stream */
	if (!op->sp_sent)
		send_sp_header(op);
	if (op->base.dead)
		return false;
	struct ofi_ep *oe = op->ep->tdata;
	unattached_remove(op);
	bg_timer_cancel(&op->hs_timeout);
	op->base.id = sock_new_pipe_id(s);
	op->base.fd = op->cq_fd;
	op->base.writable = true;
	if (op->cq_watched) {
		bg_watch_del(&op->cq_watch);
		op->cq_watched = false;
	}
	if (oe->stopped || !sock_add_pipe(s, &op->base)) {
		op->base.fd = -1;
		opipe_fail(op);
		return false;
	}
	op->attached = true;
	sock_ref(s); /* the pipe's, released by destroy_pipe */
	if (op->rdm) {
		op->last_heard = now_ms();
		bg_timer_arm(&op->heartbeat, now_ms() + HEARTBEAT_MS);
	} else {
		keepalive_pipe(op);
	}
	watch_backlog(op);
	return true;
}

/* Send our SP header first in the stream. */
void send_sp_header(struct opipe *op)
{
	struct obuf *b = free_tx(op);
	if (!b) {
		opipe_fail(op);
		return;
	}
	sp_header_encode(b->data, op->base.sock->proto->id);
	b->fill = SP_HEADER_SIZE;
	op->sp_sent = true;
	if (tx_post(op, b))
		opipe_fail(op);
}

struct cm_data cm_data_of(const struct opipe *op)
{
	return (struct cm_data){ .magic = "NNOF", .version = 1, .flags = op->rma ? CM_RMA : 0 };
}

/* The peer's private data in a connection event of n bytes. */
bool peer_can_read(const void *ev, ssize_t n)
{
	struct cm_data cm;
	if (n < (ssize_t)(sizeof(struct fi_eq_cm_entry) + sizeof(cm)))
		return false;
	memcpy(&cm, (const uint8_t *)ev + sizeof(struct fi_eq_cm_entry), sizeof(cm));
	return !memcmp(cm.magic, "NNOF", 4) && (cm.flags & CM_RMA);
}

/* Read the connection events there are (sock locked). */
void eq_drain(struct opipe *op)
{
	while (op->eq && !op->base.dead && !op->closing) {
		uint32_t event;
		struct cm_event ev;
		ssize_t n = fi_eq_read(op->eq, &event, &ev, sizeof(ev), 0);
		if (n == -FI_EAGAIN)
			return;
		if (n < 0) {
			struct fi_eq_err_entry err = { 0 };
			fi_eq_readerr(op->eq, &err, 0);
			DBG("ofi %p: eq error %zd %d %s\n", (void *)op, n, err.err, fi_strerror(err.err));
			opipe_fail(op); /* refused, unreachable, reset */
			return;
		}
		DBG("ofi %p: eq event %u\n", (void *)op, event);
		if (event == FI_CONNECTED) {
			op->connected = true;
			if (op->ep->kind == EP_CONNECT) /* the listener's came with FI_CONNREQ */
				op->peer_rma = peer_can_read(&ev, n);
			if (!op->sp_sent)
				send_sp_header(op);
			if (op->header_waits) {
				op->header_waits = false;
				if (handshake_done(op))
					drain_rx(op);
			}
		} else if (event == FI_SHUTDOWN) {
			connection_ended(op);
		}
	}
}

/* The connection is down (FI_SHUTDOWN, or the provider cancelled our
 * receives), but what the peer sent last may not be in the CQ yet
 * (sockets reports the shutdown before its last data): read on until its
 * BYE ends the pipe in order, or for SHUTDOWN_GRACE_MS at most (no BYE:
 * it died, or keepalive found it gone). */
void connection_ended(struct opipe *op)
{
	if (op->shut_seen)
		return;
	op->shut_seen = true;
	bg_timer_arm(&op->shut_grace, now_ms() + SHUTDOWN_GRACE_MS);
	watch_backlog(op);
}

/* The EQ's fd also polls readable while data waits on the connection
 * (tcp provider), so a level-triggered watch would wake this thread for
 * every message. It is one-shot: re-armed at once while connecting, and
 * EQ_REARM_MS later once attached (progress() reads the EQ meanwhile, so
 * an active pipe sees the peer leave at once, an idle one within that). */
#define EQ_REARM_MS 100

static void eq_rearm_fire(struct bg_timer *t)
{
	struct opipe *op = (struct opipe *)((char *)t - offsetof(struct opipe, eq_rearm));
	pthread_mutex_lock(&op->base.sock->mtx);
	if (!op->base.dead && !op->closing)
		bg_watch_mod(&op->eq_watch, EPOLLIN | EPOLLONESHOT);
	pthread_mutex_unlock(&op->base.sock->mtx);
}

/* Connection events of one endpoint (background thread). */
static void eq_event(struct bg_watch *w, uint32_t events)
{
	struct opipe *op = (struct opipe *)((char *)w - offsetof(struct opipe, eq_watch));
	struct nnofi_sock *s = op->base.sock;
	(void)events;
	pthread_mutex_lock(&s->mtx);
	/* An attached pipe's EQ fd wakes us when data waits (tcp); the peer's
	 * BYE or shutdown is seen only by reading the CQ, which nobody else
	 * does while the application is not receiving. Not while reads are
	 * paused: the receive queue is full. */
	if (op->attached && !s->reads_paused) {
		if (progress(op))
			sock_kick_locked(s);
	} else {
		eq_drain(op);
	}
	if (!op->base.dead && !op->closing) {
		struct fid *fids[1] = { &op->eq->fid };
		fi_trywait(op->fab->fabric, fids, 1); /* before the fd is slept on */
		if (op->attached)
			bg_timer_arm(&op->eq_rearm, now_ms() + EQ_REARM_MS);
		else
			bg_watch_mod(&op->eq_watch, EPOLLIN | EPOLLONESHOT);
	}
	pthread_mutex_unlock(&s->mtx);
}

/* An attached pipe without backlog whose application is not receiving
 * (an idle PULL, REP or PAIR) would never see its peer's BYE or hang-up:
 * found on loopback, an idle PULL kept a closed PUSH's connection for
 * good. Its CQ fd is watched one-shot, and re-armed CQ_IDLE_REARM_MS after
 * it fires, so a busy pipe read by the application costs this thread a
 * wake-up per that period at most (sock locked). */
#define CQ_IDLE_REARM_MS 100

void watch_idle(struct opipe *op)
{
	if (op->cq_idle && op->cq_watched)
		return;
	if (op->cq_watched) /* level-triggered, for a backlog now gone */
		bg_watch_del(&op->cq_watch);
	op->cq_watched = false;
	op->cq_idle = true;
	bg_timer_arm(&op->cq_rearm, now_ms() + CQ_IDLE_REARM_MS);
}

/* An idle pipe's look at its CQ; true while it stays idle and alive. Not
 * while reads are paused: the receive queue is full. */
static bool idle_look(struct opipe *op)
{
	struct nnofi_sock *s = op->base.sock;
	if (!op->base.dead && !op->closing && op->cq_idle && !s->reads_paused && progress(op))
		sock_kick_locked(s);
	return !op->base.dead && !op->closing && op->cq_idle;
}

static void cq_rearm_fire(struct bg_timer *t)
{
	struct opipe *op = (struct opipe *)((char *)t - offsetof(struct opipe, cq_rearm));
	struct nnofi_sock *s = op->base.sock;
	pthread_mutex_lock(&s->mtx);
	if (idle_look(op)) {
		struct fid *fids[1] = { &op->cq->fid };
		if (s->reads_paused || fi_trywait(op->fab->fabric, fids, 1) != FI_SUCCESS)
			bg_timer_arm(&op->cq_rearm, now_ms() + CQ_IDLE_REARM_MS);
		else if (op->cq_watched)
			bg_watch_mod(&op->cq_watch, EPOLLIN | EPOLLONESHOT);
		else
			op->cq_watched = bg_watch_add(&op->cq_watch, EPOLLIN | EPOLLONESHOT) == 0;
	}
	pthread_mutex_unlock(&s->mtx);
}

/* Completions before the pipe joins its socket, while sends are
 * backlogged, and one-shot while idle (background thread). */
static void cq_event(struct bg_watch *w, uint32_t events)
{
	struct opipe *op = (struct opipe *)((char *)w - offsetof(struct opipe, cq_watch));
	struct nnofi_sock *s = op->base.sock;
	(void)events;
	pthread_mutex_lock(&s->mtx);
	if (op->cq_idle) {
		if (idle_look(op))
			bg_timer_arm(&op->cq_rearm, now_ms() + CQ_IDLE_REARM_MS);
		pthread_mutex_unlock(&s->mtx);
		return;
	}
	for (int i = 0; i < 16 && !op->base.dead && !op->closing && op->cq_watched; i++) {
		/* a caller asleep on the same fd may have lost the wake-up to us
		 * (a send completing while close lingers, say) */
		if (progress(op))
			sock_kick_locked(s);
		if (!op->base.dead && op->cq_watched && !opipe_busy(&op->base))
			break; /* fi_trywait: the fd will signal what comes next */
	}
	pthread_mutex_unlock(&s->mtx);
}

static void poll_fire(struct bg_timer *t);
static void hs_timeout_fire(struct bg_timer *t);
static void shut_grace_fire(struct bg_timer *t);
static void heartbeat_fire(struct bg_timer *t);

/* A CQ with a wait fd (*fd), or, polled, without (*fd = -1): RDM
 * providers are polled, since shm has no wait fd and rxm's does not
 * signal the progress its connections need underneath. */
int cq_open(struct fid_domain *domain, size_t size, bool polled, struct fid_cq **cq, int *fd)
{
	struct fi_cq_attr cqa = { .size = size, .format = FI_CQ_FORMAT_MSG,
				  .wait_obj = polled ? FI_WAIT_NONE : FI_WAIT_FD };
	*fd = -1;
	int rc = fi_cq_open(domain, &cqa, cq, NULL);
	if (polled)
		return rc;
	if (rc == -FI_ENOSYS || rc == -FI_EINVAL) {
		cqa.wait_obj = FI_WAIT_NONE;
		return fi_cq_open(domain, &cqa, cq, NULL);
	}
	if (!rc && (rc = fi_control(&(*cq)->fid, FI_GETWAIT, fd))) {
		fi_close(&(*cq)->fid);
		*cq = NULL;
	}
	return rc;
}

/* Bytes a send may pass by fi_inject (no completion to reap), 0: none.
 * shm only, whose inject writes into the peer's queue or, when that is
 * full, returns -FI_EAGAIN: the provider keeps no queue of its own.
 * libfabric 1.17's tcp takes injected sends into a queue of its own
 * without bound: a PAIR whose peer refused it sent 2.9 million messages
 * in 3 s into a connection nobody read, and never noticed its end (no
 * send buffer filled, so it never looked at its completions). Its sockets
 * and rxd lose injected messages in a burst (5000 small PUSHes in one
 * process: sockets in 3 runs of 10, rxd in every run, the 7 after the
 * 1023rd). verbs could not be tried here. */
static size_t inject_size_of(const struct fi_info *fi)
{
	const char *prov = fi->fabric_attr ? fi->fabric_attr->prov_name : NULL;
	return prov && fi->tx_attr && strcmp(prov, "shm") == 0 ? fi->tx_attr->inject_size : 0;
}

/* Domain, CQ, endpoint and buffers for one connection, with an EQ (MSG)
 * or an address vector (RDM); receives posted. */
struct opipe *opipe_new(struct endpoint *ep, struct ofi_fabric *fab, struct fi_info *fi)
{
	struct opipe *op = calloc(1, sizeof(*op));
	if (!op)
		return NULL;
	op->base.sock = ep->sock;
	op->base.ops = &opipe_ops;
	op->base.ep = ep;
	op->base.fd = -1;
	op->ep = ep;
	op->fab = fab;
	op->rdm = fi->ep_attr->type == FI_EP_RDM;
	op->eq_fd = op->cq_fd = -1;
	atomic_fetch_add(&fab->refs, 1);
	struct fi_eq_attr eqa = { .size = 16, .wait_obj = FI_WAIT_FD };
	struct fi_av_attr ava = { .type = FI_AV_TABLE, .count = 4 };
	int step = 0, rc;
	if ((rc = (++step, fi_domain(fab->fabric, fi, &op->domain, NULL))) ||
	    (!op->rdm && (rc = (++step, fi_eq_open(fab->fabric, &eqa, &op->eq, NULL)))) ||
	    (!op->rdm && (rc = (++step, fi_control(&op->eq->fid, FI_GETWAIT, &op->eq_fd)))) ||
	    (op->rdm && (rc = (++step, fi_av_open(op->domain, &ava, &op->av, NULL)))) ||
	    (rc = (++step, cq_open(op->domain, 4 * (NRX + NTX), op->rdm, &op->cq, &op->cq_fd))) ||
	    (rc = (++step, fi_endpoint(op->domain, fi, &op->fep, op))) ||
	    (rc = (++step, fi_ep_bind(op->fep, op->rdm ? &op->av->fid : &op->eq->fid, 0))) ||
	    (rc = (++step, fi_ep_bind(op->fep, &op->cq->fid, FI_TRANSMIT | FI_RECV))) ||
	    (rc = (++step, fi_enable(op->fep)))) {
		DBG("ofi: endpoint set-up failed at step %d: %s\n", step, fi_strerror(-rc));
		goto fail;
	}
	/* ofi_rma=0 only stops rendezvous: the caps stay as selected (the
	 * sockets provider refuses a peer whose caps differ from its own) */
	op->rma = (fi->caps & FI_RMA) && ep->sock->ofi_rma;
	op->inject_size = inject_size_of(fi);
	DBG("ofi %p: %s, inject up to %zu bytes\n", (void *)op,
	    fi->fabric_attr && fi->fabric_attr->prov_name ? fi->fabric_attr->prov_name : "provider unnamed", op->inject_size);
	if (!(op->mrc = mr_cache_new(op->domain, fi->domain_attr->mr_mode & FI_MR_VIRT_ADDR,
				     (size_t)ep->sock->mr_cache_max)))
		goto fail;
	for (int i = 0; i < NRX; i++) {
		if (buf_setup(op, &op->rx[i], false) || post_recv(op, &op->rx[i])) {
			DBG("ofi: receive buffer %d failed\n", i);
			goto fail;
		}
	}
	for (int i = 0; i < NTX; i++)
		if (buf_setup(op, &op->tx[i], true))
			goto fail;
	op->eq_watch.fd = op->eq_fd;
	op->eq_watch.on_event = eq_event;
	op->eq_rearm.fire = eq_rearm_fire;
	op->cq_rearm.fire = cq_rearm_fire;
	op->cq_watch.fd = op->cq_fd;
	op->cq_watch.on_event = cq_event;
	op->poll.fire = poll_fire;
	op->hs_timeout.fire = hs_timeout_fire;
	op->shut_grace.fire = shut_grace_fire;
	op->heartbeat.fire = heartbeat_fire;
	return op;
fail:
	discard_unattached(op);
	return NULL;
}

void watch_unattached(struct opipe *op)
{
	struct ofi_ep *oe = op->ep->tdata;
	op->next_unattached = oe->unattached;
	oe->unattached = op;
	if (op->eq)
		bg_watch_add(&op->eq_watch, EPOLLIN | EPOLLONESHOT);
	if (op->cq_fd >= 0) {
		struct fid *fids[1] = { &op->cq->fid };
		fi_trywait(op->fab->fabric, fids, 1); /* the fd signals only after it */
		op->cq_watched = bg_watch_add(&op->cq_watch, EPOLLIN) == 0;
	} else {
		bg_timer_arm(&op->poll, now_ms() + POLL_MS);
	}
	/* RDM has no connection events: the peer may never answer. A MSG
	 * connection accepted or dialed while the network was cut may never
	 * complete either (no FI_CONNECTED, no error): found by make soak, an
	 * accepted endpoint left for ever with its fds. */
	bg_timer_arm(&op->hs_timeout, now_ms() + (op->rdm ? HANDSHAKE_MS : MSG_HANDSHAKE_MS));
}

/* ---- timers ------------------------------------------------------------- */

/* A CQ without fd (shm): the background thread looks every POLL_MS. */
static void poll_fire(struct bg_timer *t)
{
	struct opipe *op = (struct opipe *)((char *)t - offsetof(struct opipe, poll));
	struct nnofi_sock *s = op->base.sock;
	pthread_mutex_lock(&s->mtx);
	if (!op->base.dead && !op->closing) {
		if (progress(op))
			sock_kick_locked(s);
		if (!op->base.dead && !op->closing)
			bg_timer_arm(&op->poll, now_ms() + POLL_MS);
	}
	pthread_mutex_unlock(&s->mtx);
}

static void heartbeat_fire(struct bg_timer *t)
{
	struct opipe *op = (struct opipe *)((char *)t - offsetof(struct opipe, heartbeat));
	struct nnofi_sock *s = op->base.sock;
	pthread_mutex_lock(&s->mtx);
	if (!op->base.dead && !op->closing) {
		int silent_ms = op->rdm ? PEER_TIMEOUT_MS : PROBE_TIMEOUT_MS;
		if (op->heard)
			op->last_heard = now_ms(); /* heard within the last HEARTBEAT_MS */
		op->heard = false;
		if (now_ms() - op->last_heard > silent_ms) {
			DBG("ofi %p: peer silent for %d ms\n", (void *)op, silent_ms);
			opipe_fail(op);
		} else {
			if (queue_ctl(op, CTL_PING, NULL, 0) && tx_pump(op))
				opipe_fail(op);
			if (!op->base.dead)
				bg_timer_arm(&op->heartbeat, now_ms() + HEARTBEAT_MS);
		}
	}
	pthread_mutex_unlock(&s->mtx);
}

/* The peer shut its connection down and sent no BYE: it is gone. */
static void shut_grace_fire(struct bg_timer *t)
{
	struct opipe *op = (struct opipe *)((char *)t - offsetof(struct opipe, shut_grace));
	struct nnofi_sock *s = op->base.sock;
	pthread_mutex_lock(&s->mtx);
	if (!op->base.dead && !op->closing)
		progress(op); /* what did arrive is delivered first */
	if (!op->base.dead && !op->closing) {
		DBG("ofi %p: shutdown without bye\n", (void *)op);
		opipe_fail(op);
		sock_kick_locked(s);
	}
	pthread_mutex_unlock(&s->mtx);
}

static void hs_timeout_fire(struct bg_timer *t)
{
	struct opipe *op = (struct opipe *)((char *)t - offsetof(struct opipe, hs_timeout));
	struct nnofi_sock *s = op->base.sock;
	pthread_mutex_lock(&s->mtx);
	if (!op->base.dead && !op->closing && !op->attached) {
		DBG("ofi %p: no handshake within %d ms\n", (void *)op, op->rdm ? HANDSHAKE_MS : MSG_HANDSHAKE_MS);
		sock_stat(s, NNOFI_STAT_HANDSHAKE_TIMEOUTS, 1);
		opipe_fail(op);
	}
	pthread_mutex_unlock(&s->mtx);
}

