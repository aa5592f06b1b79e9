/* SP over byte streams (tcp:// and ipc://), wire-compatible with nanomsg
 * and nng: an 8-byte header exchange (00 'S' 'P' 00, protocol id, 0 0),
 * then frames of a 64-bit big-endian length and the payload; over ipc
 * each frame starts with a type byte, 0x01 for a message.
 *
 * Listeners, dialers and handshakes live in the background thread; a
 * connected pipe is read and written by whichever caller polls its
 * socket, and watched by the background thread only for hang-ups and
 * writes nobody waits for. */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <arpa/inet.h>
#include <unistd.h>

#include "core.h"
#include "framing.h"

#define RBUF_SIZE (64 * 1024)
#define HANDSHAKE_TIMEOUT_MS 10000
#define READ_BUDGET (4 * 1024 * 1024)
#define MAX_SANE_FRAME (1ULL << 46)
/* Out of fds or memory, a listener pauses this long before it accepts
 * again: fds come back as peers and stalled handshakes go, and retrying
 * ten times a second costs nothing (nng also sleeps and retries). */
#define ACCEPT_RETRY_MS 100

/* ---- addresses ---------------------------------------------------------- */

union sockaddr_any {
	struct sockaddr sa;
	struct sockaddr_in in4;
	struct sockaddr_in6 in6;
	struct sockaddr_un un;
	struct sockaddr_storage ss;
};

static int resolve(const struct url *u, bool passive, union sockaddr_any *addr, socklen_t *len)
{
	memset(addr, 0, sizeof(*addr));
	if (u->scheme == URL_IPC) {
		addr->un.sun_family = AF_UNIX;
		strcpy(addr->un.sun_path, u->name);
		*len = sizeof(addr->un);
		return 0;
	}
	if (passive && !strcmp(u->host, "*")) {
		addr->in4.sin_family = AF_INET;
		addr->in4.sin_port = htons((uint16_t)u->port);
		addr->in4.sin_addr.s_addr = htonl(INADDR_ANY);
		*len = sizeof(addr->in4);
		return 0;
	}
	if (inet_pton(AF_INET, u->host, &addr->in4.sin_addr) == 1) {
		addr->in4.sin_family = AF_INET;
		addr->in4.sin_port = htons((uint16_t)u->port);
		*len = sizeof(addr->in4);
		return 0;
	}
	if (inet_pton(AF_INET6, u->host, &addr->in6.sin6_addr) == 1) {
		addr->in6.sin6_family = AF_INET6;
		addr->in6.sin6_port = htons((uint16_t)u->port);
		*len = sizeof(addr->in6);
		return 0;
	}
	if (u->ipv6_literal)
		return EINVAL;
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	if (getaddrinfo(u->host, NULL, &hints, &res) != 0 || !res)
		return EADDRNOTAVAIL;
	memcpy(&addr->ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	if (addr->sa.sa_family == AF_INET)
		addr->in4.sin_port = htons((uint16_t)u->port);
	else
		addr->in6.sin6_port = htons((uint16_t)u->port);
	freeaddrinfo(res);
	return 0;
}

/* TCP_NODELAY and keepalive; and the kernel buffers from
 * send_buffer/recv_buffer when the user set them, like nanomsg
 * (otherwise the kernel autotunes). */
static void tune_fd(int fd, bool tcp, struct nnofi_sock *s)
{
	if (tcp) {
		int one = 1;
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		tcp_keepalive(fd, s->tcp_keepalive);
	}
	if (s->send_buffer_set) {
		int v = (int)s->send_buffer;
		if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) != 0)
			setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
	}
	if (s->recv_buffer_set) {
		int v = (int)s->recv_buffer;
		if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) != 0)
			setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	}
}

/* ---- connected pipes ------------------------------------------------------ */

struct spipe {
	struct pipe base;
	bool ipc;
	bool probing; /* keepalive on: another peer waits for this one's place */
	struct bg_watch watch; /* hang-ups, and writes nobody waits for */
	/* receive */
	uint8_t *rbuf;
	size_t rstart, rend;
	nnofi_msg *rmsg; /* a big message read straight into its body */
	size_t rgot, rcap; /* bytes in it, and room for them so far */
	/* send: a frame the kernel did not take whole */
	bool tpending;
	struct msgq txq; /* owned messages waiting behind it, or a burst's batch */
	/* a burst's small messages, framed back to back ahead of txq: one
	 * write for hundreds, and no message objects. Held while a burst
	 * lasts; what the kernel did not take waits at its start. */
	uint8_t *cbuf;
	size_t clen;
	int64_t batch_born_ns; /* when the batch's first message queued */
	struct bg_timer tail_flush; /* writes out a batch its burst left behind */
	bool tail_armed;
	int64_t tail_wait_ns;
	uint8_t thdr[9 + NNOFI_MAX_HDR];
	size_t thdr_len;
	uint8_t *tbody;
	size_t tbody_len;
	size_t toff;        /* bytes of thdr+tbody written */
	uint64_t ttoken;    /* borrowed from this send call; 0 = owned */
	struct chunk *tchunk;
	uint8_t *town;      /* copy made by own_pending */
};

/* The background thread reads pipes whose socket never receives (to cut
 * off peers that talk anyway) and those of dropping protocols (SUB, BUS,
 * SURVEYOR), which must take messages in up to recv_buffer while the
 * application is elsewhere, as nanomsg's worker does. */
