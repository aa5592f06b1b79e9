/* Messages: a small header struct on a ref-counted body chunk. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

atomic_long nnofi_live_msgs;

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	die_on(p == NULL, "out of memory");
	return p;
}

/* ---- per-thread pools ---------------------------------------------------- */

/* Message structs and small bodies freed by a thread are kept for its next
 * allocations: a burst allocates and frees thousands, more than glibc's
 * per-thread cache holds (7 a size), and its slower bins then cost more
 * than the rest of a small message's path. 4096 of each (some 1.5 MiB): a
 * full receive buffer of 64 B messages (2048) and a recv_many batch in
 * flight at once; with 512, malloc and free were a quarter of a PULL's
 * time. Off under ASan, which must see every free. */
#define SMALL_BODY 256
#if defined(__SANITIZE_ADDRESS__)
#define POOL_MAX 0
#else
#define POOL_MAX 4096
#endif

struct pool {
	int n;
	void *items[POOL_MAX + 1];
};

/* Big bodies (a thread receiving 1 MiB messages frees one per message)
 * are kept too, a few of them, for every thread (the background thread
 * often allocates what the application's thread frees): glibc hands such
 * a block back to the kernel (munmap, or a heap trim), and the next
 * message's pages then fault in zeroed again, which cost the receiver more
 * than copying the bytes (perf: clear_page and the fault path ~40% of a
 * 1 MiB PULL over tcp). A kept block serves a message of a quarter of
 * its size or more, or one growing into it. Up to 32 MiB in all, glibc's
 * own ceiling for keeping a freed block on the heap
 * (DEFAULT_MMAP_THRESHOLD_MAX): 16 MiB REQ/REP over tcp faulted every
 * page of every message with 8 MiB. */
#define BIG_MIN (64 * 1024)
#define BIG_MAX (32u << 20)
#define BIG_KEEP_BYTES (32u << 20)
#if defined(__SANITIZE_ADDRESS__)
#define BIG_KEEP 0
#else
#define BIG_KEEP 8
#endif
static struct big_cache {
	pthread_mutex_t mtx;
	int n;
	size_t bytes;
	struct chunk *items[BIG_KEEP + 1];
} big = { .mtx = PTHREAD_MUTEX_INITIALIZER };

enum pool_kind { POOL_MSGS, POOL_BODIES };
struct pools {
	struct pool of[2]; /* by enum pool_kind */
};
/* This thread's pools, made by its first free. A pointer, initial-exec:
 * one load off %fs, where a general-dynamic __thread in this dlopen'ed
 * module cost a __tls_get_addr call per use (18 per REQ/REP round trip);
 * glibc keeps static TLS room for a few such words. */
static __thread struct pools *pools __attribute__((tls_model("initial-exec")));
static pthread_key_t pools_key;
static pthread_once_t pools_once = PTHREAD_ONCE_INIT;

/* At thread exit (pools_key's destructor, in that thread). */
static void pools_drain(void *arg)
{
	struct pools *ps = arg;
	for (int k = POOL_MSGS; k <= POOL_BODIES; k++)
		while (ps->of[k].n)
			free(ps->of[k].items[--ps->of[k].n]);
	free(ps);
	pools = NULL; /* a later destructor's free makes new ones, drained in turn */
}

static void pools_key_create(void)
{
	die_on(pthread_key_create(&pools_key, pools_drain) != 0, "pthread_key_create");
}

/* The thread's pools, made on first use; NULL if memory is short. */
static struct pools *pools_here(void)
{
	if (pools)
		return pools;
	pthread_once(&pools_once, pools_key_create);
	struct pools *p = calloc(1, sizeof(*p));
	if (p && pthread_setspecific(pools_key, p) != 0) {
		free(p);
		p = NULL;
	}
	return pools = p;
}

static void *pool_get(enum pool_kind k, size_t size)
{
	struct pools *ps = pools;
	return ps && ps->of[k].n ? ps->of[k].items[--ps->of[k].n] : xmalloc(size);
}

static void pool_put(enum pool_kind k, void *item)
{
	struct pools *ps = POOL_MAX ? pools_here() : NULL;
	if (!ps || ps->of[k].n >= POOL_MAX) {
		free(item);
		return;
	}
	ps->of[k].items[ps->of[k].n++] = item;
}

/* Take kept block i out, keeping the others in the order they came. */
static struct chunk *big_take(struct big_cache *b, int i)
{
	struct chunk *c = b->items[i];
	memmove(&b->items[i], &b->items[i + 1], (size_t)(b->n - i - 1) * sizeof(b->items[0]));
	b->n--;
	b->bytes -= c->cap;
	return c;
}

