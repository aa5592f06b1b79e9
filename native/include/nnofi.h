/* nnofi public C API: the Python layer's cdef mirrors the block between
 * the CDEF markers (build_ffi.py extracts it), so keep it plain C89 syntax. */
#ifndef NNOFI_H
#define NNOFI_H

#include <stddef.h>
#include <stdint.h>

/* CDEF-BEGIN */
/* Protocol ids, as on the wire (SP header). */
#define NNOFI_PAIR 16
#define NNOFI_PUB 32
#define NNOFI_SUB 33
#define NNOFI_REQ 48
#define NNOFI_REP 49
#define NNOFI_PUSH 80
#define NNOFI_PULL 81
#define NNOFI_SURVEYOR 98
#define NNOFI_RESPONDENT 99
#define NNOFI_BUS 112

/* send/recv flags */
#define NNOFI_DONTWAIT 1
/* Receive: with NNOFI_DONTWAIT, take only a message already received
 * (no look at the connections): a caller's cheap first try. */
#define NNOFI_QUEUED 2

/* Integer options (milliseconds for times, bytes for sizes, -1 = none). */
#define NNOFI_OPT_SEND_TIMEOUT 1
#define NNOFI_OPT_RECV_TIMEOUT 2
#define NNOFI_OPT_RECV_MAX_SIZE 3
#define NNOFI_OPT_SEND_BUFFER 4
#define NNOFI_OPT_RECV_BUFFER 5
#define NNOFI_OPT_RECONNECT_IVL 6
#define NNOFI_OPT_RECONNECT_IVL_MAX 7
#define NNOFI_OPT_LINGER 8
#define NNOFI_OPT_REQ_RESEND_IVL 9
#define NNOFI_OPT_SPIN_US 10
#define NNOFI_OPT_SURVEY_TIME 11
/* byte-string options (nnofi_setopt_bytes) */
#define NNOFI_OPT_SUBSCRIBE 12
#define NNOFI_OPT_UNSUBSCRIBE 13
/* ofi:// only. Messages of at least this many bytes go by rendezvous
 * (the peer reads them with fi_read) where both sides have FI_RMA; -1:
 * never. */
#define NNOFI_OPT_RENDEZVOUS_MIN 14
/* Bytes of memory registrations a connection keeps cached. */
#define NNOFI_OPT_MR_CACHE_MAX 15
/* 1 (default): connections use RMA where the provider has it; 0: never
 * (both directions copy, as with a provider without FI_RMA). */
#define NNOFI_OPT_OFI_RMA 16
/* ipc:// listeners bound after it is set: the socket file's permission
 * bits (default 0600: only the owner may connect). */
#define NNOFI_OPT_IPC_PERMISSIONS 17
/* tcp:// connections made after it is set: ms of silence before TCP
 * keepalive probes a peer (default 10000; 0: off). */
#define NNOFI_OPT_TCP_KEEPALIVE 18

/* Statistics counters (index into nnofi_stats' array). The ones after
 * MSGS_DROPPED say why a connection or message was refused. */
#define NNOFI_STAT_MSGS_SENT 0
#define NNOFI_STAT_MSGS_RECV 1
#define NNOFI_STAT_BYTES_SENT 2
#define NNOFI_STAT_BYTES_RECV 3
#define NNOFI_STAT_PIPES_OPENED 4
#define NNOFI_STAT_PIPES_CLOSED 5
#define NNOFI_STAT_PIPES_BROKEN 6
#define NNOFI_STAT_MSGS_DROPPED 7
#define NNOFI_STAT_HANDSHAKES_REJECTED 8
#define NNOFI_STAT_HANDSHAKE_TIMEOUTS 9
#define NNOFI_STAT_FRAMES_OVERSIZE 10
#define NNOFI_STAT_FRAMES_MALFORMED 11
#define NNOFI_STAT_HEADERS_MALFORMED 12
#define NNOFI_STAT_UNEXPECTED_MSGS 13
/* ofi:// memory registration cache and rendezvous transfers */
#define NNOFI_STAT_MR_HITS 14
#define NNOFI_STAT_MR_MISSES 15
#define NNOFI_STAT_MR_EVICTIONS 16
#define NNOFI_STAT_MR_BYTES_REGISTERED 17
#define NNOFI_STAT_RENDEZVOUS_SENT 18
#define NNOFI_STAT_RENDEZVOUS_RECV 19
/* accept() failed for want of fds or memory: the listener paused */
#define NNOFI_STAT_ACCEPT_ERRORS 20
/* write calls on tcp/ipc connections: a burst of small messages shares one */
#define NNOFI_STAT_WRITES 21
/* ofi:// rendezvous bodies read straight into the receive call's buffer */
#define NNOFI_STAT_RENDEZVOUS_IN_PLACE 22
#define NNOFI_STAT_COUNT 23

typedef struct nnofi_sock nnofi_sock;
typedef struct nnofi_msg nnofi_msg;

/* All functions return 0 or a positive errno-style code (EAGAIN,
 * ETIMEDOUT, EBADF for a closed socket, EFSM-like EPROTO for a call in
 * the wrong protocol state, ...). */
/* raw: keep SP headers (backtraces, request ids) for devices. */
int nnofi_socket(int protocol, int raw, nnofi_sock **out);
/* Shuts the socket down: wakes every blocked caller with EBADF, closes
 * pipes and endpoints. The memory lives until nnofi_release. */
int nnofi_close(nnofi_sock *s);
void nnofi_release(nnofi_sock *s);

