/* Internal structures of the nnofi core: messages, sockets, pipes,
 * endpoints, and the interfaces protocols and transports implement. */
#ifndef NNOFI_CORE_H
#define NNOFI_CORE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
#include <netinet/in.h>
#include <sys/un.h>

#include "nnofi.h"

#define NNOFI_MAX_HOPS 8
#define NNOFI_MAX_HDR (4 * (NNOFI_MAX_HOPS + 1))
#define NNOFI_URL_MAX 512

/* ---- messages ------------------------------------------------------ */

/* Destructors chain: each link runs once when the chunk dies, last added
 * first, so a transport can add "drop my registration" on top of the
 * owner's "give the buffer back". */
struct dtor_link {
	void (*fn)(void *arg, void *data, size_t len);
	void *arg;
	struct dtor_link *next;
};

/* Ref-counted storage of a message body. Inline chunks carry their bytes
 * after the struct; external ones point at memory someone else owns. */
struct chunk {
	atomic_int refs;
	bool pooled; /* a SMALL_BODY block from this thread's pool (msg.c) */
	uint8_t *data;
	size_t len;
	size_t cap; /* inline data: bytes allocated for it (len or more) */
	struct dtor_link *dtors;
};

struct nnofi_msg {
	struct nnofi_msg *next; /* queue link */
	struct chunk *chunk;
	uint8_t *body; /* inside chunk->data */
	size_t len;
	uint32_t pipe_id; /* pipe it arrived on */
	size_t hdr_len;
	uint8_t hdr[NNOFI_MAX_HDR]; /* SP backtrace / request id words */
};

struct chunk *chunk_alloc(size_t len);
struct chunk *chunk_external(void *data, size_t len);
void chunk_add_dtor(struct chunk *c, void (*fn)(void *, void *, size_t), void *arg);
void chunk_ref(struct chunk *c);
void chunk_unref(struct chunk *c);

nnofi_msg *msg_alloc(size_t len);           /* fresh inline body */
nnofi_msg *msg_try_alloc(size_t len);       /* NULL if memory is short */
/* len bytes for now, up to grows_to by msg_try_resize: a kept block that big serves */
nnofi_msg *msg_try_alloc_growing(size_t len, size_t grows_to);
/* A body at the same offset in its page as address `like` (copies from there run aligned) */
nnofi_msg *msg_try_alloc_aligned_as(size_t len, uintptr_t like);
/* Give a fresh inline body room for cap bytes (it may move); false if
 * memory is short. m->len is the caller's to set. */
bool msg_try_resize(nnofi_msg *m, size_t cap);
nnofi_msg *msg_on_chunk(struct chunk *c);   /* shares c (takes a ref) */
nnofi_msg *msg_dup(const nnofi_msg *m);     /* shares the body */
void msg_free(nnofi_msg *m);

struct msgq {
	nnofi_msg *head, *tail;
	size_t count, bytes;
};
void msgq_push(struct msgq *q, nnofi_msg *m);
nnofi_msg *msgq_pop(struct msgq *q);
void msgq_push_front(struct msgq *q, nnofi_msg *m);
void msgq_clear(struct msgq *q);

/* ---- time, errors ----------------------------------------------------- */

int64_t now_ms(void);
int64_t now_ns(void);
#define NS_PER_MS INT64_C(1000000)
#define NS_PER_S INT64_C(1000000000)
/* Deadline from a timeout in ms (-1 = never -> INT64_MAX). */
int64_t deadline_after(int64_t timeout_ms);
void die_on(int cond, const char *what); /* internal invariant broken */
void tcp_keepalive(int fd, int64_t idle_ms); /* 0: off (util.c says why) */

/* ---- URLs ------------------------------------------------------------ */

enum url_scheme { URL_INPROC, URL_IPC, URL_TCP, URL_OFI };

struct url {
	enum url_scheme scheme;
	char text[NNOFI_URL_MAX]; /* as given */
	char host[256];           /* tcp: host without brackets, "*" for any */
	char name[NNOFI_URL_MAX]; /* inproc name, ipc path */
	int port;
	bool ipv6_literal;
};
/* Returns 0 or EINVAL (bad syntax), EPROTONOSUPPORT (unknown scheme). */
int url_parse(const char *text, struct url *out);