static bool bg_reads(struct spipe *sp)
{
	const struct proto_ops *proto = sp->base.sock->proto;
	return proto->send_only || proto->drop_when_full;
}

static uint32_t bg_events(struct spipe *sp)
{
	uint32_t ev = EPOLLRDHUP | EPOLLONESHOT;
	if (bg_reads(sp))
		ev |= EPOLLIN;
	return ev;
}

/* Frames queued behind the pending one (in cbuf or txq). */
static bool tx_queued(const struct spipe *sp)
{
	return sp->clen || sp->txq.count;
}

static void spipe_rearm_bg(struct spipe *sp)
{
	uint32_t ev = bg_events(sp);
	if ((sp->tpending && !sp->ttoken) || (!sp->tpending && tx_queued(sp)))
		ev |= EPOLLOUT;
	bg_watch_mod(&sp->watch, ev);
}

static void tx_release(struct spipe *sp)
{
	if (sp->tchunk)
		chunk_unref(sp->tchunk);
	free(sp->town);
	sp->tchunk = NULL;
	sp->town = NULL;
	sp->tpending = false;
	sp->ttoken = 0;
}

/* One non-blocking write of iov: the bytes the kernel took (0: it is
 * full), or -errno if the pipe died. */
static ssize_t write_iov(struct spipe *sp, struct iovec *iov, int n)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)n };
	for (;;) {
		ssize_t w = sendmsg(sp->base.fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w >= 0) {
			sock_stat(sp->base.sock, NNOFI_STAT_WRITES, 1);
			return w;
		}
		if (errno != EINTR)
			return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
	}
}

/* Write what remains of the pending frame; 0, or an errno if the pipe died. */
static int tx_flush(struct spipe *sp)
{
	while (sp->tpending) {
		struct iovec iov[2];
		int n = 0;
		if (sp->toff < sp->thdr_len) {
			iov[n].iov_base = sp->thdr + sp->toff;
			iov[n++].iov_len = sp->thdr_len - sp->toff;
		}
		size_t boff = sp->toff > sp->thdr_len ? sp->toff - sp->thdr_len : 0;
		if (boff < sp->tbody_len) {
			iov[n].iov_base = sp->tbody + boff;
			iov[n++].iov_len = sp->tbody_len - boff;
		}
		if (n == 0) {
			tx_release(sp);
			break;
		}
		ssize_t w = write_iov(sp, iov, n);
		if (w <= 0)
			return (int)-w;
		sp->toff += (size_t)w;
		if (sp->toff == sp->thdr_len + sp->tbody_len)
			tx_release(sp);
	}
	return 0;
}

/* Load a frame for m as the one being written (nothing written yet). */
static void tx_start(struct spipe *sp, const nnofi_msg *m)
{
	sp->thdr_len = frame_prefix_encode(sp->thdr, sp->ipc, m->hdr, m->hdr_len, m->len);
	sp->tbody = m->body;
	sp->tbody_len = m->len;
	sp->toff = 0;
	sp->tpending = true;
	sp->ttoken = 0;
}

/* Room in the send queue: up to send_buffer bytes wait behind the frame
 * the kernel is taking, so a burst does not block or drop at once. */
static bool tx_room(struct spipe *sp)
{
	return sp->txq.bytes + sp->clen < (size_t)sp->base.sock->send_buffer;
}

static void spipe_write_ready(struct pipe *p);

/* A burst's messages up to this size queue to go out together; bigger
 * ones are written at once, from the caller's buffer. The caller writes
 * a batch out itself once it holds TX_BATCH messages or is
 * BATCH_MAX_AGE_NS old, and before it blocks in a receive. The background
 * thread writes out what the burst's last sends left: it looks
 * TAIL_FLUSH_NS after a batch began, then, while the burst lasts, at
 * doubling intervals up to TAIL_FLUSH_MAX_NS, so a burst's last messages
 * wait at most that long. With the background thread writing every batch
 * instead, the two threads fought over the socket lock: 64 B PUSH ran
 * 3x slower. */
#define BURST_MSG_MAX (16 * 1024)
#define TX_BATCH 64
#define BATCH_MAX_AGE_NS (50 * 1000)
#define TAIL_FLUSH_NS (100 * 1000)
#define TAIL_FLUSH_MAX_NS (1000 * 1000)
/* cbuf: messages up to COALESCE_MAX bytes are copied in; it is written
 * out once it has less than room for one more. */
#define CBUF_SIZE (16 * 1024)
#define COALESCE_MAX 1024
#define CBUF_FULL (CBUF_SIZE - (FRAME_HEADER_MAX + NNOFI_MAX_HDR + COALESCE_MAX))

/* Copy m, framed, into cbuf if it is small and nothing is queued ahead. */
static bool coalesce(struct spipe *sp, const nnofi_msg *m)
{
	if (sp->tpending || sp->txq.count || m->len > COALESCE_MAX || sp->clen > CBUF_FULL)
		return false;
	if (!sp->cbuf && !(sp->cbuf = malloc(CBUF_SIZE)))
		return false;
	uint8_t *at = sp->cbuf + sp->clen;
	size_t prefix = frame_prefix_encode(at, sp->ipc, m->hdr, m->hdr_len, m->len);
	memcpy(at + prefix, m->body, m->len);
	sp->clen += prefix + m->len;
	return true;
}