/* A kept big block with room for len and at most max_cap, or NULL. */
static struct chunk *big_get(size_t len, size_t max_cap)
{
	struct big_cache *b = &big;
	struct chunk *c = NULL;
	pthread_mutex_lock(&b->mtx);
	int best = -1;
	for (int i = 0; i < b->n; i++) /* the smallest that fits; the newest (warmest) of equals */
		if (b->items[i]->cap >= len && b->items[i]->cap <= max_cap &&
		    (best < 0 || b->items[i]->cap <= b->items[best]->cap))
			best = i;
	if (best >= 0)
		c = big_take(b, best);
	pthread_mutex_unlock(&b->mtx);
	return c;
}

/* Keep a freed big inline block, or free it. When full, the smallest
 * kept block makes room for a bigger one. */
static void big_put(struct chunk *c)
{
	struct big_cache *b = &big;
	if (BIG_KEEP == 0 || c->data != (uint8_t *)(c + 1) || c->cap < BIG_MIN || c->cap > BIG_MAX) {
		free(c);
		return;
	}
	struct chunk *drop = NULL;
	pthread_mutex_lock(&b->mtx);
	if (b->n >= BIG_KEEP || b->bytes + c->cap > BIG_KEEP_BYTES) {
		int smallest = 0;
		for (int i = 1; i < b->n; i++)
			if (b->items[i]->cap < b->items[smallest]->cap)
				smallest = i;
		if (b->n == 0 || b->items[smallest]->cap >= c->cap ||
		    b->bytes - b->items[smallest]->cap + c->cap > BIG_KEEP_BYTES) {
			drop = c;
		} else {
			drop = big_take(b, smallest);
		}
	}
	if (drop != c) {
		b->items[b->n++] = c;
		b->bytes += c->cap;
	}
	pthread_mutex_unlock(&b->mtx);
	free(drop);
}

static struct chunk *inline_chunk(struct chunk *c, size_t len, bool pooled)
{
	atomic_init(&c->refs, 1);
	c->pooled = pooled;
	c->data = (uint8_t *)(c + 1);
	c->len = len;
	c->dtors = NULL;
	return c;
}

/* An inline block for len bytes (that may grow to `grows_to`): pooled,
 * kept, or new (NULL: no memory). A kept block serves a body of a quarter
 * of its size or more, or one that will grow into it. */
static struct chunk *inline_block(size_t len, size_t grows_to)
{
	if (len <= SMALL_BODY) {
		struct chunk *c = inline_chunk(pool_get(POOL_BODIES, sizeof(struct chunk) + SMALL_BODY), len, true);
		c->cap = SMALL_BODY;
		return c;
	}
	size_t max_cap = len <= SIZE_MAX / 4 ? 4 * len : SIZE_MAX;
	struct chunk *c = len >= BIG_MIN / 4 ? big_get(len, grows_to > max_cap ? grows_to : max_cap) : NULL;
	if (c)
		return inline_chunk(c, len, false); /* keeps its cap */
	if (!(c = malloc(sizeof(*c) + len)))
		return NULL;
	inline_chunk(c, len, false);
	c->cap = len;
	return c;
}

struct chunk *chunk_alloc(size_t len)
{
	struct chunk *c = inline_block(len, len);
	die_on(c == NULL, "out of memory");
	return c;
}

struct chunk *chunk_external(void *data, size_t len)
{
	struct chunk *c = xmalloc(sizeof(*c));
	atomic_init(&c->refs, 1);
	c->pooled = false;
	c->data = data;
	c->len = c->cap = len;
	c->dtors = NULL;
	return c;
}

void chunk_add_dtor(struct chunk *c, void (*fn)(void *, void *, size_t), void *arg)
{
	struct dtor_link *l = xmalloc(sizeof(*l));
	l->fn = fn;
	l->arg = arg;
	/* lock-free push: two sockets may send the same message at once */
	l->next = __atomic_load_n(&c->dtors, __ATOMIC_RELAXED);
	while (!__atomic_compare_exchange_n(&c->dtors, &l->next, l, true, __ATOMIC_RELEASE, __ATOMIC_RELAXED))
		;
}

void chunk_ref(struct chunk *c)
{
	atomic_fetch_add_explicit(&c->refs, 1, memory_order_relaxed);
}

void chunk_unref(struct chunk *c)
{
	if (atomic_fetch_sub_explicit(&c->refs, 1, memory_order_acq_rel) != 1)
		return;
	struct dtor_link *l = c->dtors;
	while (l) {
		struct dtor_link *next = l->next;
		l->fn(l->arg, c->data, c->len);
		free(l);
		l = next;
	}
	if (c->pooled)
		pool_put(POOL_BODIES, c);
	else
		big_put(c);
}

static nnofi_msg *msg_new(void)
{
	nnofi_msg *m = pool_get(POOL_MSGS, sizeof(*m));
	m->next = NULL;
	m->pipe_id = 0;
	m->hdr_len = 0;
	atomic_fetch_add_explicit(&nnofi_live_msgs, 1, memory_order_relaxed);
	return m;
}