/* ---- background progress thread ------------------------------------- */

/* An object the background thread watches: an fd with a callback, run in
 * the background thread. */
struct bg_watch {
	int fd;
	void (*on_event)(struct bg_watch *w, uint32_t events);
};
/* Timers fire once in the background thread. */
struct bg_timer {
	int64_t when_ns; /* CLOCK_MONOTONIC, as now_ns() */
	void (*fire)(struct bg_timer *t);
	struct bg_timer *next;
	bool armed;
};

void bg_start(void);
int bg_watch_add(struct bg_watch *w, uint32_t events);
int bg_watch_mod(struct bg_watch *w, uint32_t events);
void bg_watch_del(struct bg_watch *w);
/* Timers may be (re)armed and cancelled from any thread; both return
 * whether the timer was armed before. */
bool bg_timer_arm(struct bg_timer *t, int64_t when_ms); /* when: now_ms() + ... */
bool bg_timer_arm_ns(struct bg_timer *t, int64_t when_ns); /* when: now_ns() + ... */
bool bg_timer_cancel(struct bg_timer *t);
/* Run fn(arg) in the background thread after the current event batch;
 * also how objects the background thread may still see get freed. */
void bg_defer(void (*fn)(void *), void *arg);

/* ---- pipes, endpoints, sockets --------------------------------------- */

struct nnofi_sock;
struct pipe;
struct endpoint;

/* What a transport does with one connected pipe. */
struct pipe_ops {
	/* Queue or write msg (header + body); 0, or EAGAIN if the pipe can't
	 * take it now. `borrowed`: body is the caller's and must not be
	 * referenced after the send call returns (see sock_send). */
	int (*send)(struct pipe *p, nnofi_msg *m, bool borrowed);
	/* Pull whatever is readable into messages (calls sock_deliver). */
	void (*read_ready)(struct pipe *p);
	/* Finish writing a pending frame. */
	void (*write_ready)(struct pipe *p);
	/* The socket drops the pipe: release transport state (sock locked). */
	void (*close)(struct pipe *p);
	/* Bytes of the send call `token` still to be written from the
	 * caller's buffer (0: none). */
	size_t (*borrowing)(struct pipe *p, uint64_t token);
	/* Copy the rest of a borrowed frame so the caller can return. */
	void (*own_pending)(struct pipe *p);
	void (*destroy)(struct pipe *p); /* free, no locks held */
	/* Optional (ofi): completions are waiting, so the caller must not
	 * sleep on the fd yet (fi_trywait). */
	bool (*busy)(struct pipe *p);
	/* With busy: read the completions; true if there were any. A
	 * spinning caller's look: unlike busy it leaves the fd's wake-up
	 * signal set, so the provider signals once per sleep, not once per
	 * completion. */
	bool (*poll)(struct pipe *p);
	/* Optional (ofi): bytes still on their way out (close lingers). */
	bool (*sending)(struct pipe *p);
	/* Optional (ofi): the body size of a rendezvous not read yet, whose
	 * message has no SP header (0: none) */
	size_t (*rendezvous_waiting)(struct pipe *p);
	/* Optional: another peer wants this pipe's place (PAIR), so make a
	 * peer that vanished without a word show it soon: the pipe then
	 * fails, and the next dial gets in. */
	void (*probe)(struct pipe *p);
};

struct pipe {
	struct nnofi_sock *sock;
	const struct pipe_ops *ops;
	uint32_t id;
	bool writable;   /* can take a message right now */
	bool dead;
	bool broken;     /* died by error rather than orderly close */
	struct endpoint *ep; /* endpoint that made it (for reconnect) */
	void *proto_data;
	int fd;          /* -1 for inproc */
	bool want_write; /* fd polled for EPOLLOUT */
	/* received messages not yet taken by the user; the socket serves the
	 * pipes that have some in turn (fair queueing) */
	struct msgq inq;
	bool in_ready;
	struct pipe *ready_next;
};

enum ep_kind { EP_BIND, EP_CONNECT };

