/* RDM connections and their listener. Reliable-datagram providers (shm,
 * tcp;ofi_rxm, udp;ofi_rxd) have no connections, so nnofi makes its own,
 * like accept(): the dialer's new endpoint sends HELLO (its address) to
 * the listener's endpoint; the listener opens an endpoint for this pipe
 * alone and answers from it with WELCOME (that endpoint's address), then
 * both speak the SP stream between the two pipe endpoints. A hello is
 * "NNOR", version 1, kind, flags (CM_RMA), name length, the sender's
 * endpoint name. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* gcc 12 at -O2/-O3 flags libfabric's inline fi_mr_reg() (a call through
 * the provider's ops table) as reading an uninitialized value: a false
 * positive inside the system header, not in this file's code. */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_domain.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>

#include "core.h"
#include "ofi_internal.h"
#include "shm_local.h"

#define HELLO_HEAD 8

static size_t hello_encode(uint8_t *out, int kind, bool rma, const void *name, size_t len)
{
	memcpy(out, "NNOR", 4);
	out[4] = 1;
	out[5] = (uint8_t)kind;
	out[6] = rma ? CM_RMA : 0;
	out[7] = (uint8_t)len;
	memcpy(out + HELLO_HEAD, name, len);
	return HELLO_HEAD + len;
}

/* The sender's name in a hello of `kind`, copied NUL-terminated into
 * name (string addresses need it); false if it is no such hello. */
static bool hello_decode(const uint8_t *in, size_t n, int kind, bool *rma, uint8_t name[HELLO_MAX])
{
	if (n < HELLO_HEAD || memcmp(in, "NNOR", 4) || in[4] != 1 || in[5] != kind || !in[7] ||
	    HELLO_HEAD + (size_t)in[7] > n) /* a name has at most 255 bytes: it fits */
		return false;
	*rma = in[6] & CM_RMA;
	memcpy(name, in + HELLO_HEAD, in[7]);
	name[in[7]] = '\0';
	return true;
}

/* Send a hello of `kind` with this pipe endpoint's name to op->peer. */
bool send_hello(struct opipe *op, int kind)
{
	uint8_t name[HELLO_MAX - HELLO_HEAD];
	size_t len = sizeof(name);
	struct obuf *b = free_tx(op);
	if (!b || fi_getname(&op->fep->fid, name, &len) || len == 0 || len > 255)
		return false;
	b->fill = hello_encode(b->data, kind, op->rma, name, len);
	return tx_post(op, b) == 0;
}

bool insert_peer(struct opipe *op, const void *name)
{
	return fi_av_insert(op->av, name, 1, &op->peer, 0, NULL) == 1;
}

/* Dialer: the listener's new endpoint for us answered; it is the peer now. */
bool rdm_welcome(struct opipe *op, const uint8_t *msg, size_t len)
{
	uint8_t name[HELLO_MAX];
	bool rma;
	if (!hello_decode(msg, len, WELCOME, &rma, name)) {
		sock_stat(op->base.sock, NNOFI_STAT_HANDSHAKES_REJECTED, 1);
		return false;
	}
	if (!insert_peer(op, name))
		return false;
	DBG("ofi %p: welcomed\n", (void *)op);
	op->welcomed = op->connected = true;
	op->peer_rma = rma;
	if (!op->sp_sent)
		send_sp_header(op);
	return !op->base.dead;
}

/* Listener: a HELLO; give the dialer an endpoint of its own. */
static void rdm_accept(struct ofi_ep *oe, const uint8_t *msg, size_t len)
{
	uint8_t name[HELLO_MAX];
	bool rma;
	if (!hello_decode(msg, len, HELLO, &rma, name) || (oe->named && shm_local((char *)name))) {
		DBG("ofi listener: hello refused (malformed, or shm from this process)\n");
		sock_stat(oe->ep->sock, NNOFI_STAT_HANDSHAKES_REJECTED, 1);
		return;
	}
	/* the pipe's endpoint: the listener's address with any port (or,
	 * named, a name the provider makes up) */
	struct fi_info *fi = fi_dupinfo(oe->info);
	if (!fi)
		return;
	if (oe->named || !fi->src_addr) {
		/* shm makes "fi_shm://PID" unique per endpoint itself */
	} else if (((struct sockaddr *)fi->src_addr)->sa_family == AF_INET6) {
		((struct sockaddr_in6 *)fi->src_addr)->sin6_port = 0;
	} else {
		((struct sockaddr_in *)fi->src_addr)->sin_port = 0;
	}
	struct opipe *op = opipe_new(oe->ep, oe->fab, fi);
	fi_freeinfo(fi);
	if (!op)
		return;
	op->welcomed = op->connected = true;
	op->peer_rma = rma;
	if (!insert_peer(op, name) || !send_hello(op, WELCOME)) {
		discard_unattached(op);
		return;
	}
	DBG("ofi %p: accepted %s\n", (void *)op, oe->named ? (char *)name : "");
	send_sp_header(op);
	watch_unattached(op);
}

