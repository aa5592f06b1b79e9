/* One ofi pipe's data path: the SP stream cut into registered send
 * buffers (small messages and control frames share them), the receive
 * side's decoder, rendezvous (expose, fi_read, ack), completion progress,
 * and the pipe ops the socket calls (send, busy, close...). */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

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
#include <rdma/fi_rma.h>

#include "core.h"
#include "framing.h"
#include "mr_cache.h"
#include "ofi_internal.h"

/* Keys must be unique where the provider doesn't pick them. */
uint64_t next_mr_key(void)
{
	static atomic_uint_fast64_t keys;
	return atomic_fetch_add(&keys, 1) + 1;
}

int buf_setup(struct opipe *op, struct obuf *b, bool is_tx)
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

int post_recv(struct opipe *op, struct obuf *b)
{
	if (fi_recv(op->fep, b->data, CHUNK, b->desc, op->rdm ? FI_ADDR_UNSPEC : 0, &b->c.ctx))
		return EIO;
	op->rx_order[op->rx_order_n++] = (int)(b - op->rx);
	return 0;
}

struct obuf *free_tx(struct opipe *op)
{
	for (int i = 0; i < NTX; i++)
		if (!op->tx[i].busy)
			return &op->tx[i];
	return NULL;
}

/* Post a filled tx buffer; one the provider refuses for now stays filled
 * and goes first on the next try (the stream must stay in order). */
int tx_post(struct opipe *op, struct obuf *b)
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

/* A registration the cache found or made, in the socket's statistics. */
static void count_registration(struct nnofi_sock *s, const struct mr_get_result *res)
{
	sock_stat(s, res->hit ? NNOFI_STAT_MR_HITS : NNOFI_STAT_MR_MISSES, 1);
	sock_stat(s, NNOFI_STAT_MR_EVICTIONS, (uint64_t)res->evicted);
	sock_stat(s, NNOFI_STAT_MR_BYTES_REGISTERED, res->registered);
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
	count_registration(s, &res);
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

/* Whether the next message may follow the descriptors awaiting their acks.
 * Only descriptors, RDV_AHEAD at most: the receiver stops taking its
 * posted buffers while it reads, and the tcp provider holds the read's
 * data behind a message that finds no buffer (deadlock). Acks and other
 * control frames always go: each peer's descriptors bound them. */
static bool may_follow_outs(struct opipe *op, const nnofi_msg *m)
{
	return !op->outs || (op->outs_n < RDV_AHEAD && goes_by_rendezvous(op, m));
}

/* The next queued message becomes the frame being cut into buffers.
 * False if it must wait for the acks after all (its memory could not be
 * exposed, so its bytes would follow a descriptor). */
static bool tx_next_frame(struct opipe *op)
{
	op->cur = msgq_pop(&op->txq);
	op->cur_off = 0;
	op->cur_rdv = NULL;
	if (goes_by_rendezvous(op, op->cur) && expose(op))
		return true;
	if (op->outs) {
		msgq_push_front(&op->txq, op->cur);
		op->cur = NULL;
		return false;
	}
	op->cur_fh_len = frame_prefix_encode(op->cur_fh, false, op->cur->hdr, op->cur->hdr_len, op->cur->len);
	return true;
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
		op->outs_n++;
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
int tx_pump(struct opipe *op)
{
	int err;
	if (tx_retry(op, &err) || err)
		return err;
	for (;;) {
		bool next_frame = op->txq.head && may_follow_outs(op, op->txq.head);
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
				nnofi_msg *next = op->txq.head;
				if (!next || !may_follow_outs(op, next) ||
				    (b->fill && wire_size(op, next) > CHUNK - b->fill) || !tx_next_frame(op))
					break;
			}
			fill_from_cur(op, b);
			if (op->cur_off < cur_total(op))
				break; /* b is full */
			frame_done(op);
		}
		if (!b->fill)
			return 0; /* the next frame waits for acks */
		if ((err = tx_post(op, b)) || b->unposted)
			return err; /* provider busy: retried on progress */
	}
}

/* Queue a control frame for the next frame boundary. */
bool queue_ctl(struct opipe *op, uint8_t kind, const uint8_t *body, size_t len)
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

static void rdv_start(struct opipe *op);

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
				op->outs_n--;
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
	rd->raddr = get_u64be(d->ctl + 8);
	if (s->recv_max_size >= 0 && total > (uint64_t)s->recv_max_size) {
		sock_stat(s, NNOFI_STAT_FRAMES_OVERSIZE, 1);
		opipe_fail(op);
		return false;
	}
	rd->key = get_u64be(d->ctl + 16);
	rd->id = get_u64be(d->ctl + 24);
	memcpy(rd->hdr, d->ctl + RDV_DESC, rd->hdr_len);
	rd->body_len = (size_t)total - rd->hdr_len;
	rd->issued = rd->done = 0;
	rd->active = true;
	if (!rd->hdr_len && op->attached) {
		rd->unread = true;
		atomic_fetch_add(&s->unread_rendezvous, 1);
	}
	rdv_start(op);
	return !op->base.dead;
}