/* What a transport does for an endpoint (listener or dialer). */
struct ep_ops {
	/* Stop listening/dialing; called without the socket lock. Frees the
	 * transport state (deferred past the background thread's batch). */
	void (*stop)(struct endpoint *ep);
	/* Dialers: connect (again), sock locked. The socket calls it after
	 * backoff when a dial fails or the endpoint's pipe dies. */
	void (*dial)(struct endpoint *ep);
};

struct endpoint {
	struct nnofi_sock *sock;
	uint32_t id;
	enum ep_kind kind;
	struct url url;
	char real_url[NNOFI_URL_MAX];
	const struct ep_ops *ops;
	void *tdata;       /* transport's state */
	bool closed;
	int64_t backoff;   /* current reconnect interval */
	struct bg_timer redial;
	struct endpoint *next;
};

/* What a protocol does. All run with the socket locked. */
struct proto_ops {
	int id, peer_id;
	size_t data_size;
	void (*init)(struct nnofi_sock *s);
	void (*fini)(struct nnofi_sock *s);
	/* false = refuse the pipe (e.g. PAIR already has a peer). */
	bool (*pipe_add)(struct nnofi_sock *s, struct pipe *p);
	void (*pipe_remove)(struct nnofi_sock *s, struct pipe *p);
	/* A pipe can take messages again. */
	void (*pipe_writable)(struct nnofi_sock *s, struct pipe *p);
	/* 0 sent, EAGAIN nothing can take it now, else an error. */
	int (*send)(struct nnofi_sock *s, nnofi_msg *m, bool borrowed);
	/* Message from a pipe: queue it (sock_enqueue), or drop it. */
	void (*deliver)(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m);
	/* Hand the next message to the user; NULL if none (*err: why not). */
	nnofi_msg *(*recv)(struct nnofi_sock *s, int *err);
	/* Protocol timers driven from blocking calls: returns next deadline. */
	int64_t (*tick)(struct nnofi_sock *s, int64_t now);
	/* Byte-string options (SUB's subscriptions). */
	int (*setopt)(struct nnofi_sock *s, int opt, const void *data, size_t len);
	/* A full receive queue drops new messages (counted) instead of
	 * pushing back on the sender: PUB/SUB, BUS, survey responses. */
	bool drop_when_full;
	/* Peers never send to it (PUSH, PUB): the background thread reads its
	 * pipes, so a peer that talks anyway is cut off even when idle. */
	bool send_only;
	/* A send would wait now (nnofi_send_fd); NULL: a send never waits,
	 * it goes, drops or fails at once. */
	bool (*send_waits)(struct nnofi_sock *s);
};

struct nnofi_sock {
	pthread_mutex_t mtx;
	pthread_cond_t cv;
	int cv_waiters;
	atomic_int refs;
	const struct proto_ops *proto;
	void *proto_data;
	bool raw;   /* SP headers kept for the user (devices) */
	bool closed;

	/* options */
	int64_t send_timeout, recv_timeout, recv_max_size;
	int64_t send_buffer, recv_buffer;
	bool send_buffer_set, recv_buffer_set; /* then they size kernel buffers */
	int64_t reconnect_ivl, reconnect_ivl_max, linger, req_resend_ivl;
	int64_t spin_us; /* poll without sleeping this long before blocking */
	int64_t survey_time;
	int64_t rendezvous_min, mr_cache_max, ofi_rma; /* ofi:// */
	int64_t ipc_permissions; /* mode bits of ipc socket files */
	int64_t tcp_keepalive;   /* ms of silence before probes; 0: off */

	/* Messages ready for the user: per pipe (inq, served round-robin
	 * through the ready list) plus rq for those whose pipe has gone. */
	struct msgq rq;
	struct pipe *ready_head, *ready_tail, *delivering;
	size_t queued, queued_bytes;
	bool reads_paused; /* queued_bytes is over recv_buffer */

	struct pipe **pipes;
	int npipes, pipes_cap;
	uint32_t next_pipe_id;
	struct endpoint *eps;
	uint32_t next_ep_id;