/* The listener's hellos (sock locked); true if there were any. */
bool rdm_listener_poll(struct ofi_ep *oe)
{
	struct fi_cq_msg_entry ents[NHELLO];
	bool any = false;
	while (!oe->stopped) {
		ssize_t n = fi_cq_read(oe->cq, ents, NHELLO);
		if (n == -FI_EAGAIN)
			break;
		any = true;
		if (n < 0) {
			struct fi_cq_err_entry err = { 0 };
			fi_cq_readerr(oe->cq, &err, 0);
			DBG("ofi listener: completion error %d\n", err.err);
			continue;
		}
		for (ssize_t i = 0; i < n; i++) {
			struct lbuf *lb = (struct lbuf *)ents[i].op_context;
			if (!(ents[i].flags & FI_RECV))
				continue;
			rdm_accept(oe, lb->data, ents[i].len);
			fi_recv(oe->lep, lb->data, HELLO_MAX, fi_mr_desc(lb->mr), FI_ADDR_UNSPEC, &lb->c.ctx);
		}
	}
	return any;
}

void rdm_listener_close(struct ofi_ep *oe)
{
	if (oe->lep)
		fi_close(&oe->lep->fid);
	for (int i = 0; i < NHELLO; i++)
		if (oe->hello[i].mr)
			fi_close(&oe->hello[i].mr->fid);
	if (oe->cq)
		fi_close(&oe->cq->fid);
	if (oe->av)
		fi_close(&oe->av->fid);
	if (oe->domain)
		fi_close(&oe->domain->fid);
	oe->lep = NULL;
	oe->cq = NULL;
	oe->av = NULL;
	oe->domain = NULL;
	memset(oe->hello, 0, sizeof(oe->hello));
}

/* The listener's endpoint with hello buffers posted; a named one takes
 * oe->name, in use elsewhere: EADDRINUSE. */
static int rdm_listener_open(struct ofi_ep *oe)
{
	struct fi_av_attr ava = { .type = FI_AV_TABLE, .count = 4 };
	int frc;
	if ((frc = fi_domain(oe->fab->fabric, oe->info, &oe->domain, NULL)) ||
	    (frc = fi_av_open(oe->domain, &ava, &oe->av, NULL)) ||
	    (frc = cq_open(oe->domain, 4 * NHELLO, true, &oe->cq, &(int){ -1 })) ||
	    (frc = fi_endpoint(oe->domain, oe->info, &oe->lep, NULL)) ||
	    (frc = fi_ep_bind(oe->lep, &oe->av->fid, 0)) ||
	    (frc = fi_ep_bind(oe->lep, &oe->cq->fid, FI_TRANSMIT | FI_RECV)) ||
	    (oe->named && (frc = fi_setname(&oe->lep->fid, oe->name, strlen(oe->name) + 1))) ||
	    (frc = fi_enable(oe->lep))) {
		DBG("ofi rdm listen: %s\n", fi_strerror(-frc));
		rdm_listener_close(oe);
		return frc == -FI_EADDRINUSE || frc == -FI_EBUSY ? EADDRINUSE : EIO;
	}
	if (oe->named)
		shm_local_listener(oe->name);
	for (int i = 0; i < NHELLO; i++) {
		struct lbuf *lb = &oe->hello[i];
		lb->c.kind = CTX_RX;
		if (fi_mr_reg(oe->domain, lb->data, HELLO_MAX, FI_RECV, 0, next_mr_key(), 0, &lb->mr, NULL) ||
		    fi_recv(oe->lep, lb->data, HELLO_MAX, fi_mr_desc(lb->mr), FI_ADDR_UNSPEC, &lb->c.ctx)) {
			rdm_listener_close(oe);
			return EIO;
		}
	}
	return 0;
}

/* shm-style providers: the address IP:PORT names the listener's endpoint */
void make_name(struct ofi_ep *oe, const char *port)
{
	snprintf(oe->name, sizeof(oe->name), "fi_shm://nnofi_%s_%s", oe->addr.ip, port);
}

int rdm_bind(struct endpoint *ep, struct ofi_ep *oe)
{
	char port[8];
	int rc = EADDRINUSE;
	if (oe->named) {
		/* port 0: a free one, found by trying */
		bool any_port = !strcmp(oe->addr.port, "0");
		unsigned seed = (unsigned)getpid() * 2654435761u + (unsigned)now_ms();
		for (int tries = 0; rc == EADDRINUSE && tries < (any_port ? 64 : 1); tries++) {
			snprintf(port, sizeof(port), "%s", oe->addr.port);
			if (any_port)
				snprintf(port, sizeof(port), "%u", 20000u + (seed + 7919u * (unsigned)tries) % 40000u);
			make_name(oe, port);
			rc = rdm_listener_open(oe);
		}
	} else if (!(rc = rdm_listener_open(oe))) {
		bound_port(&oe->lep->fid, port);
	}
	if (rc)
		return rc;
	describe(ep, oe, port);
	oe->rearm.fire = listener_rearm_fire; /* polls the hellos: RDM CQs have no fd */
	bg_timer_arm(&oe->rearm, now_ms() + LISTENER_REARM_MS);
	return 0;
}

