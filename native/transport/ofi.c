/* ofi://IP:PORT[@FABRIC[:PROVIDER]]: SP over libfabric, on connected
 * endpoints (FI_EP_MSG: tcp, sockets, verbs) or reliable datagrams
 * (FI_EP_RDM: shm, tcp;ofi_rxm, udp;ofi_rxd) with a handshake of nnofi's
 * own that gives every pipe an endpoint of its own (see "RDM connections").
 *
 * Each direction carries the SP byte stream of tcp:// (8-byte SP header,
 * then frames of a 64-bit length and payload) cut into messages of at most
 * CHUNK bytes, sent from and received into registered buffers; small
 * messages queued together share one fi_send. Connection events (EQ) go
 * to the background thread; completions (CQ, FI_WAIT_FD) are polled by
 * whichever caller waits on the socket, like the fd of a tcp pipe, with
 * fi_trywait before it sleeps (MSG).
 *
 * Large messages go by rendezvous where both sides have FI_RMA (they say
 * so in the connection's private data): the sender puts a descriptor in
 * the stream instead of the body (length, address and key of its
 * registered buffer), the receiver fi_reads the body straight into the
 * message it delivers and acknowledges, and the sender drops its
 * reference. No copy on either side; registrations come from a cache
 * (mr_cache.c). The stream after a descriptor waits for its ack: messages
 * stay in order, and the receive buffers stay posted (a provider that
 * finds none for an incoming message may hold up the read's data behind
 * it on the same connection, as tcp does). Without FI_RMA, or below
 * rendezvous_min, bytes are copied through the buffers.
 *
 * RDM CQs are polled rather than slept on (shm has no wait fd; rxm's
 * misses the progress its connections need): by a waiting caller while it
 * spins, and by the background thread every POLL_MS. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
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
#include <sched.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>
#include <rdma/fi_rma.h>

#include "core.h"
#include "framing.h"
#include "mr_cache.h"
#include "shm_local.h"

#define OFI_VERSION FI_VERSION(1, 9)
#define DBG(...) do { if (getenv("NNOFI_DEBUG")) fprintf(stderr, __VA_ARGS__); } while (0)
#define CHUNK (64 * 1024)
#define NRX 8
#define NTX 8

/* Control frames in the stream: a frame header whose top byte is one of
 * these (real lengths stay below 2^46), then the control body. */
#define CTL_RDV 0x80 /* u64 total, u64 remote addr, u64 key, u64 id, SP header words */
#define CTL_ACK 0x81 /* u64 id: the peer has read rendezvous `id` */
#define CTL_BYE 0x82 /* empty: the peer closes, nothing follows (RDM has no FI_SHUTDOWN; sockets reports one before the last data) */
#define CTL_PING 0x83 /* empty: RDM heartbeat */
#define RDV_DESC 32
#define CTL_MAX (8 + RDV_DESC + NNOFI_MAX_HDR)
#define RDV_PIECE (4u << 20) /* bytes per fi_read */
#define RDV_READS 4          /* reads in flight per pipe */

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
/* MSG: how long a peer's last data may trail its FI_SHUTDOWN when no BYE
 * came (it died, or its BYE was lost as it closed) */
#define SHUTDOWN_GRACE_MS 500
#define NHELLO 4
#define HELLO_MAX 256

/* Connection private data: which side can read the other's memory. */
struct cm_data {
	char magic[4]; /* "NNOF" */
	uint8_t version, flags;
	uint8_t pad[2];
};
#define CM_RMA 1

/* ---- addresses and provider selection ------------------------------- */

struct ofi_addr {
	char ip[64];
	char port[8];
	char fabric[128];   /* "" = any */
	char provider[64];  /* "" = best for the address */
};

/* ofi://IP:PORT[@FABRIC[:PROVIDER]]; a single name after @ may be either
 * (resolved against fi_getinfo by the caller). */
static int ofi_addr_parse(const char *rest, struct ofi_addr *a)
{
	memset(a, 0, sizeof(*a));
	char buf[NNOFI_URL_MAX];
	snprintf(buf, sizeof(buf), "%s", rest);
	char *at = strchr(buf, '@');
	if (at) {
		*at++ = '\0';
		char *colon = strchr(at, ':');
		if (colon) {
			*colon++ = '\0';
			snprintf(a->provider, sizeof(a->provider), "%.63s", colon);
		}
		snprintf(a->fabric, sizeof(a->fabric), "%.127s", at);
		if (!a->fabric[0] && !a->provider[0])
			return EINVAL;
	}
	char *hp = buf, *port;
	if (hp[0] == '[') {
		char *close = strchr(hp, ']');
		if (!close || close[1] != ':')
			return EINVAL;
		*close = '\0';
		hp++;
		port = close + 2;
	} else {
		port = strrchr(hp, ':');
		if (!port)
			return EINVAL;
		*port++ = '\0';
	}
	if (!hp[0] || !port[0] || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port) ||
	    atoi(port) > 65535)
		return EINVAL;
	snprintf(a->ip, sizeof(a->ip), "%.63s", hp);
	snprintf(a->port, sizeof(a->port), "%s", port);
	return 0;
}

/* Providers in order of preference when the URL names none. */
static const char *const preferred[] = { "verbs", "tcp", "sockets" };

/* What a selection tries: endpoint type, FI_RMA or not, and for RDM
 * whether the provider is addressed by IP:port or by name (shm). */
struct choice {
	enum fi_ep_type type;
	bool rma, named;
};

static struct fi_info *ofi_hints(const struct ofi_addr *a, const char *prov, struct choice c)
{
	struct fi_info *h = fi_allocinfo();
	if (!h)
		return NULL;
	h->ep_attr->type = c.type;
	bool rma = c.rma;
	if (c.type == FI_EP_RDM) /* the SP stream is cut into messages: keep them in order */
		h->tx_attr->msg_order = h->rx_attr->msg_order = FI_ORDER_SAS;
	h->caps = FI_MSG | (rma ? FI_RMA | FI_READ | FI_REMOTE_READ : 0);
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	h->domain_attr->threading = FI_THREAD_SAFE;
	h->addr_format = c.named ? FI_ADDR_STR : strchr(a->ip, ':') ? FI_SOCKADDR_IN6 : FI_SOCKADDR_IN;
	if (prov && prov[0])
		h->fabric_attr->prov_name = strdup(prov);
	return h;
}

static bool fabric_matches(const struct fi_info *fi, const struct ofi_addr *a)
{
	if (!a->fabric[0])
		return true;
	return !strcmp(fi->fabric_attr->name, a->fabric) || !strcmp(fi->domain_attr->name, a->fabric);
}

/* fi_getinfo for this address: the named provider/fabric, or the best one.
 * A single name after @ is tried as a fabric/domain, then as a provider. */
/* Connected endpoints first (MSG), then reliable datagrams (RDM: shm,
 * rxm, rxd); each with FI_RMA if the provider has it. */
static const struct choice choices[] = {
	{ FI_EP_MSG, true, false }, { FI_EP_MSG, false, false },
	{ FI_EP_RDM, true, false }, { FI_EP_RDM, false, false },
	{ FI_EP_RDM, true, true },  { FI_EP_RDM, false, true },
};
#define NCHOICES (sizeof(choices) / sizeof(*choices))