/* Write cbuf out as far as the kernel takes it; 0, or an errno. */
static int cbuf_flush(struct spipe *sp)
{
	if (!sp->clen)
		return 0;
	size_t off = 0;
	while (off < sp->clen) {
		struct iovec iov = { .iov_base = sp->cbuf + off, .iov_len = sp->clen - off };
		ssize_t w = write_iov(sp, &iov, 1);
		if (w < 0)
			return (int)-w;
		if (w == 0)
			break; /* the kernel is full */
		off += (size_t)w;
	}
	memmove(sp->cbuf, sp->cbuf + off, sp->clen - off);
	sp->clen -= off;
	return 0;
}

/* Look again later, and less often while the burst lasts. */
static void tail_flush_later(struct spipe *sp, int64_t now)
{
	sp->tail_wait_ns = sp->tail_wait_ns * 2 > TAIL_FLUSH_MAX_NS ? TAIL_FLUSH_MAX_NS : sp->tail_wait_ns * 2;
	bg_timer_arm_ns(&sp->tail_flush, now + sp->tail_wait_ns);
}

static void tail_flush_fire(struct bg_timer *t)
{
	struct spipe *sp = (struct spipe *)((char *)t - offsetof(struct spipe, tail_flush));
	struct nnofi_sock *s = sp->base.sock;
	if (pthread_mutex_trylock(&s->mtx) != 0) {
		/* busy: most likely the sender, still sending; blocking
		 * here would stall it (3x fewer 64 B messages a second) */
		tail_flush_later(sp, now_ns());
		return;
	}
	int64_t now = now_ns();
	if (!sp->base.dead && !sp->tpending && tx_queued(sp)) {
		if (s->last_send_ns && now - s->last_send_ns < BATCH_MAX_AGE_NS) {
			/* the burst goes on: its own sends write its batches */
			tail_flush_later(sp, now);
			pthread_mutex_unlock(&s->mtx);
			return;
		}
		spipe_write_ready(&sp->base);
	}
	if (!sp->clen) { /* the burst is over */
		free(sp->cbuf);
		sp->cbuf = NULL;
	}
	sp->tail_armed = false;
	pthread_mutex_unlock(&s->mtx);
}

/* Queue m behind the pending frame or in a batch (sock locked). */
static int spipe_queue(struct spipe *sp, nnofi_msg *m, bool borrowed)
{
	struct nnofi_sock *s = sp->base.sock;
	struct pipe *p = &sp->base;
	if (!tx_room(sp)) {
		p->writable = false;
		return EAGAIN;
	}
	bool starts_batch = !sp->tpending && !tx_queued(sp);
	if (!coalesce(sp, m))
		msgq_push(&sp->txq, sock_keep_msg(s, m, borrowed));
	if (sp->tpending) { /* the kernel is full: its EPOLLOUT writes them */
		p->writable = tx_room(sp);
		return 0;
	}
	int64_t now = s->last_send_ns;
	if (starts_batch) {
		sp->batch_born_ns = now;
		s->batches_queued = true;
		if (!sp->tail_armed) {
			sp->tail_armed = true;
			sp->tail_wait_ns = TAIL_FLUSH_NS;
			bg_timer_arm_ns(&sp->tail_flush, now_ns() + TAIL_FLUSH_NS);
		}
	}
	/* a full batch goes out now: a caller waiting for room would wait
	 * for a write nobody makes */
	bool full = !tx_room(sp) || sp->clen > CBUF_FULL || (!s->corked && sp->txq.count >= TX_BATCH);
	if (full || (!s->corked && now - sp->batch_born_ns >= BATCH_MAX_AGE_NS))
		spipe_write_ready(p);
	else
		p->writable = true;
	return 0;
}

static int spipe_send(struct pipe *p, nnofi_msg *m, bool borrowed)
{
	struct spipe *sp = (struct spipe *)p;
	struct nnofi_sock *s = p->sock;
	if (p->dead)
		return EAGAIN;
	bool batch = s->corked || (s->send_burst && m->len <= BURST_MSG_MAX);
	if (batch && !sp->tpending && !tx_room(sp))
		spipe_write_ready(p); /* a batch is full: write it out together */
	if (p->dead)
		return EAGAIN;
	if (sp->tpending || tx_queued(sp) || batch)
		return spipe_queue(sp, m, borrowed);
	tx_start(sp, m);
	int err = tx_flush(sp);
	if (err) {
		tx_release(sp);
		sock_remove_pipe(s, p, true);
		return EAGAIN; /* the protocol picks another pipe or waits */
	}
	if (!sp->tpending)
		return 0;
	/* The kernel took part of it: finish later, from the caller's buffer
	 * while it waits (zero copy) or from our reference to the chunk. */
	if (borrowed) {
		sp->ttoken = s->send_token;
	} else {
		chunk_ref(m->chunk);
		sp->tchunk = m->chunk;
	}
	sock_poll_update(s, p, true);
	if (!sp->ttoken)
		spipe_rearm_bg(sp);
	return 0;
}

/* Write queued frames together, up to TX_BATCH per sendmsg; the one the
 * kernel takes in part becomes the pending frame. */