	/* One caller at a time polls the pipes (epfd) itself; others wait
	 * on cv. wakefd is in epfd: it interrupts that poller and makes the
	 * socket's readiness fd readable. */
	int epfd, wakefd;
	bool polling;
	atomic_bool sleeping;
	atomic_bool rfd_used;
	bool wake_signaled;
	atomic_int inproc_pending; /* inproc pipes with queued messages */
	/* nnofi_send_fd: an eventfd (made on first use, -1 before) kept
	 * readable while a send would not wait. send_blocked: it was drained,
	 * so an inproc peer's kick (room in its mailbox) must signal it. */
	int sendfd;
	atomic_bool sfd_used, send_blocked;
	bool send_signaled;
	int trywait_pipes; /* pipes with ops->busy (ofi) */
	struct landing *landing; /* a receive call's buffer on offer (nnofi_recv_landing) */
	atomic_int unread_rendezvous; /* pipes whose rendezvous read (no SP header) has not begun */
	int polled_pipes;  /* ... of which without a wait fd */

	/* The send call in progress: a stream pipe that keeps writing from
	 * the caller's buffer after a partial write records the token, the
	 * caller waits for it (zero copy); inproc may retain the buffer. */
	uint64_t send_token, send_seq;
	uint32_t sent_pipe;
	uint64_t send_handle;
	bool send_retained;
	bool corked; /* send_many: stream pipes queue, then write in batches */
	/* Sends back to back, with no receive between, are a burst: stream
	 * pipes queue its small messages and write them together (one
	 * syscall for many); a send after a receive or a pause goes out at
	 * once, so request/reply latency is untouched. */
	bool send_burst;
	bool batches_queued; /* a batch may wait: written out before a receive blocks */
	int64_t last_send_ns; /* 0 after a receive */
	nnofi_msg *send_owned;

	/* Runs proto->tick in the background thread, for protocol timers
	 * that must fire while nobody is in a call (REQ resend). */
	struct bg_timer timer;
	int64_t timer_at; /* ms it is armed for, INT64_MAX if not */

	atomic_uint_fast64_t stats[NNOFI_STAT_COUNT];
};

void sock_ref(struct nnofi_sock *s);
void sock_unref(struct nnofi_sock *s);
void sock_stat(struct nnofi_sock *s, int which, uint64_t n);
/* Transports call these with the socket locked. */
uint32_t sock_new_pipe_id(struct nnofi_sock *s);
bool sock_add_pipe(struct nnofi_sock *s, struct pipe *p);   /* false: refused */
void sock_remove_pipe(struct nnofi_sock *s, struct pipe *p, bool broken);
void sock_deliver(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m);
/* A receive call's buffer, offered while it waits: a transport reading a
 * body of len bytes (up_to: len or fewer) may read it in there. */
struct landing {
	uint8_t *buf;
	size_t len;
	bool up_to;
	nnofi_msg *msg; /* the message on buf, once claimed */
	bool reading;   /* its transport may still write buf */
};
/* A message on the landing buffer for a body of len bytes, or NULL; the
 * transport then calls sock_landing_done when it no longer writes it
 * (read, or given up: the message is then freed, not delivered). */
nnofi_msg *sock_claim_landing(struct nnofi_sock *s, size_t len);
void sock_landing_done(struct nnofi_sock *s, nnofi_msg *m, bool delivered);
void sock_enqueue(struct nnofi_sock *s, nnofi_msg *m);
/* recvq.c: the fair receive queue (sock locked). p NULL: no pipe. */
void recvq_push(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m);
nnofi_msg *sock_dequeue(struct nnofi_sock *s);
void recvq_orphan(struct nnofi_sock *s, struct pipe *p);
void recvq_clear(struct nnofi_sock *s);
void recvq_unpop(struct nnofi_sock *s, nnofi_msg *m);
void sock_pipe_writable(struct nnofi_sock *s, struct pipe *p);
/* Wake whoever waits on the socket (poller via wakefd, others via cv). */
void sock_kick(struct nnofi_sock *s);
void sock_kick_locked(struct nnofi_sock *s);
/* Take in what inproc peers delivered or changed (sock locked). */
void sock_process_inproc(struct nnofi_sock *s);
/* Have proto->tick called at `when` even if no thread is in the socket. */
void sock_timer_arm(struct nnofi_sock *s, int64_t when);
/* A dialer failed or lost its pipe: dial again after the backoff
 * (reconnect_ivl, doubling up to reconnect_ivl_max). Sock locked. */