static int ofi_select(const struct ofi_addr *a, bool passive, struct fi_info **out, bool *named)
{
	const char *provs[4] = { 0 };
	int n = 0;
	struct ofi_addr alt = *a;
	if (a->provider[0]) {
		provs[n++] = a->provider;
	} else {
		for (size_t i = 0; i < sizeof(preferred) / sizeof(*preferred); i++)
			provs[n++] = preferred[i];
	}
	for (int pass = 0; pass < 2; pass++) {
		for (size_t k = 0; k < (size_t)n * NCHOICES; k++) {
			int i = (int)(k / NCHOICES);
			struct choice c = choices[k % NCHOICES];
			struct fi_info *hints = ofi_hints(&alt, provs[i], c), *list = NULL;
			if (!hints)
				return ENOMEM;
			/* named providers take no IP:port: the name is made from it */
			int rc = c.named ? fi_getinfo(OFI_VERSION, NULL, NULL, 0, hints, &list)
					 : fi_getinfo(OFI_VERSION, a->ip, a->port, passive ? FI_SOURCE : 0, hints, &list);
			fi_freeinfo(hints);
			if (rc)
				continue;
			for (struct fi_info *fi = list; fi; fi = fi->next) {
				if (fabric_matches(fi, &alt)) {
					*named = c.named;
					*out = fi_dupinfo(fi);
					fi_freeinfo(list);
					return *out ? 0 : ENOMEM;
				}
			}
			fi_freeinfo(list);
		}
		/* "@NAME" alone: not a fabric here; try it as a provider */
		if (pass == 0 && a->fabric[0] && !a->provider[0]) {
			snprintf(alt.provider, sizeof(alt.provider), "%.63s", a->fabric);
			alt.fabric[0] = '\0';
			provs[0] = alt.provider;
			n = 1;
		} else {
			break;
		}
	}
	return ENODEV;
}

/* ---- shared fabric -------------------------------------------------- */

struct ofi_fabric {
	atomic_int refs;
	struct fid_fabric *fabric;
};

static struct ofi_fabric *fabric_open(struct fi_info *fi)
{
	struct ofi_fabric *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	if (fi_fabric(fi->fabric_attr, &f->fabric, NULL)) {
		free(f);
		return NULL;
	}
	atomic_init(&f->refs, 1);
	return f;
}

static void fabric_unref(struct ofi_fabric *f)
{
	if (atomic_fetch_sub(&f->refs, 1) == 1) {
		fi_close(&f->fabric->fid);
		free(f);
	}
}

/* ---- pipes ------------------------------------------------------------- */

/* What a completion's op_context points at: each starts with this. */
enum octx_kind { CTX_RX, CTX_TX, CTX_READ };
struct octx {
	struct fi_context2 ctx; /* first: completions hand us this pointer */
	enum octx_kind kind;
};

struct obuf {
	struct octx c;
	struct opipe *owner;
	bool busy;
	bool unposted; /* tx: filled, but the provider said FI_EAGAIN */
	size_t fill;   /* tx: bytes in it */
	uint8_t *data;
	struct fid_mr *mr;
	void *desc;
};

/* Receiving side of the SP stream: SP header, then frames. */
struct decoder {
	uint8_t sp[SP_HEADER_SIZE];
	size_t spgot;
	bool sp_done;
	uint8_t fh[8];
	size_t fhgot;
	nnofi_msg *m;
	size_t got, cap; /* bytes of m's body in, and allocated */
	/* a control frame (rendezvous descriptor or ack) being collected */
	uint8_t ctl_kind;
	uint8_t ctl[CTL_MAX];
	size_t ctl_need, ctl_got;
};

/* Sender: a message the peer may read, until its ack. */
struct rdv_out {
	struct rdv_out *next;
	uint64_t id;
	nnofi_msg *m;
	struct mr_entry *mr;
};

/* Receiver: the rendezvous being read (one at a time: the stream waits). */
struct rdv_in {
	bool active;
	nnofi_msg *m;
	struct mr_entry *mr;
	uint64_t id, raddr, key;
	size_t hdr_len, body_len, issued, done;
	int inflight;
	struct octx reads[RDV_READS];
	size_t read_len[RDV_READS]; /* 0: slot free */
};

struct opipe {
	struct pipe base;
	struct endpoint *ep;
	struct ofi_fabric *fab;
	struct fid_domain *domain;
	struct fid_eq *eq;
	struct fid_ep *fep;
	struct fid_cq *cq;
	int eq_fd, cq_fd;
	struct bg_watch eq_watch, cq_watch;
	struct bg_timer eq_rearm;
	/* RDM (shm, rxm): the pipe's own endpoint talks to one peer address;
	 * no EQ. A CQ without a wait fd (shm) is polled by a timer. */
	bool rdm, welcomed, peer_gone, shut_seen;
	struct fid_av *av;
	fi_addr_t peer;
	struct bg_timer poll, hs_timeout, heartbeat, shut_grace;
	int64_t last_heard;
	bool connected, attached, closing, cq_watched;
	bool header_waits; /* the peer's SP header came before FI_CONNECTED */
	struct obuf rx[NRX], tx[NTX];
	struct decoder dec;
	/* posted receive buffers in the order they were posted, which is the
	 * order messages fill them; completions may come in another order
	 * (rxm finishes a big message after a small one behind it), so the
	 * stream is fed from the head, once it is done */
	int rx_order[NRX], rx_order_n;
	bool rx_done[NRX];
	size_t rx_len[NRX], rx_off[NRX];
	/* send side: the frame being cut into buffers, then queued ones */
	nnofi_msg *cur;
	uint8_t cur_fh[CTL_MAX];
	size_t cur_fh_len, cur_off;
	struct rdv_out *cur_rdv; /* cur goes by rendezvous: only cur_fh is sent */
	struct msgq txq;
	/* control frames waiting for the next frame boundary */
	uint8_t *ctl;
	size_t ctl_len, ctl_cap;
	/* rendezvous */
	bool rma, peer_rma;
	struct mr_cache *mrc;
	struct rdv_out *outs;
	uint64_t rdv_seq;
	struct rdv_in rd;
	bool sp_sent;
	struct opipe *next_unattached;
};

static void opipe_fail(struct opipe *op);

/* Keys must be unique where the provider doesn't pick them. */
static uint64_t next_mr_key(void)
{
	static atomic_uint_fast64_t keys;
	return atomic_fetch_add(&keys, 1) + 1;
}

static int buf_setup(struct opipe *op, struct obuf *b, bool is_tx)
{
	b->owner = op;
	b->c.kind = is_tx ? CTX_TX : CTX_RX;
	b->data = malloc(CHUNK);
	if (!b->data)
		return ENOMEM;
	int rc = fi_mr_reg(op->domain, b->data, CHUNK, is_tx ? FI_SEND : FI_RECV, 0, next_mr_key(), 0, &b->mr, NULL);
	if (rc) {
		DBG("ofi: fi_mr_reg: %s\n", fi_strerror(-rc));
		return EIO;
	}
	b->desc = fi_mr_desc(b->mr);
	return 0;
}

static int post_recv(struct opipe *op, struct obuf *b)
{
	if (fi_recv(op->fep, b->data, CHUNK, b->desc, op->rdm ? FI_ADDR_UNSPEC : 0, &b->c.ctx))
		return EIO;
	op->rx_order[op->rx_order_n++] = (int)(b - op->rx);
	return 0;
}

static struct obuf *free_tx(struct opipe *op)
{
	for (int i = 0; i < NTX; i++)
		if (!op->tx[i].busy)
			return &op->tx[i];
	return NULL;
}