static int tx_flush_queue(struct spipe *sp)
{
	while (!sp->tpending && sp->txq.count) {
		struct iovec iov[2 * TX_BATCH];
		uint8_t fh[TX_BATCH][FRAME_HEADER_MAX + NNOFI_MAX_HDR];
		size_t total = 0;
		int k = 0, n = 0;
		for (nnofi_msg *m = sp->txq.head; m && k < TX_BATCH; m = m->next, k++) {
			size_t prefix = frame_prefix_encode(fh[k], sp->ipc, m->hdr, m->hdr_len, m->len);
			iov[n].iov_base = fh[k];
			iov[n++].iov_len = prefix;
			if (m->len) {
				iov[n].iov_base = m->body;
				iov[n++].iov_len = m->len;
			}
			total += prefix + m->len;
		}
		ssize_t w = write_iov(sp, iov, n);
		if (w <= 0)
			return (int)-w;
		size_t left = (size_t)w;
		while (left) {
			nnofi_msg *m = msgq_pop(&sp->txq);
			size_t size = frame_header_size(sp->ipc) + m->hdr_len + m->len;
			if (left < size) {
				tx_start(sp, m); /* the rest of it goes out first next time */
				chunk_ref(m->chunk);
				sp->tchunk = m->chunk;
				sp->toff = left;
				left = 0;
			} else {
				left -= size;
			}
			msg_free(m);
		}
		if ((size_t)w < total)
			return 0; /* the kernel is full */
	}
	return 0;
}

/* Write the pending frame, then the queued ones, as far as the kernel
 * takes them. */
static void spipe_write_ready(struct pipe *p)
{
	struct spipe *sp = (struct spipe *)p;
	int err = tx_flush(sp);
	if (!err && !sp->tpending)
		err = cbuf_flush(sp);
	if (!err && !sp->tpending && !sp->clen)
		err = tx_flush_queue(sp);
	if (err) {
		sock_remove_pipe(p->sock, p, true);
		return;
	}
	bool backlog = sp->tpending || tx_queued(sp); /* the kernel is full */
	sock_poll_update(p->sock, p, backlog);
	if (backlog && !sp->ttoken)
		spipe_rearm_bg(sp); /* nobody may be waiting: keep it moving */
	if (!p->writable && tx_room(sp))
		sock_pipe_writable(p->sock, p);
}

static size_t spipe_borrowing(struct pipe *p, uint64_t token)
{
	struct spipe *sp = (struct spipe *)p;
	if (!sp->tpending || !sp->ttoken || sp->ttoken != token)
		return 0;
	return sp->thdr_len + sp->tbody_len - sp->toff;
}

static void spipe_own_pending(struct pipe *p)
{
	struct spipe *sp = (struct spipe *)p;
	size_t boff = sp->toff > sp->thdr_len ? sp->toff - sp->thdr_len : 0;
	size_t rest = sp->tbody_len - boff;
	sp->town = malloc(rest ? rest : 1);
	die_on(sp->town == NULL, "out of memory");
	memcpy(sp->town, sp->tbody + boff, rest);
	sp->tbody = sp->town;
	sp->tbody_len = rest;
	if (sp->toff > sp->thdr_len)
		sp->toff = sp->thdr_len;
	sp->ttoken = 0;
	spipe_rearm_bg(sp);
}

/* Bad input or a broken connection: drop this pipe only, and count why
 * (reason: a NNOFI_STAT_ counter, or -1 for a plain error). */
static void spipe_fail(struct spipe *sp, int reason)
{
	if (reason >= 0)
		sock_stat(sp->base.sock, reason, 1);
	sock_remove_pipe(sp->base.sock, &sp->base, true);
}

/* Turn buffered bytes into messages; false if the pipe died. */
static bool parse_buffered(struct spipe *sp)
{
	struct nnofi_sock *s = sp->base.sock;
	while (!sp->rmsg) {
		uint8_t *f = sp->rbuf + sp->rstart;
		size_t have = sp->rend - sp->rstart, hsz;
		uint64_t len;
		enum frame_status st = frame_header_decode(f, have, sp->ipc, s->recv_max_size, &hsz, &len);
		if (st == FRAME_NEED_MORE)
			break;
		if (st != FRAME_OK) {
			spipe_fail(sp, st == FRAME_TOO_LARGE ? NNOFI_STAT_FRAMES_OVERSIZE
							     : NNOFI_STAT_FRAMES_MALFORMED);
			return false;
		}
		size_t avail = have - hsz;
		if (len <= avail) {
			nnofi_msg *m = msg_alloc((size_t)len);
			memcpy(m->body, f + hsz, (size_t)len);
			sp->rstart += hsz + (size_t)len;
			sock_deliver(s, &sp->base, m);
			if (sp->base.dead)
				return false;
			continue;
		}
		if (len + hsz <= RBUF_SIZE / 2)
			break; /* fits the buffer: read more */
		/* big: read the rest straight into the message body. Memory grows
		 * with the bytes that really arrive, so a peer that only claims a
		 * big frame costs little (and a length no machine could hold is
		 * a lie, even with recv_max_size -1). */
		size_t first = avail > FRAME_GROW_FIRST ? avail : FRAME_GROW_FIRST;
		nnofi_msg *m = len <= MAX_SANE_FRAME ? msg_try_alloc_growing(first < len ? first : (size_t)len, (size_t)len) : NULL;
		if (!m) {
			spipe_fail(sp, NNOFI_STAT_FRAMES_OVERSIZE);
			return false;
		}
		memcpy(m->body, f + hsz, avail);
		sp->rcap = m->len;
		m->len = (size_t)len;
		sp->rgot = avail;
		sp->rmsg = m;
		sp->rstart = sp->rend = 0;
	}
	if (sp->rstart == sp->rend)
		sp->rstart = sp->rend = 0;
	return true;
}

