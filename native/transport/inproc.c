/* inproc://NAME: sockets of one process joined by a pair of pipes that
 * pass message pointers (zero copy). Each side has a bounded mailbox; a
 * sender that finds its peer's mailbox full waits like on a full kernel
 * buffer. Peers are told about changes through their inproc_pending
 * counter and a kick, never by taking each other's socket lock. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

#define MSG_COST 64 /* what a message weighs in a mailbox beyond its bytes */

struct ipipe;

struct ipair {
	pthread_mutex_t mtx;
	atomic_int refs;
	bool dead;
	struct ipipe *side[2];
};

struct ipipe {
	struct pipe base;
	struct ipair *pair;
	int side;
	struct nnofi_sock *peer_sock; /* referenced: we kick it */
	struct msgq mbox; /* messages for this pipe's socket */
	size_t mbox_limit;
};

static struct ipipe *peer_of(struct ipipe *ip)
{
	return ip->pair->side[1 - ip->side];
}

static void kick_peer(struct ipipe *ip)
{
	struct nnofi_sock *ps = ip->peer_sock;
	atomic_fetch_add(&ps->inproc_pending, 1);
	sock_kick(ps);
}

/* Up to the receiver's recv_buffer, counting a per-message overhead so
 * empty messages are bounded too; one message always fits. */
static bool mbox_full(struct ipipe *ip)
{
	return ip->mbox.count && ip->mbox.bytes + ip->mbox.count * MSG_COST >= ip->mbox_limit;
}

static int ipipe_send(struct pipe *p, nnofi_msg *m, bool borrowed)
{
	struct ipipe *ip = (struct ipipe *)p;
	/* Only this socket fills the peer's mailbox, so room seen now stays. */
	pthread_mutex_lock(&ip->pair->mtx);
	bool room = !ip->pair->dead && !mbox_full(peer_of(ip));
	pthread_mutex_unlock(&ip->pair->mtx);
	if (!room && ip->peer_sock->proto->drop_when_full) {
		/* a SUB (BUS...) that can't keep up loses it, counted there */
		sock_stat(ip->peer_sock, NNOFI_STAT_MSGS_DROPPED, 1);
		return 0;
	}
	if (!room) {
		p->writable = false;
		return EAGAIN;
	}
	nnofi_msg *own;
	if (m->hdr_len) {
		/* the peer parses SP headers from the body, as off the wire */
		own = msg_alloc(m->hdr_len + m->len);
		memcpy(own->body, m->hdr, m->hdr_len);
		if (m->len)
			memcpy(own->body + m->hdr_len, m->body, m->len);
	} else {
		own = sock_keep_msg(p->sock, m, borrowed);
	}
	pthread_mutex_lock(&ip->pair->mtx);
	if (ip->pair->dead) {
		pthread_mutex_unlock(&ip->pair->mtx);
		msg_free(own); /* lost with the pipe, as on a broken stream */
		return 0;
	}
	struct ipipe *peer = peer_of(ip);
	msgq_push(&peer->mbox, own);
	if (mbox_full(peer) && !ip->peer_sock->proto->drop_when_full)
		p->writable = false;
	pthread_mutex_unlock(&ip->pair->mtx);
	kick_peer(ip);
	return 0;
}

/* Runs in this socket's context: take delivered messages, notice room in
 * the peer's mailbox and the pair's death. */
static void ipipe_read_ready(struct pipe *p)
{
	struct ipipe *ip = (struct ipipe *)p;
	struct msgq got = { 0 };
	pthread_mutex_lock(&ip->pair->mtx);
	bool was_full = mbox_full(ip);
	got = ip->mbox;
	memset(&ip->mbox, 0, sizeof(ip->mbox));
	bool dead = ip->pair->dead;
	bool room = !dead && !mbox_full(peer_of(ip));
	pthread_mutex_unlock(&ip->pair->mtx);
	nnofi_msg *m;
	while ((m = msgq_pop(&got))) {
		if (p->dead) {
			msg_free(m);
			continue;
		}
		sock_deliver(p->sock, p, m);
	}
	if (was_full && !dead)
		kick_peer(ip);
	if (p->dead)
		return;
	if (dead)
		sock_remove_pipe(p->sock, p, false);
	else if (room && !p->writable)
		sock_pipe_writable(p->sock, p);
}

