/* What nnofi._fast (native/python/fast.c) calls: the core's send and
 * receive by function pointer, since the core lives in the cffi module
 * and the fast path in a plain CPython extension. */
#ifndef NNOFI_FAST_H
#define NNOFI_FAST_H

#include "nnofi.h"

#define NNOFI_FAST_API_VERSION 3

struct nnofi_fast_api {
	int version;
	int (*send)(nnofi_sock *s, const void *buf, size_t len, int flags, uint64_t handle, int *retained);
	int (*recv)(nnofi_sock *s, int flags, nnofi_recv_result *out);
	void (*msg_free)(nnofi_msg *m);
	int (*send_vec)(nnofi_sock *s, const void *const *bufs, const size_t *lens, int n, int flags, int *sent);
	int (*recv_msgs)(nnofi_sock *s, nnofi_recv_result *out, int max, size_t max_bytes, int flags, int *got);
	size_t (*rendezvous_waiting)(nnofi_sock *s);
	int (*recv_landing)(nnofi_sock *s, int flags, void *buf, size_t len, nnofi_recv_result *out, int *landed);
};

#endif