/* Double the room of the big message being read (up to its length). */
static bool grow_rmsg(struct spipe *sp)
{
	size_t cap = sp->rcap * 2 < sp->rmsg->len ? sp->rcap * 2 : sp->rmsg->len;
	if (!msg_try_resize(sp->rmsg, cap))
		return false;
	sp->rcap = cap;
	return true;
}

/* Read and deliver what the socket has, up to a turn's budget; stop at a
 * full receive buffer unless past_full_buffer (the peer's last bytes). */
static void read_in(struct spipe *sp, bool past_full_buffer)
{
	struct pipe *p = &sp->base;
	size_t budget = READ_BUDGET;
	while (!p->dead) {
		if (!parse_buffered(sp))
			return;
		if (p->sock->reads_paused && !past_full_buffer)
			return; /* the receive buffer is full: the socket's bytes wait */
		uint8_t *dst;
		size_t want;
		if (sp->rmsg) {
			if (sp->rgot == sp->rcap && !grow_rmsg(sp)) {
				spipe_fail(sp, NNOFI_STAT_FRAMES_OVERSIZE);
				return;
			}
			dst = sp->rmsg->body + sp->rgot;
			want = sp->rcap - sp->rgot;
		} else {
			if (sp->rstart > 0) {
				memmove(sp->rbuf, sp->rbuf + sp->rstart, sp->rend - sp->rstart);
				sp->rend -= sp->rstart;
				sp->rstart = 0;
			}
			dst = sp->rbuf + sp->rend;
			want = RBUF_SIZE - sp->rend;
		}
		ssize_t n = want ? read(p->fd, dst, want) : 0;
		if (n == 0) {
			sock_remove_pipe(p->sock, p, false); /* orderly close by the peer */
			return;
		}
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				spipe_fail(sp, -1);
			return;
		}
		if (sp->rmsg) {
			sp->rgot += (size_t)n;
			if (sp->rgot == sp->rmsg->len) {
				nnofi_msg *m = sp->rmsg;
				sp->rmsg = NULL;
				sock_deliver(p->sock, p, m);
			}
		} else {
			sp->rend += (size_t)n;
		}
		if ((size_t)n < want) {
			parse_buffered(sp); /* drained the socket for now */
			return;
		}
		if (budget <= (size_t)n)
			return; /* let other pipes have a turn; level-triggered */
		budget -= (size_t)n;
	}
}

static void spipe_read_ready(struct pipe *p)
{
	read_in((struct spipe *)p, false);
}

static void spipe_close(struct pipe *p)
{
	struct spipe *sp = (struct spipe *)p;
	bg_watch_del(&sp->watch);
	bg_timer_cancel(&sp->tail_flush);
	sp->tail_armed = false;
	close(p->fd);
	p->fd = -1;
	tx_release(sp);
	msgq_clear(&sp->txq);
	free(sp->cbuf);
	sp->cbuf = NULL;
	sp->clen = 0;
	msg_free(sp->rmsg);
	sp->rmsg = NULL;
}

static void spipe_destroy(struct pipe *p)
{
	struct spipe *sp = (struct spipe *)p;
	/* a tail flush that found the socket busy during close re-armed: the
	 * background thread runs this, so no flush is running now */
	bg_timer_cancel(&sp->tail_flush);
	free(sp->rbuf);
	free(sp);
}