/* Post a filled tx buffer; one the provider refuses for now stays filled
 * and goes first on the next try (the stream must stay in order). */
static int tx_post(struct opipe *op, struct obuf *b)
{
	b->busy = true;
	ssize_t rc = fi_send(op->fep, b->data, b->fill, b->desc, op->rdm ? op->peer : 0, &b->c.ctx);
	b->unposted = rc == -FI_EAGAIN;
	if (rc && !b->unposted)
		DBG("ofi %p: fi_send failed: %s\n", (void *)op, fi_strerror((int)-rc));
	return rc && !b->unposted ? EIO : 0;
}

/* Retry a buffer the provider refused; true if it is still waiting. */
static bool tx_retry(struct opipe *op, int *err)
{
	*err = 0;
	for (int i = 0; i < NTX; i++) {
		if (op->tx[i].unposted) {
			*err = tx_post(op, &op->tx[i]);
			return op->tx[i].unposted;
		}
	}
	return false;
}

static void put_u64be(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get_u64be(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static bool goes_by_rendezvous(struct opipe *op, const nnofi_msg *m)
{
	int64_t min = op->base.sock->rendezvous_min;
	return op->rma && op->peer_rma && min >= 0 && m->len > 0 && m->hdr_len + m->len >= (uint64_t)min;
}

/* Expose cur's body to the peer: cur_fh becomes its descriptor. False
 * (send the bytes instead) if the memory can't be registered. */
static bool expose(struct opipe *op)
{
	nnofi_msg *m = op->cur;
	struct nnofi_sock *s = op->base.sock;
	struct rdv_out *r = calloc(1, sizeof(*r));
	struct mr_get_result res;
	if (!r || !(r->mr = mr_cache_get(op->mrc, m->chunk, m->body, m->len, &res))) {
		free(r);
		return false;
	}
	sock_stat(s, res.hit ? NNOFI_STAT_MR_HITS : NNOFI_STAT_MR_MISSES, 1);
	sock_stat(s, NNOFI_STAT_MR_EVICTIONS, (uint64_t)res.evicted);
	sock_stat(s, NNOFI_STAT_MR_BYTES_REGISTERED, res.registered);
	r->m = m;
	r->id = ++op->rdv_seq;
	uint8_t *p = op->cur_fh;
	put_u64be(p, (uint64_t)CTL_RDV << 56 | (RDV_DESC + m->hdr_len));
	put_u64be(p + 8, m->hdr_len + m->len);
	put_u64be(p + 16, mr_entry_remote_addr(r->mr, m->body));
	put_u64be(p + 24, mr_entry_key(r->mr));
	put_u64be(p + 32, r->id);
	memcpy(p + 40, m->hdr, m->hdr_len);
	op->cur_fh_len = 40 + m->hdr_len;
	op->cur_rdv = r;
	return true;
}

/* The next queued message becomes the frame being cut into buffers. */
static void tx_next_frame(struct opipe *op)
{
	op->cur = msgq_pop(&op->txq);
	op->cur_off = 0;
	op->cur_rdv = NULL;
	if (op->cur && !(goes_by_rendezvous(op, op->cur) && expose(op)))
		op->cur_fh_len = frame_prefix_encode(op->cur_fh, false, op->cur->hdr, op->cur->hdr_len,
						     op->cur->len);
}

/* Bytes of cur on the wire: the descriptor alone for a rendezvous. */
static size_t cur_total(const struct opipe *op)
{
	return op->cur_fh_len + (op->cur_rdv ? 0 : op->cur->len);
}

/* cur is all in buffers: a rendezvous waits for the peer's ack. */
static void frame_done(struct opipe *op)
{
	if (op->cur_rdv) {
		op->cur_rdv->next = op->outs;
		op->outs = op->cur_rdv;
		sock_stat(op->base.sock, NNOFI_STAT_RENDEZVOUS_SENT, 1);
	} else {
		msg_free(op->cur);
	}
	op->cur = NULL;
	op->cur_rdv = NULL;
}

/* Copy what fits of the frame in progress into b. */
static void fill_from_cur(struct opipe *op, struct obuf *b)
{
	size_t total = cur_total(op);
	while (op->cur_off < total && b->fill < CHUNK) {
		const uint8_t *src;
		size_t avail;
		if (op->cur_off < op->cur_fh_len) {
			src = op->cur_fh + op->cur_off;
			avail = op->cur_fh_len - op->cur_off;
		} else {
			src = op->cur->body + (op->cur_off - op->cur_fh_len);
			avail = total - op->cur_off;
		}
		size_t n = avail < CHUNK - b->fill ? avail : CHUNK - b->fill;
		memcpy(b->data + b->fill, src, n);
		b->fill += n;
		op->cur_off += n;
	}
}

static size_t wire_size(struct opipe *op, const nnofi_msg *m)
{
	return goes_by_rendezvous(op, m) ? 40 + m->hdr_len : frame_header_size(false) + m->hdr_len + m->len;
}

/* Cut the SP stream into free tx buffers and post them; small messages
 * and control frames queued together share a buffer. */
static int tx_pump(struct opipe *op)
{
	int err;
	if (tx_retry(op, &err) || err)
		return err;
	for (;;) {
		bool next_frame = op->txq.head && !op->outs; /* after a descriptor: its ack */
		if (!op->cur && !op->ctl_len && !next_frame)
			return 0;
		struct obuf *b = free_tx(op);
		if (!b)
			return 0;
		b->fill = 0;
		for (;;) {
			if (!op->cur && op->ctl_len) { /* between frames */
				size_t n = op->ctl_len < CHUNK - b->fill ? op->ctl_len : CHUNK - b->fill;
				memcpy(b->data + b->fill, op->ctl, n);
				memmove(op->ctl, op->ctl + n, op->ctl_len - n);
				b->fill += n;
				op->ctl_len -= n;
				if (op->ctl_len)
					break; /* b is full */
			}
			if (!op->cur) {
				nnofi_msg *next = op->outs ? NULL : op->txq.head;
				if (!next || (b->fill && wire_size(op, next) > CHUNK - b->fill))
					break;
				tx_next_frame(op);
			}
			fill_from_cur(op, b);
			if (op->cur_off < cur_total(op))
				break; /* b is full */
			frame_done(op);
		}
		if ((err = tx_post(op, b)) || b->unposted)
			return err; /* provider busy: retried on progress */
	}
}

/* Queue a control frame for the next frame boundary. */
static bool queue_ctl(struct opipe *op, uint8_t kind, const uint8_t *body, size_t len)
{
	if (op->ctl_len + 8 + len > op->ctl_cap) {
		size_t cap = op->ctl_cap ? 2 * op->ctl_cap : 256;
		uint8_t *p = realloc(op->ctl, cap);
		if (!p)
			return false;
		op->ctl = p;
		op->ctl_cap = cap;
	}
	put_u64be(op->ctl + op->ctl_len, (uint64_t)kind << 56 | len);
	if (len)
		memcpy(op->ctl + op->ctl_len + 8, body, len);
	op->ctl_len += 8 + len;
	return true;
}

static void update_writable(struct opipe *op)
{
	bool room = op->txq.bytes < (size_t)op->base.sock->send_buffer;
	if (!op->base.writable && room && op->attached)
		sock_pipe_writable(op->base.sock, &op->base);
	else
		op->base.writable = room;
}

/* ---- receiving ------------------------------------------------------- */

static bool handshake_done(struct opipe *op);
static void send_sp_header(struct opipe *op);

static void rdv_start(struct opipe *op);
static void eq_drain(struct opipe *op);

/* A control frame is complete. False if the pipe died. */
static bool control_frame(struct opipe *op, size_t ctl_len)
{
	struct decoder *d = &op->dec;
	struct nnofi_sock *s = op->base.sock;
	if (d->ctl_kind == CTL_ACK) {
		uint64_t id = get_u64be(d->ctl);
		for (struct rdv_out **pp = &op->outs; *pp; pp = &(*pp)->next) {
			struct rdv_out *r = *pp;
			if (r->id == id) {
				*pp = r->next;
				mr_cache_put(op->mrc, r->mr);
				msg_free(r->m);
				free(r);
				return true;
			}
		}
		sock_stat(s, NNOFI_STAT_FRAMES_MALFORMED, 1); /* ack of nothing we sent */
		opipe_fail(op);
		return false;
	}
	/* a descriptor: only sent to a peer that said it can read */
	struct rdv_in *rd = &op->rd;
	uint64_t total = get_u64be(d->ctl);
	rd->hdr_len = ctl_len - RDV_DESC;
	if (!op->rma || total <= rd->hdr_len || total > (1ULL << 46)) {
		sock_stat(s, NNOFI_STAT_FRAMES_MALFORMED, 1);
		opipe_fail(op);
		return false;
	}
	if ((s->recv_max_size >= 0 && total > (uint64_t)s->recv_max_size) ||
	    !(rd->m = msg_try_alloc((size_t)total))) {
		sock_stat(s, NNOFI_STAT_FRAMES_OVERSIZE, 1);
		opipe_fail(op);
		return false;
	}
	rd->raddr = get_u64be(d->ctl + 8);
	rd->key = get_u64be(d->ctl + 16);
	rd->id = get_u64be(d->ctl + 24);
	memcpy(rd->m->body, d->ctl + RDV_DESC, rd->hdr_len);
	rd->body_len = (size_t)total - rd->hdr_len;
	rd->issued = rd->done = 0;
	struct mr_get_result res;
	rd->mr = mr_cache_get(op->mrc, rd->m->chunk, rd->m->body + rd->hdr_len, rd->body_len, &res);
	if (!rd->mr) {
		msg_free(rd->m);
		rd->m = NULL;
		opipe_fail(op);
		return false;
	}
	sock_stat(s, res.hit ? NNOFI_STAT_MR_HITS : NNOFI_STAT_MR_MISSES, 1);
	sock_stat(s, NNOFI_STAT_MR_EVICTIONS, (uint64_t)res.evicted);
	sock_stat(s, NNOFI_STAT_MR_BYTES_REGISTERED, res.registered);
	rd->active = true;
	rdv_start(op);
	return !op->base.dead;
}

/* Feed received stream bytes; returns how many were taken. It stops
 * early when the pipe dies or a rendezvous read begins (the bytes after
 * it wait for the read). */
static size_t feed(struct opipe *op, const uint8_t *data, size_t len)
{
	struct decoder *d = &op->dec;
	struct nnofi_sock *s = op->base.sock;
	const uint8_t *start = data;
	while (len > 0 && !op->base.dead && !op->rd.active && !op->header_waits) {
		if (!d->sp_done) {
			size_t n = SP_HEADER_SIZE - d->spgot < len ? SP_HEADER_SIZE - d->spgot : len;
			memcpy(d->sp + d->spgot, data, n);
			d->spgot += n;
			data += n;
			len -= n;
			if (d->spgot == SP_HEADER_SIZE) {
				d->sp_done = true;
				/* The sockets provider's data can overtake its
				 * FI_CONNECTED, which brings the peer's RMA flag:
				 * join the socket once both are in. */
				if (!op->connected)
					eq_drain(op);
				if (!op->connected && !op->base.dead) {
					op->header_waits = true;
					break;
				}
				if (!handshake_done(op))
					break;
			}
			continue;
		}
		if (d->ctl_need) {
			size_t n = d->ctl_need - d->ctl_got < len ? d->ctl_need - d->ctl_got : len;
			memcpy(d->ctl + d->ctl_got, data, n);
			d->ctl_got += n;
			data += n;
			len -= n;
			if (d->ctl_got == d->ctl_need) {
				size_t clen = d->ctl_need;
				d->ctl_need = 0;
				d->fhgot = 0;
				if (!control_frame(op, clen))
					break;
			}
			continue;
		}
		if (!d->m) {
			size_t n = 8 - d->fhgot < len ? 8 - d->fhgot : len;
			memcpy(d->fh + d->fhgot, data, n);
			d->fhgot += n;
			data += n;
			len -= n;
			if (d->fhgot < 8)
				continue;
			if (d->fh[0] == CTL_PING && get_u64be(d->fh) == (uint64_t)CTL_PING << 56) {
				d->fhgot = 0; /* heard: progress() noted the time */
				continue;
			}
			if (d->fh[0] == CTL_BYE && get_u64be(d->fh) == (uint64_t)CTL_BYE << 56) {
				DBG("ofi %p: peer said bye\n", (void *)op);
				op->peer_gone = true; /* nothing more goes to it */
				if (op->attached)
					sock_remove_pipe(s, &op->base, false);
				else
					opipe_fail(op);
				break;
			}
			if (d->fh[0] == CTL_RDV || d->fh[0] == CTL_ACK) {
				uint64_t clen = get_u64be(d->fh) & ((1ULL << 56) - 1);
				bool ok = d->fh[0] == CTL_ACK ? clen == 8
							      : clen >= RDV_DESC && clen <= RDV_DESC + NNOFI_MAX_HDR;
				if (!ok) {
					sock_stat(s, NNOFI_STAT_FRAMES_MALFORMED, 1);
					opipe_fail(op);
					break;
				}
				d->ctl_kind = d->fh[0];
				d->ctl_need = (size_t)clen;
				d->ctl_got = 0;
				continue;
			}
			size_t hsz;
			uint64_t flen;
			if (frame_header_decode(d->fh, 8, false, s->recv_max_size, &hsz, &flen) != FRAME_OK ||
			    flen > (1ULL << 46) ||
			    !(d->m = msg_try_alloc(flen < FRAME_GROW_FIRST ? (size_t)flen : FRAME_GROW_FIRST))) {
				sock_stat(s, NNOFI_STAT_FRAMES_OVERSIZE, 1);
				opipe_fail(op);
				break;
			}
			d->cap = d->m->len;
			d->m->len = (size_t)flen;
			d->got = 0;
		}
		if (d->got == d->cap && d->got < d->m->len) { /* grow as the bytes come */
			size_t cap = d->cap * 2 < d->m->len ? d->cap * 2 : d->m->len;
			if (!msg_try_resize(d->m, cap)) {
				sock_stat(s, NNOFI_STAT_FRAMES_OVERSIZE, 1);
				opipe_fail(op);
				break;
			}
			d->cap = cap;
		}
		size_t want = d->cap - d->got;
		size_t n = want < len ? want : len;
		memcpy(d->m->body + d->got, data, n);
		d->got += n;
		data += n;
		len -= n;
		if (d->got == d->m->len) {
			nnofi_msg *m = d->m;
			d->m = NULL;
			d->fhgot = 0;
			sock_deliver(s, &op->base, m);
		}
	}
	return (size_t)(data - start);
}

static bool rdm_welcome(struct opipe *op, const uint8_t *msg, size_t len);

/* Feed completed receive buffers in the order they were posted and
 * repost them, until the next is not done or waits behind a rendezvous
 * read. An RDM dialer's first message is the listener's WELCOME. */
static void drain_rx(struct opipe *op)
{
	while (op->rx_order_n && !op->rd.active && !op->base.dead) {
		int i = op->rx_order[0];
		if (!op->rx_done[i])
			return;
		if (op->rdm && !op->welcomed) {
			if (!rdm_welcome(op, op->rx[i].data, op->rx_len[i])) {
				opipe_fail(op);
				return;
			}
			op->rx_off[i] = op->rx_len[i];
		} else {
			op->rx_off[i] += feed(op, op->rx[i].data + op->rx_off[i], op->rx_len[i] - op->rx_off[i]);
		}
		if (op->base.dead || op->rx_off[i] < op->rx_len[i])
			return;
		memmove(op->rx_order, op->rx_order + 1, (size_t)--op->rx_order_n * sizeof(int));
		op->rx_done[i] = false;
		if (post_recv(op, &op->rx[i])) {
			opipe_fail(op);
			return;
		}
	}
}

/* Issue the rendezvous reads that fit in flight. */
static void rdv_start(struct opipe *op)
{
	struct rdv_in *rd = &op->rd;
	for (int i = 0; i < RDV_READS && rd->issued < rd->body_len && !op->base.dead; i++) {
		if (rd->read_len[i])
			continue;
		size_t n = rd->body_len - rd->issued < RDV_PIECE ? rd->body_len - rd->issued : RDV_PIECE;
		rd->reads[i].kind = CTX_READ;
		ssize_t rc = fi_read(op->fep, rd->m->body + rd->hdr_len + rd->issued, n, mr_entry_desc(rd->mr),
				     op->rdm ? op->peer : 0, rd->raddr + rd->issued, rd->key, &rd->reads[i].ctx);
		if (rc == -FI_EAGAIN)
			return; /* retried on progress */
		if (rc) {
			DBG("ofi %p: fi_read: %s\n", (void *)op, fi_strerror((int)-rc));
			opipe_fail(op);
			return;
		}
		rd->read_len[i] = n;
		rd->issued += n;
		rd->inflight++;
	}
}

/* A rendezvous read completed: when all are, deliver, ack, go on. */
static void rdv_read_done(struct opipe *op, struct octx *c)
{
	struct rdv_in *rd = &op->rd;
	int i = (int)((struct octx *)c - rd->reads);
	rd->done += rd->read_len[i];
	rd->read_len[i] = 0;
	rd->inflight--;
	if (rd->done < rd->body_len) {
		rdv_start(op);
		return;
	}
	uint8_t id[8];
	put_u64be(id, rd->id);
	mr_cache_put(op->mrc, rd->mr);
	rd->mr = NULL;
	rd->active = false;
	nnofi_msg *m = rd->m;
	rd->m = NULL;
	sock_stat(op->base.sock, NNOFI_STAT_RENDEZVOUS_RECV, 1);
	if (!queue_ctl(op, CTL_ACK, id, sizeof(id))) {
		msg_free(m);
		opipe_fail(op);
		return;
	}
	sock_deliver(op->base.sock, &op->base, m);
	drain_rx(op);
}

/* While bytes wait for send buffers, or a rendezvous is under way, the
 * background thread drives the CQ too: the application may not call into
 * this socket again soon. */
static void watch_backlog(struct opipe *op)
{
	if (!op->attached || op->base.dead || op->cq_fd < 0)
		return; /* a CQ without fd is polled all along */
	/* sockets that never receive (PUSH, PUB) or drop at their buffer
	 * (SUB, BUS, SURVEYOR): always, to notice a peer leaving or to read
	 * ahead, like the background watch of tcp pipes */
	const struct proto_ops *proto = op->base.sock->proto;
	bool backlog = op->cur || op->txq.count || op->ctl_len || op->outs || op->rd.active ||
		       op->shut_seen || proto->send_only || proto->drop_when_full;
	if (backlog && !op->cq_watched)
		op->cq_watched = bg_watch_add(&op->cq_watch, EPOLLIN) == 0;
	else if (!backlog && op->cq_watched) {
		bg_watch_del(&op->cq_watch);
		op->cq_watched = false;
	}
}

/* Drain the completion queue (sock locked); true if there were any. */
static bool progress(struct opipe *op)
{
	struct fi_cq_msg_entry ents[16];
	bool any = false;
	for (int round = 0; round < 64 && !op->base.dead; round++) {
		ssize_t n = fi_cq_read(op->cq, ents, 16);
		if (n == -FI_EAGAIN)
			break;
		any = true;
		if (n == -FI_EAVAIL) {
			struct fi_cq_err_entry err = { 0 };
			fi_cq_readerr(op->cq, &err, 0);
			DBG("ofi %p: completion error %d %s\n", (void *)op, err.err, fi_strerror(err.err));
			if (err.err != FI_ECANCELED)
				opipe_fail(op);
			return true;
		}
		if (n < 0) {
			DBG("ofi %p: cq read failed: %s\n", (void *)op, fi_strerror((int)-n));
			opipe_fail(op);
			return true;
		}
		for (ssize_t i = 0; i < n && !op->base.dead; i++) {
			struct octx *c = ents[i].op_context;
			if (c->kind == CTX_TX) {
				((struct obuf *)c)->busy = false;
			} else if (c->kind == CTX_READ) {
				op->last_heard = now_ms(); /* the peer served it */
				rdv_read_done(op, c);
			} else {
				int k = (int)((struct obuf *)c - op->rx);
				if (op->rdm)
					op->last_heard = now_ms();
				op->rx_len[k] = ents[i].len;
				op->rx_off[k] = 0;
				op->rx_done[k] = true;
				drain_rx(op);
			}
		}
	}
	if (op->base.dead)
		return true;
	if (op->attached)
		eq_drain(op); /* the peer may have left (the bg watch is lazy) */
	if (op->base.dead)
		return true;
	if (op->rd.active)
		rdv_start(op); /* reads the provider refused for now */
	if (op->base.dead)
		return true;
	if (tx_pump(op)) {
		opipe_fail(op);
		return true;
	}
	update_writable(op);
	watch_backlog(op);
	return any;
}

/* ---- pipe ops -------------------------------------------------------- */

static int opipe_send(struct pipe *p, nnofi_msg *m, bool borrowed)
{
	struct opipe *op = (struct opipe *)p;
	if (p->dead || op->txq.bytes >= (size_t)p->sock->send_buffer) {
		p->writable = false;
		return EAGAIN;
	}
	msgq_push(&op->txq, borrowed ? sock_own_msg(p->sock, m) : msg_dup(m));
	if (!free_tx(op)) {
		/* every buffer still in flight: collect the completions first
		 * (a sender that never receives would otherwise wait for the
		 * background thread to read them) */
		progress(op);
		return 0;
	}
	if (tx_pump(op)) {
		opipe_fail(op);
		return 0; /* queued; the pipe's end drops it */
	}
	update_writable(op);
	watch_backlog(op);
	return 0;
}

static void opipe_read_ready(struct pipe *p)
{
	progress((struct opipe *)p);
}

static void opipe_write_ready(struct pipe *p)
{
	progress((struct opipe *)p);
}

static size_t opipe_borrowing(struct pipe *p, uint64_t token)
{
	(void)p;
	(void)token;
	return 0; /* bytes are copied into registered buffers at send */
}

static void opipe_own_pending(struct pipe *p)
{
	(void)p;
}

/* Before the caller sleeps on the CQ fd: fi_trywait says if it may. */
static bool opipe_busy(struct pipe *p)
{
	struct opipe *op = (struct opipe *)p;
	if (op->cq_fd < 0)
		return progress(op); /* no fd to sleep on: look now */
	struct fid *fids[1] = { &op->cq->fid };
	return fi_trywait(op->fab->fabric, fids, 1) != FI_SUCCESS;
}

/* A send buffer is posted and not completed yet. */
static bool tx_posted(const struct opipe *op)
{
	for (int i = 0; i < NTX; i++)
		if (op->tx[i].busy)
			return true;
	return false;
}

static bool opipe_sending(struct pipe *p)
{
	struct opipe *op = (struct opipe *)p;
	return op->cur || op->txq.count || op->ctl_len || op->outs || tx_posted(op);
}

/* Transfers end with the endpoint: drop their messages and registrations,
 * then the cache (before its domain). */
static void release_rendezvous(struct opipe *op)
{
	if (op->rd.mr)
		mr_cache_put(op->mrc, op->rd.mr);
	msg_free(op->rd.m);
	op->rd = (struct rdv_in){ 0 };
	if (op->cur_rdv) {
		mr_cache_put(op->mrc, op->cur_rdv->mr);
		free(op->cur_rdv);
		op->cur_rdv = NULL;
	}
	while (op->outs) {
		struct rdv_out *r = op->outs;
		op->outs = r->next;
		mr_cache_put(op->mrc, r->mr);
		msg_free(r->m);
		free(r);
	}
	if (op->mrc)
		mr_cache_close(op->mrc);
	op->mrc = NULL;
	free(op->ctl);
	op->ctl = NULL;
	op->ctl_len = op->ctl_cap = 0;
}

static void release_fids(struct opipe *op)
{
	if (op->fep) {
		if (!op->rdm)
			fi_shutdown(op->fep, 0);
		fi_close(&op->fep->fid);
		op->fep = NULL;
	}
	for (int i = 0; i < NRX + NTX; i++) {
		struct obuf *b = i < NRX ? &op->rx[i] : &op->tx[i - NRX];
		if (b->mr)
			fi_close(&b->mr->fid);
		b->mr = NULL;
	}
	release_rendezvous(op);
	if (op->cq)
		fi_close(&op->cq->fid);
	if (op->eq)
		fi_close(&op->eq->fid);
	if (op->av)
		fi_close(&op->av->fid);
	if (op->domain)
		fi_close(&op->domain->fid);
	op->cq = NULL;
	op->eq = NULL;
	op->av = NULL;
	op->domain = NULL;
}

/* The background thread lets go of the pipe (sock locked). */
static void stop_watching(struct opipe *op)
{
	if (op->eq) {
		bg_watch_del(&op->eq_watch);
		bg_timer_cancel(&op->eq_rearm);
	}
	if (op->cq_watched)
		bg_watch_del(&op->cq_watch);
	op->cq_watched = false;
	bg_timer_cancel(&op->poll);
	bg_timer_cancel(&op->hs_timeout);
	bg_timer_cancel(&op->heartbeat);
	bg_timer_cancel(&op->shut_grace);
}

/* Wait, BYE_FLUSH_MS at most, for what is queued (the BYE last) to be
 * posted and complete before the endpoint closes (closing it drops what a
 * provider still holds); receives completing meanwhile are dropped with
 * the pipe. */
#define BYE_FLUSH_MS 100
static void flush_tx(struct opipe *op)
{
	int64_t deadline = now_ms() + BYE_FLUSH_MS;
	while ((tx_posted(op) || op->ctl_len || op->cur) && now_ms() <= deadline) {
		struct fi_cq_msg_entry ents[16];
		ssize_t n = fi_cq_read(op->cq, ents, 16);
		if (n == -FI_EAVAIL) {
			struct fi_cq_err_entry err = { 0 };
			fi_cq_readerr(op->cq, &err, 0);
			return;
		}
		for (ssize_t i = 0; i < n; i++) {
			struct octx *c = ents[i].op_context;
			if (c->kind == CTX_TX)
				((struct obuf *)c)->busy = false;
		}
		if (n < 0 && n != -FI_EAGAIN)
			return;
		if (tx_pump(op))
			return;
		if (n == -FI_EAGAIN)
			sched_yield();
	}
}

static void opipe_close(struct pipe *p)
{
	struct opipe *op = (struct opipe *)p;
	/* best effort: an RDM peer has no other way to know; a MSG peer
	 * learns from it that the data before it is all there */
	if (op->attached && !op->peer_gone && !p->broken && queue_ctl(op, CTL_BYE, NULL, 0))
		flush_tx(op);
	op->closing = true;
	stop_watching(op);
	struct epoll_event ev = { 0 };
	epoll_ctl(p->sock->epfd, EPOLL_CTL_DEL, op->cq_fd, &ev);
	p->fd = -1;
	release_fids(op);
	msg_free(op->cur);
	op->cur = NULL;
	msgq_clear(&op->txq);
	msg_free(op->dec.m);
	op->dec.m = NULL;
}

static void opipe_destroy(struct pipe *p)
{
	struct opipe *op = (struct opipe *)p;
	for (int i = 0; i < NRX + NTX; i++)
		free(i < NRX ? op->rx[i].data : op->tx[i - NRX].data);
	fabric_unref(op->fab);
	free(op);
}

static const struct pipe_ops opipe_ops = {
	.send = opipe_send,
	.read_ready = opipe_read_ready,
	.write_ready = opipe_write_ready,
	.close = opipe_close,
	.borrowing = opipe_borrowing,
	.own_pending = opipe_own_pending,
	.destroy = opipe_destroy,
	.busy = opipe_busy,
	.sending = opipe_sending,
};

/* ---- connection life --------------------------------------------------- */

struct ofi_ep {
	struct ofi_addr addr;
	struct fi_info *info;
	struct ofi_fabric *fab;
	struct fid_eq *eq;       /* listener: connection requests */
	struct fid_pep *pep;
	int eq_fd;
	struct bg_watch watch;
	struct bg_timer rearm;
	bool stopped;
	/* RDM: no connections underneath; the listener is an endpoint that
	 * takes hellos, and each pipe gets its own endpoint (like accept) */
	bool rdm, named; /* named: shm-style string addresses, not IP:port */
	char name[HELLO_MAX]; /* named: our listener's or the peer's address */
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_ep *lep;
	struct lbuf {
		struct octx c;
		struct fid_mr *mr;
		uint8_t data[HELLO_MAX];
	} hello[NHELLO];
	struct endpoint *ep;
	struct opipe *pending; /* dialer: the connection being made */
	struct opipe *unattached; /* connections still in their SP handshake */
};

static void dial(struct endpoint *ep);

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
static void discard_unattached(void *arg)
{
	struct opipe *op = arg;
	release_fids(op);
	opipe_destroy(&op->base);
}

/* The pipe failed (sock locked). */
static void opipe_fail(struct opipe *op)
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
static bool handshake_done(struct opipe *op)
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
	}
	watch_backlog(op);
	return true;
}

