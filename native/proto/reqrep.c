/* REQ/REP with nanomsg semantics.
 *
 * REQ tags each request with a 32-bit id (top bit set), keeps a copy,
 * and resends it every req_resend_ivl, or at once when its pipe dies,
 * until the reply with that id arrives; a new request cancels the old.
 * REP pushes the id of the pipe a request came on to its backtrace and
 * routes the reply back along it. */
#include <errno.h>
#include <string.h>

#include "core.h"

struct req {
	uint32_t next_id;
	uint32_t cursor;
	nnofi_msg *request; /* hdr holds the id */
	uint32_t id;
	bool sent;
	uint32_t sent_pipe;
	int64_t resend_at;
};

static void req_init(struct nnofi_sock *s)
{
	struct req *st = s->proto_data;
	st->next_id = proto_first_id(s);
}

static void req_cancel(struct nnofi_sock *s)
{
	struct req *st = s->proto_data;
	msg_free(st->request);
	st->request = NULL;
	st->sent = false;
	recvq_clear(s);
}

static void req_fini(struct nnofi_sock *s)
{
	req_cancel(s);
}

/* Send request m (st->request, or the caller's borrowed copy of it) to
 * the next peer that can take it. */
static void req_try_send_msg(struct nnofi_sock *s, nnofi_msg *m, bool borrowed)
{
	struct req *st = s->proto_data;
	st->sent = false; /* also keeps pipe_remove from recursing here */
	struct pipe *p = proto_next_writable(s, &st->cursor);
	if (!p || proto_send_on(s, p, m, borrowed) != 0) /* names the pipe for a borrowed body's wait */
		return;
	st->sent = true;
	st->sent_pipe = p->id;
	st->resend_at = now_ms() + s->req_resend_ivl;
	sock_timer_arm(s, st->resend_at); /* resend even if nobody waits */
}

static void req_try_send(struct nnofi_sock *s)
{
	struct req *st = s->proto_data;
	req_try_send_msg(s, st->request, false);
}

/* The request goes out first, from the caller's buffer; the copy kept for
 * resends is made after, off the round trip's path (a pipe that queued
 * the request made that copy already: sock_keep_msg shares it). */
static int req_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed)
{
	struct req *st = s->proto_data;
	req_cancel(s);
	st->id = proto_next_id(&st->next_id);
	nnofi_msg tagged = *m;
	put_u32be(tagged.hdr, st->id);
	tagged.hdr_len = 4;
	req_try_send_msg(s, &tagged, borrowed);
	st->request = sock_keep_msg(s, &tagged, borrowed);
	return 0; /* queued until a peer can take it, like nanomsg */
}

static void req_pipe_remove(struct nnofi_sock *s, struct pipe *p)
{
	struct req *st = s->proto_data;
	if (st->request && st->sent && st->sent_pipe == p->id)
		req_try_send(s); /* the request may be lost: resend elsewhere now */
}

static void req_pipe_writable(struct nnofi_sock *s, struct pipe *p)
{
	struct req *st = s->proto_data;
	(void)p;
	if (st->request && !st->sent)
		req_try_send(s);
}

static void req_deliver(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m)
{
	struct req *st = s->proto_data;
	(void)p;
	if (m->len < 4 || !st->request || get_u32be(m->body) != st->id || s->queued) {
		proto_drop(s, m, -1); /* stale or stray reply */
		return;
	}
	m->body += 4;
	m->len -= 4;
	sock_enqueue(s, m);
}

static nnofi_msg *req_recv(struct nnofi_sock *s, int *err)
{
	struct req *st = s->proto_data;
	if (!st->request) {
		*err = EPROTO;
		return NULL;
	}
	nnofi_msg *m = sock_dequeue(s);
	if (m) {
		msg_free(st->request);
		st->request = NULL;
		st->sent = false;
	}
	return m;
}

static int64_t req_tick(struct nnofi_sock *s, int64_t now)
{
	struct req *st = s->proto_data;
	if (!st->request)
		return INT64_MAX;
	if (!st->sent || now >= st->resend_at)
		req_try_send(s);
	return st->sent ? st->resend_at : INT64_MAX;
}

const struct proto_ops proto_req = {
	.id = NNOFI_REQ,
	.peer_id = NNOFI_REP,
	.data_size = sizeof(struct req),
	.init = req_init,
	.fini = req_fini,
	.pipe_add = proto_accept_pipe,
	.pipe_remove = req_pipe_remove,
	.pipe_writable = req_pipe_writable,
	.send = req_send,
	.deliver = req_deliver,
	.recv = req_recv,
	.tick = req_tick,
};