static void spipe_bg_event(struct bg_watch *w, uint32_t events)
{
	struct spipe *sp = (struct spipe *)((char *)w - offsetof(struct spipe, watch));
	struct nnofi_sock *s = sp->base.sock;
	pthread_mutex_lock(&s->mtx);
	if (!sp->base.dead) {
		if (events & EPOLLOUT)
			spipe_write_ready(&sp->base);
		if (!sp->base.dead && (events & EPOLLIN) && bg_reads(sp))
			spipe_read_ready(&sp->base);
		if (!sp->base.dead && (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
			/* deliver what the peer sent before it went, then drop it:
			 * past a full receive buffer too, as nothing else will
			 * read it (the kernel's buffer bounds it) */
			for (int i = 0; i < 1024 && !sp->base.dead; i++)
				read_in(sp, true);
			if (!sp->base.dead)
				spipe_fail(sp, -1);
		}
		if (!sp->base.dead)
			spipe_rearm_bg(sp);
	}
	pthread_mutex_unlock(&s->mtx);
}

/* A TCP peer that vanished leaves the connection half-open and an idle
 * pipe never learns: keepalive probes after 1 s of silence, and the kernel
 * ends the connection when one goes unanswered for 1 s (the bg watch then
 * sees the error). ipc peers cannot vanish unnoticed. */
static void spipe_probe(struct pipe *p)
{
	struct spipe *sp = (struct spipe *)p;
	if (sp->ipc || sp->probing || p->fd < 0)
		return;
	int one = 1;
	setsockopt(p->fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof(one));
	setsockopt(p->fd, IPPROTO_TCP, TCP_KEEPIDLE, &one, sizeof(one));
	setsockopt(p->fd, IPPROTO_TCP, TCP_KEEPINTVL, &one, sizeof(one));
	setsockopt(p->fd, IPPROTO_TCP, TCP_KEEPCNT, &one, sizeof(one));
	sp->probing = true;
}

static const struct pipe_ops spipe_ops = {
	.send = spipe_send,
	.read_ready = spipe_read_ready,
	.write_ready = spipe_write_ready,
	.close = spipe_close,
	.borrowing = spipe_borrowing,
	.own_pending = spipe_own_pending,
	.destroy = spipe_destroy,
	.probe = spipe_probe,
};

/* Attach a connected, handshaken fd to the socket (sock locked). */
static bool spipe_attach(struct endpoint *ep, int fd)
{
	struct nnofi_sock *s = ep->sock;
	struct spipe *sp = calloc(1, sizeof(*sp));
	uint8_t *rbuf = malloc(RBUF_SIZE);
	if (!sp || !rbuf) {
		free(sp);
		free(rbuf);
		return false;
	}
	sp->rbuf = rbuf;
	sp->ipc = ep->url.scheme == URL_IPC;
	sp->base.sock = s;
	sp->base.ops = &spipe_ops;
	sp->base.id = sock_new_pipe_id(s);
	sp->base.fd = fd;
	sp->base.ep = ep;
	sp->base.writable = true;
	sp->watch.fd = fd;
	sp->watch.on_event = spipe_bg_event;
	sp->tail_flush.fire = tail_flush_fire;
	if (!sock_add_pipe(s, &sp->base)) {
		free(rbuf);
		free(sp);
		return false;
	}
	sock_ref(s);
	if (bg_watch_add(&sp->watch, bg_events(sp)) != 0)
		sock_remove_pipe(s, &sp->base, true);
	return true;
}

/* ---- handshake --------------------------------------------------------- */

struct handshake {
	struct bg_watch watch;
	struct bg_timer timeout;
	struct endpoint *ep;
	int fd;
	uint8_t got[8];
	size_t ngot;
	bool dead;
	struct handshake *next; /* in its endpoint's list */
};

struct stream_ep {
	struct bg_watch watch; /* listening or connecting fd */
	struct endpoint *ep;
	int fd;
	bool stopped;
	bool accept_paused; /* listener: out of fds, watch removed */
	struct bg_timer accept_retry;
	/* ipc listener: the socket file it made, removed on stop if it is
	 * still that file */
	char unlink_path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	dev_t file_dev;
	ino_t file_ino;
	struct handshake *handshakes;
};

static void dial(struct stream_ep *se);


static void free_handshake(void *arg)
{
	free(arg);
}

/* Finish a handshake (sock locked): hand the fd to a pipe, or close it. */
static void handshake_end(struct handshake *hs, bool ok)
{
	struct stream_ep *se = hs->ep->tdata;
	hs->dead = true;
	bg_timer_cancel(&hs->timeout);
	bg_watch_del(&hs->watch);
	for (struct handshake **pp = &se->handshakes; *pp; pp = &(*pp)->next) {
		if (*pp == hs) {
			*pp = hs->next;
			break;
		}
	}
	if (!ok || se->stopped || !spipe_attach(hs->ep, hs->fd)) {
		close(hs->fd);
		sock_ep_redial_later(se->ep);
	}
	bg_defer(free_handshake, hs);
}

static void handshake_event(struct bg_watch *w, uint32_t events)
{
	struct handshake *hs = (struct handshake *)w;
	struct nnofi_sock *s = hs->ep->sock;
	(void)events;
	pthread_mutex_lock(&s->mtx);
	if (!hs->dead) {
		ssize_t n = read(hs->fd, hs->got + hs->ngot, 8 - hs->ngot);
		if (n > 0)
			hs->ngot += (size_t)n;
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
			handshake_end(hs, false);
		} else if (hs->ngot == 8) {
			int peer = sp_header_decode(hs->got);
			bool ok = peer >= 0 && sock_peer_compatible(s, peer);
			if (!ok)
				sock_stat(s, NNOFI_STAT_HANDSHAKES_REJECTED, 1);
			handshake_end(hs, ok);
		}
	}
	pthread_mutex_unlock(&s->mtx);
}

static void handshake_expired(struct bg_timer *t)
{
	struct handshake *hs = (struct handshake *)((char *)t - offsetof(struct handshake, timeout));
	struct nnofi_sock *s = hs->ep->sock;
	pthread_mutex_lock(&s->mtx);
	if (!hs->dead) {
		sock_stat(s, NNOFI_STAT_HANDSHAKE_TIMEOUTS, 1);
		handshake_end(hs, false);
	}
	pthread_mutex_unlock(&s->mtx);
}

/* Start the SP header exchange on a connected fd (sock locked). */
static void handshake_start(struct stream_ep *se, int fd)
{
	struct nnofi_sock *s = se->ep->sock;
	uint8_t hdr[SP_HEADER_SIZE];
	sp_header_encode(hdr, s->proto->id);
	struct handshake *hs = calloc(1, sizeof(*hs));
	if (!hs || send(fd, hdr, 8, MSG_NOSIGNAL | MSG_DONTWAIT) != 8) {
		free(hs);
		close(fd);
		sock_ep_redial_later(se->ep);
		return;
	}
	hs->ep = se->ep;
	hs->fd = fd;
	hs->watch.fd = fd;
	hs->watch.on_event = handshake_event;
	hs->timeout.fire = handshake_expired;
	hs->next = se->handshakes;
	se->handshakes = hs;
	if (bg_watch_add(&hs->watch, EPOLLIN) != 0) {
		handshake_end(hs, false);
		return;
	}
	bg_timer_arm(&hs->timeout, now_ms() + HANDSHAKE_TIMEOUT_MS);
}