/* Send our SP header first in the stream. */
static void send_sp_header(struct opipe *op)
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

static struct cm_data cm_data_of(const struct opipe *op)
{
	return (struct cm_data){ .magic = "NNOF", .version = 1, .flags = op->rma ? CM_RMA : 0 };
}

/* The peer's private data in a connection event of n bytes. */
static bool peer_can_read(const void *ev, ssize_t n)
{
	struct cm_data cm;
	if (n < (ssize_t)(sizeof(struct fi_eq_cm_entry) + sizeof(cm)))
		return false;
	memcpy(&cm, (const uint8_t *)ev + sizeof(struct fi_eq_cm_entry), sizeof(cm));
	return !memcmp(cm.magic, "NNOF", 4) && (cm.flags & CM_RMA);
}

/* A connection event with room for the peer's private data. */
struct cm_event {
	_Alignas(struct fi_eq_cm_entry) uint8_t raw[sizeof(struct fi_eq_cm_entry) + 64];
};

/* Read the connection events there are (sock locked). */
static void eq_drain(struct opipe *op)
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
		} else if (event == FI_SHUTDOWN && !op->shut_seen) {
			/* The peer closed, but what it sent last may not be in the
			 * CQ yet (sockets reports the shutdown before its last
			 * data): read on until its BYE ends the pipe in order, or
			 * for SHUTDOWN_GRACE_MS at most (no BYE: it died). */
			op->shut_seen = true;
			bg_timer_arm(&op->shut_grace, now_ms() + SHUTDOWN_GRACE_MS);
			watch_backlog(op);
		}
	}
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

