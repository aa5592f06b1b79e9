/* PUSH/PULL: push load-balances round-robin over pipes that can take a
 * message (blocking when none can); pull fair-queues. */
#include <errno.h>

#include "core.h"

struct push {
	uint32_t cursor;
};

static int push_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed)
{
	struct push *st = s->proto_data;
	return proto_send_round_robin(s, &st->cursor, m, borrowed);
}

const struct proto_ops proto_push = {
	.id = NNOFI_PUSH,
	.peer_id = NNOFI_PULL,
	.data_size = sizeof(struct push),
	.pipe_add = proto_accept_pipe,
	.pipe_remove = proto_forget_pipe,
	.send = push_send,
	.deliver = proto_reject_deliver,
	.recv = proto_no_recv,
	.send_only = true,
	.send_waits = proto_no_writable_pipe,
};

const struct proto_ops proto_pull = {
	.id = NNOFI_PULL,
	.peer_id = NNOFI_PUSH,
	.pipe_add = proto_accept_pipe,
	.pipe_remove = proto_forget_pipe,
	.send = proto_no_send,
	.deliver = proto_queue_deliver,
	.recv = proto_queue_recv,
};
