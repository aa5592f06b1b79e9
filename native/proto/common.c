/* Helpers shared by the protocols. */
#include "core.h"

void put_u32be(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

uint32_t get_u32be(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

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

/* Send on one pipe, remembering which, for the borrowed-buffer wait. */
int proto_send_on(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m, bool borrowed)
{
	int rc = p->ops->send(p, m, borrowed);
	if (rc == 0)
		s->sent_pipe = p->id;
	return rc;
}