/* Completions before the pipe joins its socket, and while sends are
 * backlogged (background thread). */
static void cq_event(struct bg_watch *w, uint32_t events)
{
	struct opipe *op = (struct opipe *)((char *)w - offsetof(struct opipe, cq_watch));
	struct nnofi_sock *s = op->base.sock;
	(void)events;
	pthread_mutex_lock(&s->mtx);
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
static int cq_open(struct fid_domain *domain, size_t size, bool polled, struct fid_cq **cq, int *fd)
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

/* Domain, CQ, endpoint and buffers for one connection, with an EQ (MSG)
 * or an address vector (RDM); receives posted. */
static struct opipe *opipe_new(struct endpoint *ep, struct ofi_fabric *fab, struct fi_info *fi)
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

static void watch_unattached(struct opipe *op)
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
	if (op->rdm) /* no connection events: the peer may never answer */
		bg_timer_arm(&op->hs_timeout, now_ms() + HANDSHAKE_MS);
}

/* ---- listeners ------------------------------------------------------------ */

/* After a wake-up with no connection request: the longest a new
 * connection may wait while data flows on others. */
#define LISTENER_REARM_MS 5

static void listener_event(struct bg_watch *w, uint32_t events)
{
	struct ofi_ep *oe = (struct ofi_ep *)((char *)w - offsetof(struct ofi_ep, watch));
	struct endpoint *lep = oe->ep;
	struct nnofi_sock *s = lep->sock;
	(void)events;
	pthread_mutex_lock(&s->mtx);
	bool any = false;
	while (!oe->stopped) {
		uint32_t event;
		struct cm_event ev;
		ssize_t n = fi_eq_read(oe->eq, &event, &ev, sizeof(ev), 0);
		if (n == -FI_EAGAIN)
			break;
		any = true;
		if (n < 0) {
			struct fi_eq_err_entry err = { 0 };
			fi_eq_readerr(oe->eq, &err, 0);
			continue;
		}
		DBG("ofi listener: event %u\n", event);
		if (event != FI_CONNREQ)
			continue;
		struct fi_eq_cm_entry entry;
		memcpy(&entry, &ev, sizeof(entry));
		struct opipe *op = opipe_new(lep, oe->fab, entry.info);
		if (!op) {
			fi_reject(oe->pep, entry.info->handle, NULL, 0);
			fi_freeinfo(entry.info);
			continue;
		}
		op->peer_rma = peer_can_read(&ev, n);
		struct cm_data cm = cm_data_of(op);
		int rc = fi_accept(op->fep, &cm, sizeof(cm));
		if (rc) {
			DBG("ofi listener: accept failed: %s\n", fi_strerror(-rc));
			discard_unattached(op);
		} else {
			watch_unattached(op);
		}
		fi_freeinfo(entry.info);
	}
	/* one-shot, like a pipe's EQ watch: the fd also polls readable while
	 * any connection of the fabric has data waiting */
	if (!oe->stopped) {
		if (any)
			bg_watch_mod(&oe->watch, EPOLLIN | EPOLLONESHOT);
		else
			bg_timer_arm(&oe->rearm, now_ms() + LISTENER_REARM_MS);
	}
	pthread_mutex_unlock(&s->mtx);
}