/* The rendezvous is no longer one a receive call may take into its own
 * memory: its read begins, or the pipe goes. */
static void rdv_read_begins(struct opipe *op)
{
	if (op->rd.unread)
		atomic_fetch_sub(&op->base.sock->unread_rendezvous, 1);
	op->rd.unread = false;
}

/* The message a rendezvous is read into: the buffer of a receive call
 * waiting for one this size (no copy after), else one of ours; and its
 * registration. False if the pipe failed. */
static bool rdv_take_body(struct opipe *op)
{
	struct rdv_in *rd = &op->rd;
	struct nnofi_sock *s = op->base.sock;
	size_t total = rd->hdr_len + rd->body_len;
	if (rd->unread)
		rd->m = sock_claim_landing(s, total);
	rdv_read_begins(op);
	/* Where the address is the peer's own (shm), our body lands at its
	 * offset in a page: shm's fi_read is a kernel copy, several times
	 * slower misaligned. */
	if (!rd->m && !(rd->m = mr_cache_virt_addr(op->mrc)
					? msg_try_alloc_aligned_as(total, (uintptr_t)(rd->raddr - rd->hdr_len))
					: msg_try_alloc(total))) {
		sock_stat(s, NNOFI_STAT_FRAMES_OVERSIZE, 1);
		opipe_fail(op);
		return false;
	}
	memcpy(rd->m->body, rd->hdr, rd->hdr_len);
	struct mr_get_result res;
	rd->mr = mr_cache_get(op->mrc, rd->m->chunk, rd->m->body + rd->hdr_len, rd->body_len, &res);
	if (!rd->mr) {
		opipe_fail(op); /* release_rendezvous frees rd->m */
		return false;
	}
	count_registration(s, &res);
	return true;
}

/* At a frame boundary: a data frame wholly in these bytes becomes a
 * message with one allocation and one copy, past the decoder's byte-wise
 * states (a small request or reply). Returns the bytes taken, 0 for
 * anything else, which the decoder handles (and reports). */
