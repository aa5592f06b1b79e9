/* BUS: every message goes to every directly connected peer that can take
 * it now. Raw BUS (devices) tags what it receives with the pipe it came
 * on and never sends a message back there, so a bus device forwards to
 * everyone but the sender. */
#include <errno.h>

#include "core.h"

static int bus_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed)
{
	uint32_t except = 0;
	nnofi_msg out = *m;
	if (s->raw && m->hdr_len >= 4)
		except = get_u32be(m->hdr);
	out.hdr_len = 0; /* BUS has no header on the wire */
	proto_broadcast(s, &out, borrowed, except);
	return 0;
}

static void bus_deliver(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m)
{
	if (s->raw) {
		put_u32be(m->hdr, p->id);
		m->hdr_len = 4;
	}
	sock_enqueue(s, m);
}

const struct proto_ops proto_bus = {
	.id = NNOFI_BUS,
	.peer_id = NNOFI_BUS,
	.pipe_add = proto_accept_pipe,
	.pipe_remove = proto_forget_pipe,
	.send = bus_send,
	.deliver = bus_deliver,
	.recv = proto_queue_recv,
	.drop_when_full = true,
};