static bool rdm_listener_poll(struct ofi_ep *oe);

static void listener_rearm_fire(struct bg_timer *t)
{
	struct ofi_ep *oe = (struct ofi_ep *)((char *)t - offsetof(struct ofi_ep, rearm));
	pthread_mutex_lock(&oe->ep->sock->mtx);
	if (!oe->stopped && oe->rdm) {
		rdm_listener_poll(oe); /* no fd: look, and look again later */
		if (!oe->stopped)
			bg_timer_arm(&oe->rearm, now_ms() + LISTENER_REARM_MS);
	} else if (!oe->stopped) {
		bg_watch_mod(&oe->watch, EPOLLIN | EPOLLONESHOT);
	}
	pthread_mutex_unlock(&oe->ep->sock->mtx);
}

static void ofi_stop(struct endpoint *ep);
static const struct ep_ops ofi_ep_ops = { .stop = ofi_stop, .dial = dial };

static int ofi_ep_init(struct endpoint *ep, bool passive, struct ofi_ep **out)
{
	struct ofi_ep *oe = calloc(1, sizeof(*oe));
	if (!oe)
		return ENOMEM;
	int rc = ofi_addr_parse(ep->url.name, &oe->addr);
	if (!rc)
		rc = ofi_select(&oe->addr, passive, &oe->info, &oe->named);
	if (!rc)
		oe->rdm = oe->info->ep_attr->type == FI_EP_RDM;
	if (!rc && !(oe->fab = fabric_open(oe->info)))
		rc = EIO;
	DBG("ofi: %s selected %s %s (%s): %d\n", ep->url.name, rc ? "-" : oe->info->fabric_attr->prov_name,
	    rc ? "" : oe->rdm ? "RDM" : "MSG", oe->named ? "named" : "IP:port", rc);
	if (rc) {
		if (oe->info)
			fi_freeinfo(oe->info);
		free(oe);
		return rc;
	}
	oe->ep = ep;
	ep->tdata = oe;
	ep->ops = &ofi_ep_ops;
	*out = oe;
	return 0;
}