/* ---- REP, and the replying side RESPONDENT shares ------------------- */

void replier_deliver(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m)
{
	put_u32be(m->hdr, p->id);
	if (!proto_take_backtrace(m, 4)) {
		proto_drop(s, m, NNOFI_STAT_HEADERS_MALFORMED); /* no request id, or too many hops */
		return;
	}
	sock_enqueue(s, m);
}

/* Hand a request to the user, keeping its way back for the reply. */
nnofi_msg *replier_recv(struct nnofi_sock *s, int *err)
{
	struct replier *st = s->proto_data;
	(void)err;
	nnofi_msg *m = sock_dequeue(s);
	if (m) {
		memcpy(st->bt, m->hdr, m->hdr_len);
		st->bt_len = m->hdr_len;
		st->have_bt = true;
	}
	return m;
}

static int rep_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed)
{
	struct replier *st = s->proto_data;
	if (!st->have_bt)
		return EPROTO;
	struct pipe *p = sock_find_pipe(s, get_u32be(st->bt));
	if (p && !p->writable)
		return EAGAIN; /* wait for room on the asker's pipe */
	st->have_bt = false;
	if (!p) {
		sock_stat(s, NNOFI_STAT_MSGS_DROPPED, 1);
		return 0; /* the asker is gone: nanomsg drops the reply */
	}
	m->hdr_len = st->bt_len - 4;
	memcpy(m->hdr, st->bt + 4, m->hdr_len);
	int rc = proto_send_on(s, p, m, borrowed);
	if (rc)
		st->have_bt = true;
	return rc;
}

/* A reply waits for room on the asker's pipe only (none: it fails; the
 * asker gone: it is dropped). */
static bool rep_send_waits(struct nnofi_sock *s)
{
	struct replier *st = s->proto_data;
	if (!st->have_bt)
		return false;
	struct pipe *p = sock_find_pipe(s, get_u32be(st->bt));
	return p && !p->writable;
}

const struct proto_ops proto_rep = {
	.id = NNOFI_REP,
	.peer_id = NNOFI_REQ,
	.data_size = sizeof(struct replier),
	.pipe_add = proto_accept_pipe,
	.pipe_remove = proto_forget_pipe,
	.send = rep_send,
	.deliver = replier_deliver,
	.recv = replier_recv,
	.send_waits = rep_send_waits,
};

/* ---- raw REQ/REP (and RESPONDENT) for devices ------------------------- */

/* Raw REQ: sends what it is given (the header is the backtrace a device
 * received), round-robin; replies come up with their backtrace. */
struct xreq {
	uint32_t cursor;
};

static int xreq_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed)
{
	struct xreq *st = s->proto_data;
	return proto_send_round_robin(s, &st->cursor, m, borrowed);
}

static void raw_deliver_backtrace(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m)
{
	(void)p;
	if (!proto_take_backtrace(m, 0)) {
		proto_drop(s, m, NNOFI_STAT_HEADERS_MALFORMED);
		return;
	}
	sock_enqueue(s, m);
}

/* Raw REP/RESPONDENT: the header's first word names the pipe to answer
 * on; a reply nobody can take now is dropped, as nanomsg's xrep does. */
int xrep_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed)
{
	struct pipe *p = m->hdr_len >= 4 ? sock_find_pipe(s, get_u32be(m->hdr)) : NULL;
	if (!p || !p->writable) {
		sock_stat(s, NNOFI_STAT_MSGS_DROPPED, 1);
		return 0;
	}
	nnofi_msg out = *m;
	out.hdr_len = m->hdr_len - 4;
	memcpy(out.hdr, m->hdr + 4, out.hdr_len);
	if (proto_send_on(s, p, &out, borrowed) != 0)
		sock_stat(s, NNOFI_STAT_MSGS_DROPPED, 1);
	else
		s->sent_pipe = p->id;
	return 0;
}

const struct proto_ops proto_xreq = {
	.id = NNOFI_REQ,
	.peer_id = NNOFI_REP,
	.data_size = sizeof(struct xreq),
	.pipe_add = proto_accept_pipe,
	.pipe_remove = proto_forget_pipe,
	.send = xreq_send,
	.deliver = raw_deliver_backtrace,
	.recv = proto_queue_recv,
	.send_waits = proto_no_writable_pipe,
};

const struct proto_ops proto_xrep = {
	.id = NNOFI_REP,
	.peer_id = NNOFI_REQ,
	.pipe_add = proto_accept_pipe,
	.pipe_remove = proto_forget_pipe,
	.send = xrep_send,
	.deliver = replier_deliver,
	.recv = proto_queue_recv,
};