void sock_ep_redial_later(struct endpoint *ep);
struct pipe *sock_find_pipe(struct nnofi_sock *s, uint32_t id);
/* Add/remove a stream pipe's fd to the socket's poll set. */
int sock_poll_add(struct nnofi_sock *s, struct pipe *p);
void sock_poll_update(struct nnofi_sock *s, struct pipe *p, bool want_write);
bool sock_peer_compatible(struct nnofi_sock *s, int peer_proto);

/* ---- protocols -------------------------------------------------------- */

extern const struct proto_ops proto_pair, proto_push, proto_pull, proto_req, proto_rep,
	proto_pub, proto_sub, proto_surveyor, proto_respondent, proto_bus;
/* raw variants where raw differs: headers pass through to the user */
extern const struct proto_ops proto_xreq, proto_xrep, proto_xsurveyor, proto_xrespondent;

/* Helpers shared by protocols. */
struct pipe *proto_next_writable(struct nnofi_sock *s, uint32_t *cursor);
int proto_send_on(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m, bool borrowed);
int proto_send_round_robin(struct nnofi_sock *s, uint32_t *cursor, nnofi_msg *m, bool borrowed);
/* send_waits of PAIR, PUSH and raw REQ: no pipe can take a message. */
bool proto_no_writable_pipe(struct nnofi_sock *s);
/* Send to every pipe but `except` (0: none) that can take it now; pipes
 * that can't lose this message (counted). Never blocks. */
void proto_broadcast(struct nnofi_sock *s, nnofi_msg *m, bool borrowed, uint32_t except);
/* Move the SP backtrace (words up to the one with the top bit set) from
 * the body to the header, after `prefix` bytes already there; false if
 * malformed or longer than NNOFI_MAX_HOPS. */
bool proto_take_backtrace(nnofi_msg *m, size_t prefix);
/* Drop a message, counted, with a NNOFI_STAT_ reason or -1. */
void proto_drop(struct nnofi_sock *s, nnofi_msg *m, int reason);
/* The replying side of REQ/REP and SURVEYOR/RESPONDENT (reqrep.c):
 * proto_data is a struct replier; xrep_send routes by the header's pipe
 * id and drops what that pipe can't take. */
struct replier {
	bool have_bt;
	size_t bt_len;
	uint8_t bt[NNOFI_MAX_HDR];
};
void replier_deliver(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m);
nnofi_msg *replier_recv(struct nnofi_sock *s, int *err);
int xrep_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed);
/* For protocols with nothing to do per pipe, or without send or recv. */
bool proto_accept_pipe(struct nnofi_sock *s, struct pipe *p);
void proto_forget_pipe(struct nnofi_sock *s, struct pipe *p);
int proto_no_send(struct nnofi_sock *s, nnofi_msg *m, bool borrowed);
nnofi_msg *proto_no_recv(struct nnofi_sock *s, int *err);
void proto_queue_deliver(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m);
void proto_reject_deliver(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m);
uint32_t proto_first_id(struct nnofi_sock *s);
uint32_t proto_next_id(uint32_t *seq);
nnofi_msg *proto_queue_recv(struct nnofi_sock *s, int *err);
/* m kept past the send call: if its body is the caller's (borrowed), a
 * copy the call's pipes share (or the caller's buffer itself, big and
 * handed over); else another reference to it. */
nnofi_msg *sock_keep_msg(struct nnofi_sock *s, const nnofi_msg *m, bool borrowed);
void put_u32be(uint8_t *p, uint32_t v);
uint32_t get_u32be(const uint8_t *p);

/* ---- transports ------------------------------------------------------- */

int inproc_bind(struct endpoint *ep);
int inproc_connect(struct endpoint *ep);
int stream_bind(struct endpoint *ep);    /* tcp and ipc */
int stream_connect(struct endpoint *ep);
int ofi_bind(struct endpoint *ep);       /* ofi://IP:PORT[@FABRIC[:PROVIDER]] */
int ofi_connect(struct endpoint *ep);

#endif