/* The port a listening fid got (port 0 binds a free one); "?" if unknown. */
static void bound_port(struct fid *fid, char port[8])
{
	struct sockaddr_storage sa;
	size_t len = sizeof(sa);
	snprintf(port, 8, "?");
	if (fi_getname(fid, &sa, &len) == 0)
		snprintf(port, 8, "%u",
			 ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
							: ((struct sockaddr_in *)&sa)->sin_port));
}

static void describe(struct endpoint *ep, struct ofi_ep *oe, const char *port)
{
	const char *ip = oe->addr.ip;
	snprintf(ep->real_url, sizeof(ep->real_url), strchr(ip, ':') ? "ofi://[%s]:%s@%s:%s" : "ofi://%s:%s@%s:%s",
		 ip, port, oe->info->fabric_attr->name, oe->info->fabric_attr->prov_name);
}

static int rdm_bind(struct endpoint *ep, struct ofi_ep *oe);
static void free_ofi_ep(void *arg);

int ofi_bind(struct endpoint *ep)
{
	struct ofi_ep *oe;
	int rc = ofi_ep_init(ep, true, &oe);
	if (rc)
		return rc;
	if (oe->rdm) {
		if ((rc = rdm_bind(ep, oe)))
			goto fail;
		return 0;
	}
	struct fi_eq_attr eqa = { .size = 64, .wait_obj = FI_WAIT_FD };
	int frc;
	if ((frc = fi_eq_open(oe->fab->fabric, &eqa, &oe->eq, NULL)) ||
	    (frc = fi_control(&oe->eq->fid, FI_GETWAIT, &oe->eq_fd)) ||
	    (frc = fi_passive_ep(oe->fab->fabric, oe->info, &oe->pep, ep)) ||
	    (frc = fi_pep_bind(oe->pep, &oe->eq->fid, 0)) || (frc = fi_listen(oe->pep))) {
		DBG("ofi bind: %s\n", fi_strerror(-frc));
		rc = frc == -FI_EADDRINUSE ? EADDRINUSE : EIO;
		goto fail;
	}
	char port[8];
	bound_port(&oe->pep->fid, port);
	describe(ep, oe, port);
	oe->watch.fd = oe->eq_fd;
	oe->watch.on_event = listener_event;
	oe->rearm.fire = listener_rearm_fire;
	if (bg_watch_add(&oe->watch, EPOLLIN | EPOLLONESHOT)) {
		rc = EIO;
		goto fail;
	}
	return 0;
fail:
	if (oe->pep)
		fi_close(&oe->pep->fid);
	if (oe->eq)
		fi_close(&oe->eq->fid);
	fabric_unref(oe->fab);
	fi_freeinfo(oe->info);
	free(oe);
	return rc;
}