static void ipipe_write_ready(struct pipe *p)
{
	(void)p;
}

static size_t ipipe_borrowing(struct pipe *p, uint64_t token)
{
	(void)p;
	(void)token;
	return 0; /* inproc never writes from the caller's buffer later */
}

static void ipipe_own_pending(struct pipe *p)
{
	(void)p;
}

static void ipair_unref(struct ipair *pair)
{
	if (atomic_fetch_sub(&pair->refs, 1) != 1)
		return;
	pthread_mutex_destroy(&pair->mtx);
	free(pair);
}

static void process_in_background(void *arg)
{
	struct nnofi_sock *s = arg;
	pthread_mutex_lock(&s->mtx);
	if (!s->closed)
		sock_process_inproc(s);
	pthread_mutex_unlock(&s->mtx);
	sock_unref(s);
}

static void ipipe_close(struct pipe *p)
{
	struct ipipe *ip = (struct ipipe *)p;
	pthread_mutex_lock(&ip->pair->mtx);
	bool was_dead = ip->pair->dead;
	ip->pair->dead = true;
	msgq_clear(&ip->mbox);
	pthread_mutex_unlock(&ip->pair->mtx);
	if (!was_dead) {
		/* the peer drops its side when it next looks, or right away in
		 * the background thread if nobody is in a call on it */
		kick_peer(ip);
		sock_ref(ip->peer_sock);
		bg_defer(process_in_background, ip->peer_sock);
	}
}

static void ipipe_destroy(struct pipe *p)
{
	struct ipipe *ip = (struct ipipe *)p;
	msgq_clear(&ip->mbox);
	sock_unref(ip->peer_sock);
	ipair_unref(ip->pair);
	free(ip);
}

static const struct pipe_ops ipipe_ops = {
	.send = ipipe_send,
	.read_ready = ipipe_read_ready,
	.write_ready = ipipe_write_ready,
	.close = ipipe_close,
	.borrowing = ipipe_borrowing,
	.own_pending = ipipe_own_pending,
	.destroy = ipipe_destroy,
};

/* ---- the name registry ------------------------------------------------ */

struct inproc_ep {
	struct endpoint *ep;
	struct inproc_ep *next;
};

static pthread_mutex_t registry_mtx = PTHREAD_MUTEX_INITIALIZER;
static struct inproc_ep *bound, *dialing;

static struct ipipe *ipipe_new(struct ipair *pair, int side, struct endpoint *ep)
{
	struct ipipe *ip = calloc(1, sizeof(*ip));
	die_on(ip == NULL, "out of memory");
	ip->pair = pair;
	ip->side = side;
	ip->base.sock = ep->sock;
	ip->base.ops = &ipipe_ops;
	ip->base.fd = -1;
	ip->base.ep = ep;
	ip->base.writable = true;
	pair->side[side] = ip;
	return ip;
}

/* Make a socket check its inproc pipes on its next look (sock locked). */
static void look_again(struct nnofi_sock *s)
{
	atomic_fetch_add(&s->inproc_pending, 1);
	sock_kick_locked(s);
}

