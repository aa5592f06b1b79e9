/* Helpers shared by the protocols. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

/* Round-robin: the first writable pipe after *cursor (a pipe id). */
struct pipe *proto_next_writable(struct nnofi_sock *s, uint32_t *cursor)
{
	int n = s->npipes, start = 0;
	for (int i = 0; i < n; i++) {
		if (s->pipes[i]->id == *cursor) {
			start = i + 1;
			break;
		}
	}
	for (int k = 0; k < n; k++) {
		struct pipe *p = s->pipes[(start + k) % n];
		if (p->writable && !p->dead) {
			*cursor = p->id;
			return p;
		}
	}
	return NULL;
}

/* PUSH and raw REQ: the next pipe that can take it, round-robin. */
int proto_send_round_robin(struct nnofi_sock *s, uint32_t *cursor, nnofi_msg *m, bool borrowed)
{
	struct pipe *p = proto_next_writable(s, cursor);
	if (!p)
		return EAGAIN;
	return proto_send_on(s, p, m, borrowed);
}

bool proto_no_writable_pipe(struct nnofi_sock *s)
{
	uint32_t anywhere = 0; /* a cursor of our own: the protocol's stays */
	return proto_next_writable(s, &anywhere) == NULL;
}

/* Send on one pipe, remembering which, for the borrowed-buffer wait. */
int proto_send_on(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m, bool borrowed)
{
	int rc = p->ops->send(p, m, borrowed);
	if (rc == 0)
		s->sent_pipe = p->id;
	return rc;
}

void proto_drop(struct nnofi_sock *s, nnofi_msg *m, int reason)
{
	msg_free(m);
	sock_stat(s, NNOFI_STAT_MSGS_DROPPED, 1);
	if (reason >= 0)
		sock_stat(s, reason, 1);
}

void proto_broadcast(struct nnofi_sock *s, nnofi_msg *m, bool borrowed, uint32_t except)
{
	/* snapshot: a failing send removes its pipe from s->pipes (pipes are
	 * freed later, by the background thread, so the pointers stay valid) */
	struct pipe *stack[64], **pipes = stack;
	int n = s->npipes;
	if (n == 0)
		return; /* nobody to send to: PUB, BUS and SURVEYOR drop */
	if (n > 64) {
		pipes = malloc((size_t)n * sizeof(*pipes));
		if (!pipes)
			return;
	}
	memcpy(pipes, s->pipes, (size_t)n * sizeof(*pipes));
	for (int i = 0; i < n; i++) {
		struct pipe *p = pipes[i];
		if (p->dead || p->id == except)
			continue;
		if (!p->writable || p->ops->send(p, m, borrowed) != 0) {
			sock_stat(s, NNOFI_STAT_MSGS_DROPPED, 1);
			continue;
		}
		/* the caller's buffer must not be needed after this call */
		if (borrowed && !p->dead && p->ops->borrowing(p, s->send_token))
			p->ops->own_pending(p);
	}
	if (pipes != stack)
		free(pipes);
}


bool proto_accept_pipe(struct nnofi_sock *s, struct pipe *p)
{
	(void)s;
	(void)p;
	return true;
}

void proto_forget_pipe(struct nnofi_sock *s, struct pipe *p)
{
	(void)s;
	(void)p;
}

int proto_no_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed)
{
	(void)s;
	(void)m;
	(void)borrowed;
	return ENOTSUP;
}

nnofi_msg *proto_no_recv(struct nnofi_sock *s, int *err)
{
	(void)s;
	*err = ENOTSUP;
	return NULL;
}

/* For protocols whose messages go to the user as they come. */
void proto_queue_deliver(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m)
{
	(void)p;
	sock_enqueue(s, m);
}

nnofi_msg *proto_queue_recv(struct nnofi_sock *s, int *err)
{
	(void)err;
	return sock_dequeue(s);
}

/* For send-only protocols (PUSH, PUB): a peer that sends is cut off. */
void proto_reject_deliver(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m)
{
	proto_drop(s, m, NNOFI_STAT_UNEXPECTED_MSGS);
	sock_remove_pipe(s, p, true);
}

/* Request and survey ids: 32 bits with the top bit set, as nanomsg; the
 * sequence starts somewhere different for each socket. */
uint32_t proto_first_id(struct nnofi_sock *s)
{
	return (uint32_t)now_ms() ^ (uint32_t)(uintptr_t)s;
}

uint32_t proto_next_id(uint32_t *seq)
{
	return (*seq)++ | 0x80000000u;
}