/* ---- listeners ------------------------------------------------------------ */

/* How accept() fails when the process (EMFILE) or the system (ENFILE)
 * has no fd left, or the kernel no memory; the connection stays queued. */
static bool out_of_resources(int err)
{
	return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM;
}

/* The listening fd keeps polling readable while connections wait, so
 * retrying at once would spin: stop watching it for a while (sock locked). */
static void pause_accepting(struct stream_ep *se)
{
	sock_stat(se->ep->sock, NNOFI_STAT_ACCEPT_ERRORS, 1);
	bg_watch_del(&se->watch);
	se->accept_paused = true;
	bg_timer_arm(&se->accept_retry, now_ms() + ACCEPT_RETRY_MS);
}

static void accept_retry_fire(struct bg_timer *t)
{
	struct stream_ep *se = (struct stream_ep *)((char *)t - offsetof(struct stream_ep, accept_retry));
	struct nnofi_sock *s = se->ep->sock;
	pthread_mutex_lock(&s->mtx);
	if (!se->stopped && se->accept_paused) {
		se->accept_paused = false;
		if (bg_watch_add(&se->watch, EPOLLIN) != 0)
			pause_accepting(se);
	}
	pthread_mutex_unlock(&s->mtx);
}

static void listener_event(struct bg_watch *w, uint32_t events)
{
	struct stream_ep *se = (struct stream_ep *)w;
	struct nnofi_sock *s = se->ep->sock;
	(void)events;
	pthread_mutex_lock(&s->mtx);
	for (int i = 0; i < 64 && !se->stopped; i++) {
		int fd = accept4(se->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (out_of_resources(errno))
				pause_accepting(se);
			break; /* EAGAIN (or a peer gone already): wait for the next event */
		}
		tune_fd(fd, se->ep->url.scheme == URL_TCP, se->ep->sock);
		handshake_start(se, fd);
	}
	pthread_mutex_unlock(&s->mtx);
}

/* ipc: bind over a socket file only when nobody listens on it any more
 * (its process died without removing it). A live listener's file, and
 * whatever is not a socket (a regular file, a symlink), stay: bind then
 * fails with EADDRINUSE. */
static void remove_stale_ipc(const union sockaddr_any *addr, socklen_t len)
{
	struct stat before, now;
	if (lstat(addr->un.sun_path, &before) != 0 || !S_ISSOCK(before.st_mode))
		return;
	/* non-blocking: a live listener with a full backlog answers EAGAIN
	 * (live) instead of holding bind up */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return;
	bool stale = connect(fd, &addr->sa, len) != 0 && errno == ECONNREFUSED;
	close(fd);
	if (stale && lstat(addr->un.sun_path, &now) == 0 && now.st_dev == before.st_dev &&
	    now.st_ino == before.st_ino)
		unlink(addr->un.sun_path);
}

/* The socket file bind just made gets the socket's ipc_permissions before
 * listen (until then a connect is refused, so no peer gets in under the
 * umask's bits); its identity is kept so that stop removes this file and
 * never one that replaced it. */
static int ipc_file_setup(struct stream_ep *se, const char *path)
{
	struct nnofi_sock *s = se->ep->sock;
	pthread_mutex_lock(&s->mtx);
	mode_t mode = (mode_t)s->ipc_permissions;
	pthread_mutex_unlock(&s->mtx);
	struct stat st;
	if (chmod(path, mode) != 0 || lstat(path, &st) != 0)
		return errno;
	strcpy(se->unlink_path, path);
	se->file_dev = st.st_dev;
	se->file_ino = st.st_ino;
	return 0;
}

static void ipc_file_remove(struct stream_ep *se)
{
	struct stat st;
	if (se->unlink_path[0] && lstat(se->unlink_path, &st) == 0 && st.st_dev == se->file_dev &&
	    st.st_ino == se->file_ino)
		unlink(se->unlink_path);
}

static void format_url(struct endpoint *ep, const union sockaddr_any *addr)
{
	if (ep->url.scheme != URL_TCP)
		return;
	const char *host = ep->url.host;
	int port = ntohs(addr->sa.sa_family == AF_INET6 ? addr->in6.sin6_port : addr->in4.sin_port);
	if (!strcmp(host, "*"))
		host = "0.0.0.0";
	if (strchr(host, ':'))
		snprintf(ep->real_url, sizeof(ep->real_url), "tcp://[%s]:%d", host, port);
	else
		snprintf(ep->real_url, sizeof(ep->real_url), "tcp://%s:%d", host, port);
}

static void stream_stop(struct endpoint *ep);
static void stream_dial(struct endpoint *ep);
static const struct ep_ops stream_ep_ops = { .stop = stream_stop, .dial = stream_dial };

static struct stream_ep *stream_ep_new(struct endpoint *ep)
{
	struct stream_ep *se = calloc(1, sizeof(*se));
	if (!se)
		return NULL;
	se->ep = ep;
	se->fd = -1;
	ep->tdata = se;
	ep->ops = &stream_ep_ops;
	return se;
}

