/* PUB/SUB: PUB sends every message to every subscriber that can take it
 * now and drops it for the others (a slow subscriber never stalls the
 * publisher); SUB keeps messages whose body starts with one of its
 * subscribed prefixes (the empty prefix matches all), filtering on the
 * subscriber side as nanomsg and nng do. A full SUB queue drops. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static int pub_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed)
{
	proto_broadcast(s, m, borrowed, 0);
	return 0;
}

const struct proto_ops proto_pub = {
	.id = NNOFI_PUB,
	.peer_id = NNOFI_SUB,
	.pipe_add = proto_accept_pipe,
	.pipe_remove = proto_forget_pipe,
	.send = pub_send,
	.deliver = proto_reject_deliver,
	.recv = proto_no_recv,
	.send_only = true,
};

/* ---- SUB ------------------------------------------------------------- */

struct topic {
	size_t len;
	uint8_t *prefix;
};

struct sub {
	struct topic *topics;
	int ntopics, cap;
};

static void sub_fini(struct nnofi_sock *s)
{
	struct sub *st = s->proto_data;
	for (int i = 0; i < st->ntopics; i++)
		free(st->topics[i].prefix);
	free(st->topics);
}

static int find_topic(struct sub *st, const void *data, size_t len)
{
	for (int i = 0; i < st->ntopics; i++)
		if (st->topics[i].len == len && !memcmp(st->topics[i].prefix, data, len))
			return i;
	return -1;
}

static int sub_setopt(struct nnofi_sock *s, int opt, const void *data, size_t len)
{
	struct sub *st = s->proto_data;
	int i = find_topic(st, data, len);
	if (opt == NNOFI_OPT_UNSUBSCRIBE) {
		if (i < 0)
			return EINVAL; /* not subscribed */
		free(st->topics[i].prefix);
		st->topics[i] = st->topics[--st->ntopics];
		return 0;
	}
	if (opt != NNOFI_OPT_SUBSCRIBE)
		return ENOPROTOOPT;
	if (i >= 0)
		return 0;
	if (st->ntopics == st->cap) {
		int cap = st->cap ? 2 * st->cap : 4;
		struct topic *t = realloc(st->topics, (size_t)cap * sizeof(*t));
		if (!t)
			return ENOMEM;
		st->topics = t;
		st->cap = cap;
	}
	uint8_t *copy = malloc(len ? len : 1);
	if (!copy)
		return ENOMEM;
	memcpy(copy, data, len);
	st->topics[st->ntopics++] = (struct topic){ .len = len, .prefix = copy };
	return 0;
}

static bool subscribed(struct sub *st, const nnofi_msg *m)
{
	for (int i = 0; i < st->ntopics; i++) {
		struct topic *t = &st->topics[i];
		if (t->len <= m->len && !memcmp(t->prefix, m->body, t->len))
			return true;
	}
	return false;
}

static void sub_deliver(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m)
{
	(void)p;
	if (!subscribed(s->proto_data, m)) {
		msg_free(m); /* filtered out: not a loss */
		return;
	}
	sock_enqueue(s, m);
}

const struct proto_ops proto_sub = {
	.id = NNOFI_SUB,
	.peer_id = NNOFI_PUB,
	.data_size = sizeof(struct sub),
	.fini = sub_fini,
	.pipe_add = proto_accept_pipe,
	.pipe_remove = proto_forget_pipe,
	.send = proto_no_send,
	.deliver = sub_deliver,
	.recv = proto_queue_recv,
	.setopt = sub_setopt,
	.drop_when_full = true,
};
