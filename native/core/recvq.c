/* The socket's receive queue, fair across pipes: each pipe keeps what it
 * delivered in its own queue and the pipes that have something are served
 * in turn, so one busy sender cannot starve the others (nanomsg's fair
 * queueing). Messages of a pipe that has gone stay receivable, first. */
#include "core.h"

static void ready_push(struct nnofi_sock *s, struct pipe *p)
{
	p->ready_next = NULL;
	if (s->ready_tail)
		s->ready_tail->ready_next = p;
	else
		s->ready_head = p;
	s->ready_tail = p;
	p->in_ready = true;
}

static void ready_remove(struct nnofi_sock *s, struct pipe *p)
{
	struct pipe *prev = NULL;
	for (struct pipe *q = s->ready_head; q; prev = q, q = q->ready_next) {
		if (q != p)
			continue;
		if (prev)
			prev->ready_next = p->ready_next;
		else
			s->ready_head = p->ready_next;
		if (s->ready_tail == p)
			s->ready_tail = prev;
		break;
	}
	p->in_ready = false;
	p->ready_next = NULL;
}

void recvq_push(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m)
{
	if (p) {
		msgq_push(&p->inq, m);
		if (!p->in_ready)
			ready_push(s, p);
	} else {
		msgq_push(&s->rq, m);
	}
	s->queued++;
	s->queued_bytes += m->len;
}

/* The next message for the user: first those of pipes that have gone,
 * then one from each pipe in turn. */
nnofi_msg *sock_dequeue(struct nnofi_sock *s)
{
	nnofi_msg *m = msgq_pop(&s->rq);
	if (!m) {
		struct pipe *p = s->ready_head;
		if (!p)
			return NULL;
		ready_remove(s, p);
		m = msgq_pop(&p->inq);
		if (p->inq.count)
			ready_push(s, p);
	}
	s->queued--;
	s->queued_bytes -= m->len;
	return m;
}

void recvq_clear(struct nnofi_sock *s)
{
	if (s->landing && !s->landing->reading)
		s->landing->msg = NULL; /* if it landed, it is queued: freed here */
	msgq_clear(&s->rq);
	while (s->ready_head) {
		struct pipe *p = s->ready_head;
		ready_remove(s, p);
		msgq_clear(&p->inq);
	}
	s->queued = s->queued_bytes = 0;
}

/* A pipe leaves: what it delivered stays receivable, in order. */
void recvq_orphan(struct nnofi_sock *s, struct pipe *p)
{
	if (p->in_ready)
		ready_remove(s, p);
	nnofi_msg *m;
	while ((m = msgq_pop(&p->inq)))
		msgq_push(&s->rq, m);
}


/* Put back a message just taken: it is the next one again. */
void recvq_unpop(struct nnofi_sock *s, nnofi_msg *m)
{
	msgq_push_front(&s->rq, m);
	s->queued++;
	s->queued_bytes += m->len;
}
