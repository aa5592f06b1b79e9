/* PAIR: one peer at a time; further pipes are refused, and each refusal
 * has the current peer's pipe probed: one that died silently (its host
 * gone, its goodbye lost in a cut) would otherwise keep the place for ever,
 * since a PAIR that only receives never learns. */
#include <errno.h>

#include "core.h"

struct pair {
	struct pipe *peer;
};

static bool pair_pipe_add(struct nnofi_sock *s, struct pipe *p)
{
	struct pair *st = s->proto_data;
	if (st->peer) {
		if (st->peer->ops->probe)
			st->peer->ops->probe(st->peer);
		return false;
	}
	st->peer = p;
	return true;
}

static void pair_pipe_remove(struct nnofi_sock *s, struct pipe *p)
{
	struct pair *st = s->proto_data;
	if (st->peer == p)
		st->peer = NULL;
}

static int pair_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed)
{
	struct pair *st = s->proto_data;
	if (!st->peer || !st->peer->writable)
		return EAGAIN;
	return proto_send_on(s, st->peer, m, borrowed);
}

const struct proto_ops proto_pair = {
	.id = NNOFI_PAIR,
	.peer_id = NNOFI_PAIR,
	.data_size = sizeof(struct pair),
	.pipe_add = pair_pipe_add,
	.pipe_remove = pair_pipe_remove,
	.send = pair_send,
	.deliver = proto_queue_deliver,
	.recv = proto_queue_recv,
	.send_waits = proto_no_writable_pipe, /* one pipe at most */
};