int nnofi_setopt(nnofi_sock *s, int opt, int64_t value);
int nnofi_getopt(nnofi_sock *s, int opt, int64_t *value);
int nnofi_setopt_bytes(nnofi_sock *s, int opt, const void *data, size_t len);
void nnofi_stats(nnofi_sock *s, uint64_t *out, int n);
/* An fd that polls readable while a receive would not block. */
int nnofi_recv_fd(nnofi_sock *s, int *fd);
/* An fd that polls readable while a send would not block (as nanomsg's
 * NN_SNDFD): a protocol's send that never waits keeps it readable, and so
 * does a closed socket, for the send to fail fast. */
int nnofi_send_fd(nnofi_sock *s, int *fd);

/* bind/connect write the endpoint's real URL into url_out and its id. */
int nnofi_bind(nnofi_sock *s, const char *url, char *url_out, size_t url_cap, uint32_t *ep_id);
int nnofi_connect(nnofi_sock *s, const char *url, char *url_out, size_t url_cap, uint32_t *ep_id);
int nnofi_endpoint_close(nnofi_sock *s, uint32_t ep_id);

/* Send len bytes at buf. The buffer is only borrowed for the call unless
 * *retained is set on return: then the core keeps a pointer to it (zero
 * copy, e.g. inproc) and reports `handle` through nnofi_reap once done. */
int nnofi_send(nnofi_sock *s, const void *buf, size_t len, int flags, uint64_t handle, int *retained);
/* Handles of retained send buffers the core no longer uses. */
int nnofi_reap(uint64_t *handles, int max);

/* One call hands back the message and where its bytes are. */
typedef struct {
    nnofi_msg *msg;
    void *data;
    size_t len;
} nnofi_recv_result;
int nnofi_recv(nnofi_sock *s, int flags, nnofi_recv_result *out);
/* Receive straight into a caller buffer: *len is the message size (may be
 * larger than cap, then the message is truncated and *len tells by how much). */
int nnofi_recv_into(nnofi_sock *s, void *buf, size_t cap, int flags, size_t *len);
/* ofi:// rendezvous straight into the caller's memory. rendezvous_waiting
 * gives the size of a big message (no SP header) whose body has not been
 * read yet, or 0. recv_landing receives like nnofi_recv while offering buf
 * (len bytes) for a body of exactly len bytes: *landed is 1 if the message
 * returned is in buf (its data points there), 0 if it is elsewhere. buf is
 * never written after the call returns. */
size_t nnofi_rendezvous_waiting(nnofi_sock *s);
int nnofi_recv_landing(nnofi_sock *s, int flags, void *buf, size_t len, nnofi_recv_result *out, int *landed);
/* Batches: one call for many messages. send_many sends n messages packed
 * back to back in buf (lens[i] bytes each; over tcp/ipc they leave in few
 * writes); *sent says how many went. recv_many waits for the first (as
 * recv) and takes up to max that are already here and fit in cap bytes,
 * packed into buf, lens[i] each. */
int nnofi_send_many(nnofi_sock *s, const void *buf, const size_t *lens, int n, int flags, int *sent);
/* The same with each message at its own address. */
int nnofi_send_vec(nnofi_sock *s, const void *const *bufs, const size_t *lens, int n, int flags, int *sent);
int nnofi_recv_many(nnofi_sock *s, void *buf, size_t cap, size_t *lens, int max, int flags, int *got);
/* The same as messages (each .msg freed with nnofi_msg_free), no copy. */
int nnofi_recv_msgs(nnofi_sock *s, nnofi_recv_result *out, int max, size_t max_bytes, int flags, int *got);
/* Send a received message on (header too): shares its body, no copy. */
int nnofi_send_msg(nnofi_sock *s, nnofi_msg *m, int flags);
/* Forward between two raw sockets, both ways, until one is closed
 * (b NULL: a reflector sending back into a). Returns 0 on close. */
int nnofi_device(nnofi_sock *a, nnofi_sock *b);
void *nnofi_msg_data(nnofi_msg *m);
size_t nnofi_msg_header(nnofi_msg *m, void **data);
size_t nnofi_msg_len(nnofi_msg *m);
void nnofi_msg_free(nnofi_msg *m);
/* The address of a struct nnofi_fast_api (nnofi_fast.h): how the CPython
 * fast path (nnofi._fast) reaches this library's send and receive. */
uintptr_t nnofi_fast_api(void);

/* libfabric discovery (fi_getinfo), one entry per provider/fabric/domain/
 * endpoint type. */
typedef struct {
    char provider[64];
    char fabric[128];
    char domain[128];
    char ep_type[8];
    char caps[64];
    char address[64];
    uint64_t max_msg_size;
    int mr_local;
} nnofi_fabric_entry;
int nnofi_fabric_list(nnofi_fabric_entry *out, int max, int *count);
const char *nnofi_fabric_version(void);

const char *nnofi_strerror(int err);
/* Live objects, for leak tests. */
void nnofi_live_counts(int64_t *socks, int64_t *pipes, int64_t *msgs);
/* Memory registrations alive in the process (ofi://), and their bytes. */
void nnofi_mr_live(uint64_t *count, uint64_t *bytes);
/* CDEF-END */

/* A send's buffer of this many bytes or more, handed over with a handle
 * (nnofi_send), is kept by the core instead of copied; nnofi._fast lends
 * read-only ones this big (zero-copy inproc) and copies smaller ones. */
#define NNOFI_ZERO_COPY_MIN (64 * 1024)

#endif
