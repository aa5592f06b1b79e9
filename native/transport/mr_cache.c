/* Memory registration cache: see mr_cache.h. A short list scanned
 * linearly: a pipe has a handful of large transfers in flight, not
 * thousands. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <rdma/fabric.h>

#include "mr_cache.h"

struct mr_entry {
	struct mr_entry *prev, *next; /* in the cache's list while matchable */
	struct mr_cache *cache;
	uint8_t *base;
	size_t len;
	struct fid_mr *mr; /* NULL once closed (evicted, or the cache closed) */
	int holds;         /* transfers using it now */
	bool listed;
	bool chunk_gone;   /* the destructor ran: free at the last put */
	uint64_t used;     /* LRU clock */
};

struct mr_cache {
	pthread_mutex_t mtx;
	int refs; /* the pipe's, and one per entry not yet freed */
	struct fid_domain *domain; /* NULL once closed */
	bool virt_addr;
	size_t max_bytes, bytes;
	uint64_t clock;
	struct mr_entry *head;
};

static atomic_uint_fast64_t live_count, live_bytes;

void nnofi_mr_live(uint64_t *count, uint64_t *bytes)
{
	*count = atomic_load(&live_count);
	*bytes = atomic_load(&live_bytes);
}

struct mr_cache *mr_cache_new(struct fid_domain *domain, bool virt_addr, size_t max_bytes)
{
	struct mr_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	pthread_mutex_init(&c->mtx, NULL);
	c->refs = 1;
	c->domain = domain;
	c->virt_addr = virt_addr;
	c->max_bytes = max_bytes;
	return c;
}

/* Both under c->mtx. */
static void unlist(struct mr_entry *e)
{
	struct mr_cache *c = e->cache;
	if (!e->listed)
		return;
	if (e->prev)
		e->prev->next = e->next;
	else
		c->head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	e->listed = false;
	c->bytes -= e->len;
}

static void close_mr(struct mr_entry *e)
{
	unlist(e);
	if (e->mr) {
		fi_close(&e->mr->fid);
		e->mr = NULL;
		atomic_fetch_sub(&live_count, 1);
		atomic_fetch_sub(&live_bytes, e->len);
	}
}

/* Frees e; true if that released the cache's last reference. */
static bool free_entry(struct mr_entry *e)
{
	struct mr_cache *c = e->cache;
	close_mr(e);
	free(e);
	return --c->refs == 0;
}

static void release_cache(struct mr_cache *c, bool last)
{
	pthread_mutex_unlock(&c->mtx);
	if (last) {
		pthread_mutex_destroy(&c->mtx);
		free(c);
	}
}

/* The chunk the registration was made for is being freed (any thread). */
static void chunk_gone(void *arg, void *data, size_t len)
{
	struct mr_entry *e = arg;
	struct mr_cache *c = e->cache;
	(void)data;
	(void)len;
	pthread_mutex_lock(&c->mtx);
	e->chunk_gone = true;
	bool last = false;
	if (e->holds == 0)
		last = free_entry(e);
	else
		unlist(e); /* no new users; the last put frees it */
	release_cache(c, last);
}

static void evict_over_limit(struct mr_cache *c, struct mr_entry *keep, int *evicted)
{
	while (c->bytes > c->max_bytes) {
		struct mr_entry *lru = NULL;
		for (struct mr_entry *e = c->head; e; e = e->next)
			if (e != keep && e->holds == 0 && (!lru || e->used < lru->used))
				lru = e;
		if (!lru)
			return; /* everything else is in use */
		close_mr(lru); /* the struct stays for its chunk's destructor */
		(*evicted)++;
	}
}

struct mr_entry *mr_cache_get(struct mr_cache *c, struct chunk *owner, void *addr, size_t len,
			      struct mr_get_result *res)
{
	uint8_t *p = addr;
	*res = (struct mr_get_result){ 0 };
	pthread_mutex_lock(&c->mtx);
	struct mr_entry *e;
	for (e = c->head; e; e = e->next)
		if (e->base <= p && p + len <= e->base + e->len)
			break;
	if (e) {
		res->hit = true;
	} else if (c->domain && (e = calloc(1, sizeof(*e)))) {
		/* the whole chunk: other messages on it will hit */
		static atomic_uint_fast64_t keys = 1u << 20; /* clear of the bounce buffers' keys */
		e->cache = c;
		e->base = owner->data;
		e->len = owner->len;
		if (fi_mr_reg(c->domain, e->base, e->len, FI_READ | FI_REMOTE_READ, 0,
			      atomic_fetch_add(&keys, 1), 0, &e->mr, NULL)) {
			free(e);
			e = NULL;
		} else {
			atomic_fetch_add(&live_count, 1);
			atomic_fetch_add(&live_bytes, e->len);
			c->refs++;
			e->listed = true;
			e->next = c->head;
			if (c->head)
				c->head->prev = e;
			c->head = e;
			c->bytes += e->len;
			res->registered = e->len;
			chunk_add_dtor(owner, chunk_gone, e);
			evict_over_limit(c, e, &res->evicted);
		}
	}
	if (e) {
		e->holds++;
		e->used = ++c->clock;
	}
	pthread_mutex_unlock(&c->mtx);
	return e;
}

void mr_cache_put(struct mr_cache *c, struct mr_entry *e)
{
	pthread_mutex_lock(&c->mtx);
	bool last = false;
	if (--e->holds == 0) {
		if (e->chunk_gone)
			last = free_entry(e);
		else
			evict_over_limit(c, NULL, &(int){ 0 });
	}
	release_cache(c, last);
}

void *mr_entry_desc(const struct mr_entry *e)
{
	return fi_mr_desc(e->mr);
}

uint64_t mr_entry_key(const struct mr_entry *e)
{
	return fi_mr_key(e->mr);
}

bool mr_cache_virt_addr(const struct mr_cache *c)
{
	return c->virt_addr;
}

uint64_t mr_entry_remote_addr(const struct mr_entry *e, const void *addr)
{
	uintptr_t a = (uintptr_t)addr;
	return e->cache->virt_addr ? a : a - (uintptr_t)e->base;
}

void mr_cache_close(struct mr_cache *c)
{
	pthread_mutex_lock(&c->mtx);
	while (c->head)
		close_mr(c->head);
	c->domain = NULL;
	release_cache(c, --c->refs == 0);
}