nnofi_msg *msg_alloc(size_t len)
{
	nnofi_msg *m = msg_new();
	m->chunk = chunk_alloc(len);
	m->body = m->chunk->data;
	m->len = len;
	return m;
}

nnofi_msg *msg_try_alloc(size_t len)
{
	return msg_try_alloc_growing(len, len);
}

nnofi_msg *msg_try_alloc_growing(size_t len, size_t grows_to)
{
	if (len > SIZE_MAX - sizeof(struct chunk))
		return NULL;
	struct chunk *c = inline_block(len, grows_to);
	if (!c)
		return NULL;
	nnofi_msg *m = msg_new();
	m->chunk = c;
	m->body = c->data;
	m->len = len;
	return m;
}

/* A copy whose destination lies a few bytes past its source modulo a
 * page runs several times slower than an aligned one (the kernel's
 * process_vm_readv copying 1 MiB from a Python bytes object, 48 bytes into
 * its page, to a body 56 bytes into its own: ~400 against ~110 us on AMD
 * EPYC). A body that starts at the same offset in its page as the data it
 * will be copied from makes that copy mutually aligned. */
#define PAGE_OFFSET_MASK ((uintptr_t)4095)

nnofi_msg *msg_try_alloc_aligned_as(size_t len, uintptr_t like)
{
	if (len > SIZE_MAX - sizeof(struct chunk) - PAGE_OFFSET_MASK)
		return NULL;
	struct chunk *c = inline_block(len + PAGE_OFFSET_MASK, len + PAGE_OFFSET_MASK);
	if (!c)
		return NULL;
	nnofi_msg *m = msg_new();
	m->chunk = c;
	m->body = c->data + ((like - (uintptr_t)c->data) & PAGE_OFFSET_MASK);
	m->len = len;
	return m;
}

bool msg_try_resize(nnofi_msg *m, size_t cap)
{
	struct chunk *c = m->chunk;
	if (c->data != (uint8_t *)(c + 1) || atomic_load(&c->refs) != 1 || m->body != c->data)
		return false; /* only a fresh, unshared inline body can move */
	if (cap > SIZE_MAX - sizeof(*c))
		return false;
	if (cap <= c->cap) {
		c->len = cap; /* the (pooled or kept) block has room */
		return true;
	}
	struct chunk *n = realloc(c, sizeof(*n) + cap); /* big: glibc mremaps, no copy */
	if (!n)
		return false;
	n->pooled = false;
	n->data = (uint8_t *)(n + 1);
	n->len = n->cap = cap;
	m->chunk = n;
	m->body = n->data;
	return true;
}

nnofi_msg *msg_on_chunk(struct chunk *c)
{
	nnofi_msg *m = msg_new();
	chunk_ref(c);
	m->chunk = c;
	m->body = c->data;
	m->len = c->len;
	return m;
}

nnofi_msg *msg_dup(const nnofi_msg *src)
{
	nnofi_msg *m = msg_new();
	chunk_ref(src->chunk);
	m->chunk = src->chunk;
	m->body = src->body;
	m->len = src->len;
	m->pipe_id = src->pipe_id;
	m->hdr_len = src->hdr_len;
	memcpy(m->hdr, src->hdr, src->hdr_len);
	return m;
}

void msg_free(nnofi_msg *m)
{
	if (!m)
		return;
	chunk_unref(m->chunk);
	atomic_fetch_sub_explicit(&nnofi_live_msgs, 1, memory_order_relaxed);
	pool_put(POOL_MSGS, m);
}

void msgq_push(struct msgq *q, nnofi_msg *m)
{
	m->next = NULL;
	if (q->tail)
		q->tail->next = m;
	else
		q->head = m;
	q->tail = m;
	q->count++;
	q->bytes += m->len;
}

/* Put back a message just popped. */
void msgq_push_front(struct msgq *q, nnofi_msg *m)
{
	m->next = q->head;
	q->head = m;
	if (!q->tail)
		q->tail = m;
	q->count++;
	q->bytes += m->len;
}

nnofi_msg *msgq_pop(struct msgq *q)
{
	nnofi_msg *m = q->head;
	if (!m)
		return NULL;
	q->head = m->next;
	if (!q->head)
		q->tail = NULL;
	q->count--;
	q->bytes -= m->len;
	m->next = NULL;
	return m;
}

void msgq_clear(struct msgq *q)
{
	nnofi_msg *m;
	while ((m = msgq_pop(q)))
		msg_free(m);
}

/* Public accessors. */
void *nnofi_msg_data(nnofi_msg *m) { return m->body; }
size_t nnofi_msg_header(nnofi_msg *m, void **data)
{
	*data = m->hdr;
	return m->hdr_len;
}
size_t nnofi_msg_len(nnofi_msg *m) { return m->len; }
void nnofi_msg_free(nnofi_msg *m) { msg_free(m); }