static size_t whole_frame(struct opipe *op, const uint8_t *data, size_t len)
{
	struct nnofi_sock *s = op->base.sock;
	size_t hsz;
	uint64_t flen;
	if (len < 8 || data[0] != 0 || /* a control frame's first byte is its kind */
	    frame_header_decode(data, len, false, s->recv_max_size, &hsz, &flen) != FRAME_OK || flen > len - hsz)
		return 0;
	nnofi_msg *m = msg_try_alloc((size_t)flen);
	if (!m)
		return 0;
	memcpy(m->body, data + hsz, (size_t)flen);
	sock_deliver(s, &op->base, m);
	return hsz + (size_t)flen;
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
			size_t whole = d->fhgot ? 0 : whole_frame(op, data, len);
			if (whole) {
				data += whole;
				len -= whole;
				continue;
			}
			size_t n = 8 - d->fhgot < len ? 8 - d->fhgot : len;
			memcpy(d->fh + d->fhgot, data, n);
			d->fhgot += n;
			data += n;
			len -= n;
			if (d->fhgot < 8)
				continue;
			if (d->fh[0] == CTL_PING && get_u64be(d->fh) == (uint64_t)CTL_PING << 56) {
				d->fhgot = 0; /* heard: progress() noted the time */
				if (!op->rdm) /* a probe: answer it (progress sends it) */
					queue_ctl(op, CTL_PONG, NULL, 0);
				continue;
			}
			if (d->fh[0] == CTL_PONG && get_u64be(d->fh) == (uint64_t)CTL_PONG << 56) {
				d->fhgot = 0; /* heard */
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
			    !(d->m = msg_try_alloc_growing(flen < FRAME_GROW_FIRST ? (size_t)flen : FRAME_GROW_FIRST, (size_t)flen))) {
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

/* Feed completed receive buffers in the order they were posted and
 * repost them, until the next is not done or waits behind a rendezvous
 * read. An RDM dialer's first message is the listener's WELCOME. */
void drain_rx(struct opipe *op)
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

/* On a polled pipe (shm, rxm), a rendezvous whose reads have not begun
 * waits while the socket's receive queue is full, like a tcp pipe's
 * reads: the background thread's poll would otherwise read message after
 * message ahead of the application, holding the socket's lock through
 * each of shm's copies (1 MiB PUSH/PULL: the receiver blocked for 6-10 ms
 * at a time). The poll goes on every POLL_MS, so it begins once there is
 * room; a pipe with a CQ fd has no such poll, and its reads, which do not
 * copy under the lock, go on. */
static bool rdv_waits_for_room(const struct opipe *op)
{
	return op->cq_fd < 0 && !op->rd.m && op->base.sock->reads_paused;
}

/* Issue the rendezvous reads that fit in flight. */
static void rdv_start(struct opipe *op)
{
	struct rdv_in *rd = &op->rd;
	if (!rd->m && (rdv_waits_for_room(op) || !rdv_take_body(op)))
		return; /* progress() tries again once the queue has room */
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

/* A rendezvous read completed: when all are, deliver, ack, go on.
 * Returns the bytes it read. */
static size_t rdv_read_done(struct opipe *op, struct octx *c)
{
	struct rdv_in *rd = &op->rd;
	int i = (int)((struct octx *)c - rd->reads);
	size_t read = rd->read_len[i];
	rd->done += read;
	rd->read_len[i] = 0;
	rd->inflight--;
	if (rd->done < rd->body_len) {
		rdv_start(op);
		return read;
	}
	uint8_t id[8];
	put_u64be(id, rd->id);
	mr_cache_put(op->mrc, rd->mr);
	rd->mr = NULL;
	rd->active = false;
	nnofi_msg *m = rd->m;
	rd->m = NULL;
	sock_landing_done(op->base.sock, m, true);
	sock_stat(op->base.sock, NNOFI_STAT_RENDEZVOUS_RECV, 1);
	if (!queue_ctl(op, CTL_ACK, id, sizeof(id))) {
		msg_free(m);
		opipe_fail(op);
		return read;
	}
	sock_deliver(op->base.sock, &op->base, m);
	drain_rx(op);
	return read;
}

/* While bytes wait for send buffers, or a rendezvous is under way, the
 * background thread drives the CQ too: the application may not call into
 * this socket again soon. */
void watch_backlog(struct opipe *op)
{
	if (!op->attached || op->base.dead || op->cq_fd < 0)
		return; /* a CQ without fd is polled all along */
	/* sockets that never receive (PUSH, PUB) or drop at their buffer
	 * (SUB, BUS, SURVEYOR): always, to notice a peer leaving or to read
	 * ahead, like the background watch of tcp pipes */
	const struct proto_ops *proto = op->base.sock->proto;
	bool backlog = op->cur || op->txq.count || op->ctl_len || op->outs || op->rd.active ||
		       op->shut_seen || proto->send_only || proto->drop_when_full;
	if (!backlog) {
		watch_idle(op);
	} else if (!op->cq_watched) {
		op->cq_watched = bg_watch_add(&op->cq_watch, EPOLLIN) == 0;
		op->cq_idle = false;
	} else if (op->cq_idle) {
		bg_timer_cancel(&op->cq_rearm);
		bg_watch_mod(&op->cq_watch, EPOLLIN);
		op->cq_idle = false;
	}
}

/* Drain the completion queue (sock locked); true if there were any. A
 * rendezvous read goes on a window's bytes (RDV_READS pieces) per call: each
 * completion issues the next read, which shm copies at once, and one call
 * that read a whole 1 GiB body held the socket's lock for seconds; the
 * background thread's heartbeats could not get out, and the sender, which
 * hears nothing of reads from its memory, took the reader for dead after
 * 3 s of silence (1 run in 5 of make bench's memory check). */
bool progress(struct opipe *op)
{
	struct fi_cq_msg_entry ents[16];
	bool any = false;
	size_t read_bytes = 0; /* by rendezvous reads completed in this call */
	for (int round = 0; round < 64 && !op->base.dead && read_bytes < RDV_READS * (size_t)RDV_PIECE; round++) {
		ssize_t n = fi_cq_read(op->cq, ents, 16);
		if (n == -FI_EAGAIN)
			break;
		any = true;
		if (n == -FI_EAVAIL) {
			struct fi_cq_err_entry err = { 0 };
			fi_cq_readerr(op->cq, &err, 0);
			DBG("ofi %p: completion error %d %s\n", (void *)op, err.err, fi_strerror(err.err));
			if (err.err != FI_ECANCELED) {
				opipe_fail(op);
				return true;
			}
			/* receives cancelled: the connection is gone (keepalive
			 * ended it, say), whether or not FI_SHUTDOWN follows */
			if (op->attached && !op->closing && !op->rdm)
				connection_ended(op);
			continue;
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
				op->heard = true; /* the peer served it */
				read_bytes += rdv_read_done(op, c);
			} else {
				int k = (int)((struct obuf *)c - op->rx);
				op->heard = true;
				op->rx_len[k] = ents[i].len;
				op->rx_off[k] = 0;
				op->rx_done[k] = true;
				drain_rx(op);
			}
		}
		if (n < 16)
			break; /* drained: another read costs tcp's progress a look at its sockets (and its signal fd) */
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

/* A message with nothing ahead of it that fits a free send buffer is
 * written into it and posted at once, not queued as a message of its own
 * first: the path of a small request or reply. False: queue it. */
static bool send_at_once(struct opipe *op, const nnofi_msg *m, int *err)
{
	*err = 0;
	if (op->cur || op->txq.head || op->ctl_len || op->outs ||
	    frame_header_size(false) + m->hdr_len + m->len > CHUNK || goes_by_rendezvous(op, m))
		return false;
	for (int i = 0; i < NTX; i++)
		if (op->tx[i].unposted)
			return false; /* it goes first: the stream stays in order */
	struct obuf *b = free_tx(op);
	if (!b)
		return false;
	b->fill = frame_prefix_encode(b->data, false, m->hdr, m->hdr_len, m->len);
	memcpy(b->data + b->fill, m->body, m->len);
	b->fill += m->len;
	if (b->fill <= op->inject_size &&
	    fi_inject(op->fep, b->data, b->fill, op->rdm ? op->peer : 0) == 0)
		return true; /* the provider has the bytes: b stays free */
	*err = tx_post(op, b); /* refused for now: retried first on progress */
	return true;
}

static int opipe_send(struct pipe *p, nnofi_msg *m, bool borrowed)
{
	struct opipe *op = (struct opipe *)p;
	if (p->dead || op->txq.bytes >= (size_t)p->sock->send_buffer) {
		p->writable = false;
		return EAGAIN;
	}
	int err;
	if (send_at_once(op, m, &err)) {
		if (err)
			opipe_fail(op);
		watch_backlog(op);
		return 0;
	}
	msgq_push(&op->txq, sock_keep_msg(p->sock, m, borrowed));
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
bool opipe_busy(struct pipe *p)
{
	struct opipe *op = (struct opipe *)p;
	if (op->cq_fd < 0)
		return progress(op); /* no fd to sleep on: look now */
	struct fid *fids[1] = { &op->cq->fid };
	return fi_trywait(op->fab->fabric, fids, 1) != FI_SUCCESS;
}

static size_t opipe_rendezvous_waiting(struct pipe *p)
{
	const struct rdv_in *rd = &((struct opipe *)p)->rd;
	return rd->unread ? rd->body_len : 0;
}

static bool opipe_poll(struct pipe *p)
{
	return progress((struct opipe *)p);
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
	if (op->rd.m)
		sock_landing_done(op->base.sock, op->rd.m, false); /* the endpoint is closed: nothing writes it now */
	rdv_read_begins(op);
	msg_free(op->rd.m);
	op->rd = (struct rdv_in){ 0 };
	if (op->cur_rdv) {
		mr_cache_put(op->mrc, op->cur_rdv->mr);
		free(op->cur_rdv);
		op->cur_rdv = NULL;
	}
	for (; op->outs; op->outs_n--) {
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

void release_fids(struct opipe *op)
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
void stop_watching(struct opipe *op)
{
	if (op->eq) {
		bg_watch_del(&op->eq_watch);
		bg_timer_cancel(&op->eq_rearm);
	}
	if (op->cq_watched)
		bg_watch_del(&op->cq_watch);
	op->cq_watched = op->cq_idle = false;
	bg_timer_cancel(&op->cq_rearm);
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

void opipe_destroy(struct pipe *p)
{
	struct opipe *op = (struct opipe *)p;
	for (int i = 0; i < NRX + NTX; i++)
		free(i < NRX ? op->rx[i].data : op->tx[i - NRX].data);
	fabric_unref(op->fab);
	free(op);
}

/* RDM pipes hear their peer's heartbeat all along; a MSG pipe starts
 * pinging now, its peer answers each ping, and a peer silent for
 * PROBE_TIMEOUT_MS is gone (heartbeat_fire). */
static void opipe_probe(struct pipe *p)
{
	struct opipe *op = (struct opipe *)p;
	if (op->rdm || op->probing || p->dead || op->closing)
		return;
	op->probing = true;
	op->last_heard = now_ms();
	bg_timer_arm(&op->heartbeat, now_ms());
}

const struct pipe_ops opipe_ops = {
	.send = opipe_send,
	.read_ready = opipe_read_ready,
	.write_ready = opipe_write_ready,
	.close = opipe_close,
	.borrowing = opipe_borrowing,
	.own_pending = opipe_own_pending,
	.destroy = opipe_destroy,
	.busy = opipe_busy,
	.poll = opipe_poll,
	.sending = opipe_sending,
	.probe = opipe_probe,
	.rendezvous_waiting = opipe_rendezvous_waiting,
};
