/* A cache of libfabric memory registrations for one domain.
 *
 * Registering memory is expensive (on verbs it pins pages and talks to
 * the NIC), so a buffer sent again, or one inside an already registered
 * region, reuses its registration. Every registration belongs to the
 * message chunk it was made for: the chunk's destructor drops it, so a
 * registration never outlives the memory it describes (the classic MR
 * cache bug: freed memory reused under a stale registration). Above
 * max_bytes, least-recently-used registrations that no transfer holds are
 * closed early.
 *
 * get/put run under the socket lock; the destructor may run in any thread
 * (whoever frees the message), so the cache has its own mutex and
 * requires a domain opened with FI_THREAD_SAFE. */
#ifndef NNOFI_MR_CACHE_H
#define NNOFI_MR_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <rdma/fi_domain.h>

#include "core.h"

struct mr_cache;
struct mr_entry;

/* What one get did, for the socket's statistics. */
struct mr_get_result {
	bool hit;
	int evicted;
	size_t registered; /* bytes newly registered (miss) */
};

/* virt_addr: the domain's mr_mode has FI_MR_VIRT_ADDR (remote addresses
 * are virtual addresses, else offsets into the region). */
struct mr_cache *mr_cache_new(struct fid_domain *domain, bool virt_addr, size_t max_bytes);
/* The registration covering [addr, addr+len) of chunk `owner`, held until
 * mr_cache_put; NULL if registration failed. */
struct mr_entry *mr_cache_get(struct mr_cache *c, struct chunk *owner, void *addr, size_t len,
			      struct mr_get_result *res);
void mr_cache_put(struct mr_cache *c, struct mr_entry *e);
void *mr_entry_desc(const struct mr_entry *e);
uint64_t mr_entry_key(const struct mr_entry *e);
/* Remote addresses are virtual addresses (FI_MR_VIRT_ADDR, as on shm),
 * not offsets into the region. */
bool mr_cache_virt_addr(const struct mr_cache *c);
/* What the peer passes to fi_read to reach addr. */
uint64_t mr_entry_remote_addr(const struct mr_entry *e, const void *addr);
/* Close every registration (before the domain closes); held ones must
 * have been put. The memory goes when the last chunk destructor has run. */
void mr_cache_close(struct mr_cache *c);


#endif
