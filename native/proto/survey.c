/* SURVEYOR/RESPONDENT: a survey goes to every respondent; answers count
 * until survey_time passes, then recv raises Timeout. A new survey
 * cancels the old one and answers to a stale survey are dropped. Each
 * RESPONDENT hop pushes its pipe id onto the backtrace like REP. */
#include <errno.h>
#include <string.h>

#include "core.h"


struct surveyor {
	uint32_t next_id, id;
	bool active;
	int64_t deadline;
};

static void surveyor_init(struct nnofi_sock *s)
{
	struct surveyor *st = s->proto_data;
	st->next_id = proto_first_id(s);
}

static int surveyor_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed)
{
	struct surveyor *st = s->proto_data;
	recvq_clear(s); /* answers to the old survey */
	st->id = proto_next_id(&st->next_id);
	st->active = true;
	st->deadline = now_ms() + s->survey_time;
	put_u32be(m->hdr, st->id);
	m->hdr_len = 4;
	proto_broadcast(s, m, borrowed, 0);
	return 0;
}

static void surveyor_deliver(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m)
{
	struct surveyor *st = s->proto_data;
	(void)p;
	if (m->len < 4 || !st->active || get_u32be(m->body) != st->id) {
		proto_drop(s, m, -1); /* stale or stray */
		return;
	}
	m->body += 4;
	m->len -= 4;
	sock_enqueue(s, m);
}

static nnofi_msg *surveyor_recv(struct nnofi_sock *s, int *err)
{
	struct surveyor *st = s->proto_data;
	if (!st->active) {
		*err = EPROTO;
		return NULL;
	}
	if (now_ms() >= st->deadline) {
		st->active = false; /* the survey is over, late answers are dropped */
		recvq_clear(s);
		*err = ETIMEDOUT;
		return NULL;
	}
	return sock_dequeue(s);
}

static int64_t surveyor_tick(struct nnofi_sock *s, int64_t now)
{
	struct surveyor *st = s->proto_data;
	(void)now;
	return st->active ? st->deadline : INT64_MAX;
}

const struct proto_ops proto_surveyor = {
	.id = NNOFI_SURVEYOR,
	.peer_id = NNOFI_RESPONDENT,
	.data_size = sizeof(struct surveyor),
	.init = surveyor_init,
	.pipe_add = proto_accept_pipe,
	.pipe_remove = proto_forget_pipe,
	.send = surveyor_send,
	.deliver = surveyor_deliver,
	.recv = surveyor_recv,
	.tick = surveyor_tick,
	.drop_when_full = true,
};

/* ---- RESPONDENT: replies like REP (reqrep.c), but drops an answer
 * its pipe cannot take rather than wait ----------------------------- */

static int respondent_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed)
{
	struct replier *st = s->proto_data;
	if (!st->have_bt)
		return EPROTO;
	st->have_bt = false;
	m->hdr_len = st->bt_len;
	memcpy(m->hdr, st->bt, st->bt_len);
	return xrep_send(s, m, borrowed); /* routes by the pipe id word */
}

const struct proto_ops proto_respondent = {
	.id = NNOFI_RESPONDENT,
	.peer_id = NNOFI_SURVEYOR,
	.data_size = sizeof(struct replier),
	.pipe_add = proto_accept_pipe,
	.pipe_remove = proto_forget_pipe,
	.send = respondent_send,
	.deliver = replier_deliver,
	.recv = replier_recv,
};

/* ---- raw, for devices ------------------------------------------------ */

static int xsurveyor_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed)
{
	proto_broadcast(s, m, borrowed, 0);
	return 0;
}

static void xsurveyor_deliver(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m)
{
	(void)p;
	if (!proto_take_backtrace(m, 0)) {
		proto_drop(s, m, NNOFI_STAT_HEADERS_MALFORMED);
		return;
	}
	sock_enqueue(s, m);
}

const struct proto_ops proto_xsurveyor = {
	.id = NNOFI_SURVEYOR,
	.peer_id = NNOFI_RESPONDENT,
	.pipe_add = proto_accept_pipe,
	.pipe_remove = proto_forget_pipe,
	.send = xsurveyor_send,
	.deliver = xsurveyor_deliver,
	.recv = proto_queue_recv,
	.drop_when_full = true,
};

const struct proto_ops proto_xrespondent = {
	.id = NNOFI_RESPONDENT,
	.peer_id = NNOFI_SURVEYOR,
	.pipe_add = proto_accept_pipe,
	.pipe_remove = proto_forget_pipe,
	.send = xrep_send,
	.deliver = replier_deliver,
	.recv = proto_queue_recv,
};