/* Join a bound and a dialing endpoint (registry locked, socks unlocked). */
static void join(struct endpoint *lep, struct endpoint *dep)
{
	struct nnofi_sock *ls = lep->sock, *ds = dep->sock;
	if (ls->proto->peer_id != ds->proto->id)
		return; /* incompatible protocols never connect, like over tcp */
	struct ipair *pair = calloc(1, sizeof(*pair));
	die_on(pair == NULL, "out of memory");
	pthread_mutex_init(&pair->mtx, NULL);
	atomic_init(&pair->refs, 2);
	struct ipipe *a = ipipe_new(pair, 0, lep);
	struct ipipe *b = ipipe_new(pair, 1, dep);
	a->peer_sock = ds;
	b->peer_sock = ls;
	/* each pipe holds its own socket (pipe lifetime) and the peer's
	 * (kicks); the pipe's own ref is taken in its sock_add_pipe step */
	sock_ref(ls);
	sock_ref(ds);
	a->mbox_limit = (size_t)ls->recv_buffer;
	b->mbox_limit = (size_t)ds->recv_buffer;

	/* a peer that just went may still hold its place (PAIR) until seen */
	pthread_mutex_lock(&ls->mtx);
	sock_process_inproc(ls);
	a->base.id = sock_new_pipe_id(ls);
	bool a_ok = !lep->closed && sock_add_pipe(ls, &a->base);
	if (a_ok) {
		sock_ref(ls);
		look_again(ls); /* the peer may have sent before this side joined */
	}
	pthread_mutex_unlock(&ls->mtx);

	pthread_mutex_lock(&ds->mtx);
	sock_process_inproc(ds);
	b->base.id = sock_new_pipe_id(ds);
	bool b_ok = a_ok && !dep->closed && sock_add_pipe(ds, &b->base);
	if (b_ok) {
		sock_ref(ds);
		look_again(ds);
	}
	pthread_mutex_unlock(&ds->mtx);

	if (!a_ok) {
		/* neither side took it */
		sock_unref(ls);
		sock_unref(ds);
		pthread_mutex_destroy(&pair->mtx);
		free(a);
		free(b);
		free(pair);
		return;
	}
	if (!b_ok) {
		pair->dead = true;
		sock_unref(ls); /* b's reference to its peer */
		free(b);
		pair->side[1] = NULL;
		atomic_fetch_sub(&pair->refs, 1);
		pthread_mutex_lock(&ls->mtx);
		if (!a->base.dead)
			sock_remove_pipe(ls, &a->base, false);
		pthread_mutex_unlock(&ls->mtx);
	}
}

static void inproc_stop(struct endpoint *ep)
{
	pthread_mutex_lock(&registry_mtx);
	struct inproc_ep **lists[2] = { &bound, &dialing };
	for (int i = 0; i < 2; i++) {
		for (struct inproc_ep **pp = lists[i]; *pp; pp = &(*pp)->next) {
			if ((*pp)->ep == ep) {
				struct inproc_ep *e = *pp;
				*pp = e->next;
				free(e);
				break;
			}
		}
	}
	pthread_mutex_unlock(&registry_mtx);
}

static const struct ep_ops inproc_ep_ops = { .stop = inproc_stop };

static struct inproc_ep *registry_add(struct inproc_ep **list, struct endpoint *ep)
{
	struct inproc_ep *e = malloc(sizeof(*e));
	die_on(e == NULL, "out of memory");
	e->ep = ep;
	e->next = *list;
	*list = e;
	ep->ops = &inproc_ep_ops;
	return e;
}

int inproc_bind(struct endpoint *ep)
{
	pthread_mutex_lock(&registry_mtx);
	for (struct inproc_ep *e = bound; e; e = e->next) {
		if (!strcmp(e->ep->url.name, ep->url.name)) {
			pthread_mutex_unlock(&registry_mtx);
			return EADDRINUSE;
		}
	}
	registry_add(&bound, ep);
	for (struct inproc_ep *d = dialing; d; d = d->next)
		if (!strcmp(d->ep->url.name, ep->url.name))
			join(ep, d->ep);
	pthread_mutex_unlock(&registry_mtx);
	return 0;
}

int inproc_connect(struct endpoint *ep)
{
	pthread_mutex_lock(&registry_mtx);
	registry_add(&dialing, ep);
	for (struct inproc_ep *e = bound; e; e = e->next)
		if (!strcmp(e->ep->url.name, ep->url.name))
			join(e->ep, ep);
	pthread_mutex_unlock(&registry_mtx);
	return 0;
}