/* Bind and listen on se->fd; ipc files get their permissions between
 * the two. On failure the fd is closed and the file it made removed. */
static int bind_and_listen(struct stream_ep *se, union sockaddr_any *addr, socklen_t alen)
{
	bool ipc = addr->sa.sa_family == AF_UNIX;
	int rc = 0;
	if (ipc) {
		remove_stale_ipc(addr, alen);
	} else {
		int one = 1;
		setsockopt(se->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	}
	if (bind(se->fd, &addr->sa, alen) != 0)
		rc = errno;
	else if (ipc && (rc = ipc_file_setup(se, addr->un.sun_path)) != 0)
		unlink(addr->un.sun_path);
	else if (listen(se->fd, 128) != 0)
		rc = errno;
	if (rc) {
		ipc_file_remove(se);
		close(se->fd);
		se->fd = -1;
	}
	return rc;
}

int stream_bind(struct endpoint *ep)
{
	union sockaddr_any addr;
	socklen_t alen;
	int rc = resolve(&ep->url, true, &addr, &alen);
	if (rc)
		return rc;
	struct stream_ep *se = stream_ep_new(ep);
	if (!se)
		return ENOMEM;
	se->fd = socket(addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (se->fd < 0 || (rc = bind_and_listen(se, &addr, alen)) != 0) {
		rc = rc ? rc : errno;
		free(se);
		return rc;
	}
	socklen_t blen = sizeof(addr);
	getsockname(se->fd, &addr.sa, &blen);
	format_url(ep, &addr);
	se->watch.fd = se->fd;
	se->watch.on_event = listener_event;
	se->accept_retry.fire = accept_retry_fire;
	if ((rc = bg_watch_add(&se->watch, EPOLLIN)) != 0) {
		ipc_file_remove(se);
		close(se->fd);
		free(se);
		return rc;
	}
	return 0;
}

/* ---- dialers --------------------------------------------------------------- */

static void dial_event(struct bg_watch *w, uint32_t events)
{
	struct stream_ep *se = (struct stream_ep *)w;
	struct nnofi_sock *s = se->ep->sock;
	(void)events;
	pthread_mutex_lock(&s->mtx);
	if (!se->stopped && se->fd >= 0) {
		int err = 0;
		socklen_t len = sizeof(err);
		getsockopt(se->fd, SOL_SOCKET, SO_ERROR, &err, &len);
		int fd = se->fd;
		bg_watch_del(&se->watch);
		se->fd = -1;
		if (err) {
			close(fd);
			sock_ep_redial_later(se->ep);
		} else {
			handshake_start(se, fd);
		}
	}
	pthread_mutex_unlock(&s->mtx);
}

/* Start a non-blocking connect (sock locked). */
static void dial(struct stream_ep *se)
{
	if (se->stopped || se->fd >= 0)
		return;
	union sockaddr_any addr;
	socklen_t alen;
	if (resolve(&se->ep->url, false, &addr, &alen) != 0) {
		sock_ep_redial_later(se->ep); /* name may resolve later */
		return;
	}
	int fd = socket(addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		sock_ep_redial_later(se->ep);
		return;
	}
	tune_fd(fd, se->ep->url.scheme == URL_TCP, se->ep->sock);
	if (connect(fd, &addr.sa, alen) == 0) {
		handshake_start(se, fd);
		return;
	}
	if (errno != EINPROGRESS) {
		close(fd);
		sock_ep_redial_later(se->ep);
		return;
	}
	se->fd = fd;
	se->watch.fd = fd;
	se->watch.on_event = dial_event;
	if (bg_watch_add(&se->watch, EPOLLOUT | EPOLLONESHOT) != 0) {
		close(fd);
		se->fd = -1;
		sock_ep_redial_later(se->ep);
	}
}

static void stream_dial(struct endpoint *ep)
{
	dial(ep->tdata);
}

int stream_connect(struct endpoint *ep)
{
	union sockaddr_any addr;
	socklen_t alen;
	if (ep->url.scheme == URL_TCP && !strcmp(ep->url.host, "*"))
		return EINVAL;
	if (ep->url.scheme == URL_TCP && ep->url.port == 0)
		return EINVAL;
	if (ep->url.ipv6_literal && resolve(&ep->url, false, &addr, &alen) != 0)
		return EINVAL;
	struct stream_ep *se = stream_ep_new(ep);
	if (!se)
		return ENOMEM;
	pthread_mutex_lock(&ep->sock->mtx);
	dial(se);
	pthread_mutex_unlock(&ep->sock->mtx);
	return 0;
}

/* ---- stop ------------------------------------------------------------------ */

static void free_stream_ep(void *arg)
{
	free(arg);
}

static void stream_stop(struct endpoint *ep)
{
	struct stream_ep *se = ep->tdata;
	struct nnofi_sock *s = ep->sock;
	pthread_mutex_lock(&s->mtx);
	se->stopped = true;
	bg_timer_cancel(&se->accept_retry); /* a firing one sees stopped */
	if (se->fd >= 0) {
		bg_watch_del(&se->watch);
		close(se->fd);
		se->fd = -1;
	}
	while (se->handshakes)
		handshake_end(se->handshakes, false);
	ipc_file_remove(se);
	pthread_mutex_unlock(&s->mtx);
	bg_defer(free_stream_ep, se);
}