/* ---- RDM connections ------------------------------------------------------
 *
 * Reliable-datagram providers (shm, tcp;ofi_rxm, udp;ofi_rxd) have no
 * connections, so nnofi makes its own, like accept(): the dialer's new
 * endpoint sends HELLO (its address) to the listener's endpoint; the
 * listener opens an endpoint for this pipe alone and answers from it with
 * WELCOME (that endpoint's address), then both speak the SP stream
 * between the two pipe endpoints. A hello is "NNOR", version 1, kind,
 * flags (CM_RMA), name length, the sender's endpoint name. */
#define HELLO_HEAD 8
enum { HELLO = 1, WELCOME = 2 };

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
static bool send_hello(struct opipe *op, int kind)
{
	uint8_t name[HELLO_MAX - HELLO_HEAD];
	size_t len = sizeof(name);
	struct obuf *b = free_tx(op);
	if (!b || fi_getname(&op->fep->fid, name, &len) || len == 0 || len > 255)
		return false;
	b->fill = hello_encode(b->data, kind, op->rma, name, len);
	return tx_post(op, b) == 0;
}

static bool insert_peer(struct opipe *op, const void *name)
{
	return fi_av_insert(op->av, name, 1, &op->peer, 0, NULL) == 1;
}

/* Dialer: the listener's new endpoint for us answered; it is the peer now. */
static bool rdm_welcome(struct opipe *op, const uint8_t *msg, size_t len)
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
		if (now_ms() - op->last_heard > PEER_TIMEOUT_MS) {
			DBG("ofi %p: peer silent for %d ms\n", (void *)op, PEER_TIMEOUT_MS);
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
		DBG("ofi %p: no handshake within %d ms\n", (void *)op, HANDSHAKE_MS);
		sock_stat(s, NNOFI_STAT_HANDSHAKE_TIMEOUTS, 1);
		opipe_fail(op);
	}
	pthread_mutex_unlock(&s->mtx);
}

/* The listener's hellos (sock locked); true if there were any. */
static bool rdm_listener_poll(struct ofi_ep *oe)
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

static void rdm_listener_close(struct ofi_ep *oe)
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
static void make_name(struct ofi_ep *oe, const char *port)
{
	snprintf(oe->name, sizeof(oe->name), "fi_shm://nnofi_%s_%s", oe->addr.ip, port);
}

static int rdm_bind(struct endpoint *ep, struct ofi_ep *oe)
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

/* ---- dialers ---------------------------------------------------------------- */

/* MSG: fi_connect with our private data; RDM: HELLO to the listener. */
static bool start_connecting(struct opipe *op, struct ofi_ep *oe)
{
	if (op->rdm)
		return insert_peer(op, oe->named ? (void *)oe->name : oe->info->dest_addr) && send_hello(op, HELLO);
	struct cm_data cm = cm_data_of(op);
	return fi_connect(op->fep, oe->info->dest_addr, &cm, sizeof(cm)) == 0;
}

static void dial(struct endpoint *ep)
{
	struct ofi_ep *oe = ep->tdata;
	if (oe->stopped || oe->pending)
		return;
	if (oe->named && shm_local(oe->name)) {
		DBG("ofi: %s is a listener of this process: not dialing\n", oe->name);
		return; /* see shm_local.h; ofi_connect said so when it could */
	}
	struct opipe *op = opipe_new(ep, oe->fab, oe->info);
	DBG("ofi dial: pipe %p\n", (void *)op);
	if (!op || !start_connecting(op, oe)) {
		if (op)
			discard_unattached(op);
		sock_ep_redial_later(ep);
		return;
	}
	oe->pending = op;
	watch_unattached(op);
}

int ofi_connect(struct endpoint *ep)
{
	struct ofi_ep *oe;
	int rc = ofi_ep_init(ep, false, &oe);
	if (rc)
		return rc;
	describe(ep, oe, oe->addr.port);
	if (oe->named)
		make_name(oe, oe->addr.port);
	if (oe->named && shm_local(oe->name)) {
		free_ofi_ep(oe);
		return ENOTSUP; /* shm to this same process: see shm_local.h */
	}
	pthread_mutex_lock(&ep->sock->mtx);
	dial(ep);
	pthread_mutex_unlock(&ep->sock->mtx);
	return 0;
}

/* ---- stop ------------------------------------------------------------------- */

static void free_ofi_ep(void *arg)
{
	struct ofi_ep *oe = arg;
	fabric_unref(oe->fab);
	fi_freeinfo(oe->info);
	free(oe);
}

static void ofi_stop(struct endpoint *ep)
{
	struct ofi_ep *oe = ep->tdata;
	pthread_mutex_lock(&ep->sock->mtx);
	oe->stopped = true;
	if (oe->eq)
		bg_watch_del(&oe->watch);
	bg_timer_cancel(&oe->rearm);
	rdm_listener_close(oe);
	/* the port is free when stop returns, so it can be bound again */
	if (oe->pep)
		fi_close(&oe->pep->fid);
	if (oe->eq)
		fi_close(&oe->eq->fid);
	oe->pep = NULL;
	oe->eq = NULL;
	while (oe->unattached)
		opipe_fail(oe->unattached);
	pthread_mutex_unlock(&ep->sock->mtx);
	bg_defer(free_ofi_ep, oe);
}
