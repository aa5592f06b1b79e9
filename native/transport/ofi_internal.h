/* ofi://IP:PORT[@FABRIC[:PROVIDER]]: SP over libfabric, on connected
 * endpoints (FI_EP_MSG: tcp, sockets, verbs) or reliable datagrams
 * (FI_EP_RDM: shm, tcp;ofi_rxm, udp;ofi_rxd) with a handshake of nnofi's
 * own that gives every pipe an endpoint of its own (see ofi_rdm.c).
 *
 * Each direction carries the SP byte stream of tcp:// (8-byte SP header,
 * then frames of a 64-bit length and payload) cut into messages of at most
 * CHUNK bytes, sent from and received into registered buffers; small
 * messages queued together share one fi_send. Connection events (EQ) go
 * to the background thread; completions (CQ, FI_WAIT_FD) are polled by
 * whichever caller waits on the socket, like the fd of a tcp pipe, with
 * fi_trywait before it sleeps (MSG).
 *
 * Large messages go by rendezvous where both sides have FI_RMA (they say
 * so in the connection's private data): the sender puts a descriptor in
 * the stream instead of the body (length, address and key of its
 * registered buffer), the receiver fi_reads the body straight into the
 * message it delivers and acknowledges, and the sender drops its
 * reference. No copy on either side; registrations come from a cache
 * (mr_cache.c). The stream after a descriptor waits for its ack: messages
 * stay in order, and the receive buffers stay posted (a provider that
 * finds none for an incoming message may hold up the read's data behind
 * it on the same connection, as tcp does). Without FI_RMA, or below
 * rendezvous_min, bytes are copied through the buffers.
 *
 * RDM CQs are polled rather than slept on (shm has no wait fd; rxm's
 * misses the progress its connections need): by a waiting caller while it
 * spins, and by the background thread every POLL_MS.
 *
 * The transport's files, one job each:
 *   ofi_select.c  URLs, provider selection, the shared fabric
 *   ofi_pipe.c    one pipe's data path: the stream, rendezvous, pipe ops
 *   ofi_conn.c    one connection's life: set-up, events, handshake, timers
 *   ofi_ep.c      listeners and dialers: bind, connect, stop
 *   ofi_rdm.c     RDM connections: the HELLO/WELCOME handshake, its listener
 *   ofi_tcpsock.c the tcp provider's own sockets: keepalive, and strays shed
 * This header holds what they share. */
#ifndef NNOFI_OFI_INTERNAL_H
#define NNOFI_OFI_INTERNAL_H

#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <rdma/fabric.h>
#include <rdma/fi_eq.h>

#include "core.h"
#include "framing.h"

#define DBG(...) do { if (getenv("NNOFI_DEBUG")) fprintf(stderr, __VA_ARGS__); } while (0)
#define CHUNK (64 * 1024)
#define NRX 8
#define NTX 8

/* Control frames in the stream: a frame header whose top byte is one of
 * these (real lengths stay below 2^46), then the control body. */
#define CTL_RDV 0x80 /* u64 total, u64 remote addr, u64 key, u64 id, SP header words */
#define CTL_ACK 0x81 /* u64 id: the peer has read rendezvous `id` */
#define CTL_BYE 0x82 /* empty: the peer closes, nothing follows (RDM has no FI_SHUTDOWN; sockets reports one before the last data) */
#define CTL_PING 0x83 /* empty: RDM heartbeat; on MSG, a probe the peer answers */
#define CTL_PONG 0x84 /* empty: the answer to a MSG pipe's probe */
#define RDV_DESC 32
#define CTL_MAX (8 + RDV_DESC + NNOFI_MAX_HDR)
#define RDV_PIECE (4u << 20) /* bytes per fi_read */
#define RDV_READS 4          /* reads in flight per pipe */
/* Descriptors sent ahead of their acks. While the receiver reads one, the
 * sends that may reach it are the others and as many acks of its own
 * descriptors, and a heartbeat: 2 * RDV_AHEAD, which must leave it a
 * posted buffer (NRX) or the tcp provider stalls (ofi_pipe.c). */
#define RDV_AHEAD 3
_Static_assert(2 * RDV_AHEAD < NRX, "rendezvous run-ahead leaves no posted buffer");

#define MSG_HANDSHAKE_MS 10000 /* as tcp:// and ipc:// handshakes */

#define NHELLO 4
#define MAX_STRAYS 64 /* a sweep sheds the rest later */
#define HELLO_MAX 256

/* Connection private data: which side can read the other's memory. */
struct cm_data {
	char magic[4]; /* "NNOF" */
	uint8_t version, flags;
	uint8_t pad[2];
};
#define CM_RMA 1

/* An ofi:// URL's parts (ofi_addr_parse). */
struct ofi_addr {
	char ip[64];
	char port[8];
	char fabric[128];   /* "" = any */
	char provider[64];  /* "" = best for the address */
};

/* A fabric, shared by an endpoint and its pipes; the last unref closes it. */
struct ofi_fabric {
	atomic_int refs;
	struct fid_fabric *fabric;
};

/* What a completion's op_context points at: each starts with this. */
enum octx_kind { CTX_RX, CTX_TX, CTX_READ };
struct octx {
	struct fi_context2 ctx; /* first: completions hand us this pointer */
	enum octx_kind kind;
};

struct obuf {
	struct octx c;
	struct opipe *owner;
	bool busy;
	bool unposted; /* tx: filled, but the provider said FI_EAGAIN */
	size_t fill;   /* tx: bytes in it */
	uint8_t *data;
	struct fid_mr *mr;
	void *desc;
};

/* Receiving side of the SP stream: SP header, then frames. */
struct decoder {
	uint8_t sp[SP_HEADER_SIZE];
	size_t spgot;
	bool sp_done;
	uint8_t fh[8];
	size_t fhgot;
	nnofi_msg *m;
	size_t got, cap; /* bytes of m's body in, and allocated */
	/* a control frame (rendezvous descriptor or ack) being collected */
	uint8_t ctl_kind;
	uint8_t ctl[CTL_MAX];
	size_t ctl_need, ctl_got;
};

/* Sender: a message the peer may read, until its ack. */
struct rdv_out {
	struct rdv_out *next;
	uint64_t id;
	nnofi_msg *m;
	struct mr_entry *mr;
};

/* Receiver: the rendezvous being read (one at a time: the stream waits). */
struct rdv_in {
	bool active;
	nnofi_msg *m; /* NULL until its reads begin */
	bool unread; /* not begun, no SP header, pipe attached: a receive call may offer its memory (counted in the socket's unread_rendezvous) */
	uint8_t hdr[NNOFI_MAX_HDR];
	struct mr_entry *mr;
	uint64_t id, raddr, key;
	size_t hdr_len, body_len, issued, done;
	int inflight;
	struct octx reads[RDV_READS];
	size_t read_len[RDV_READS]; /* 0: slot free */
};

struct opipe {
	struct pipe base;
	struct endpoint *ep;
	struct ofi_fabric *fab;
	struct fid_domain *domain;
	struct fid_eq *eq;
	struct fid_ep *fep;
	struct fid_cq *cq;
	int eq_fd, cq_fd;
	struct bg_watch eq_watch, cq_watch;
	struct bg_timer eq_rearm;
	/* cq_watched: the CQ fd is in the background thread's epoll; cq_idle:
	 * one-shot there, re-armed CQ_IDLE_REARM_MS after it fires (no backlog:
	 * the thread only looks out for a peer's BYE or hang-up) */
	bool cq_idle;
	struct bg_timer cq_rearm;
	/* RDM (shm, rxm): the pipe's own endpoint talks to one peer address;
	 * no EQ. A CQ without a wait fd (shm) is polled by a timer. */
	bool rdm, welcomed, peer_gone, shut_seen;
	bool probing; /* MSG: heartbeats on, another peer waits for this one's place */
	struct fid_av *av;
	fi_addr_t peer;
	struct bg_timer poll, hs_timeout, heartbeat, shut_grace;
	int64_t last_heard;
	bool heard; /* since the heartbeat last looked: it reads the clock then, not each completion */
	bool connected, attached, closing, cq_watched;
	bool header_waits; /* the peer's SP header came before FI_CONNECTED */
	struct obuf rx[NRX], tx[NTX];
	size_t inject_size; /* frames up to this size go by fi_inject: no completion to reap */
	struct decoder dec;
	/* posted receive buffers in the order they were posted, which is the
	 * order messages fill them; completions may come in another order
	 * (rxm finishes a big message after a small one behind it), so the
	 * stream is fed from the head, once it is done */
	int rx_order[NRX], rx_order_n;
	bool rx_done[NRX];
	size_t rx_len[NRX], rx_off[NRX];
	/* send side: the frame being cut into buffers, then queued ones */
	nnofi_msg *cur;
	uint8_t cur_fh[CTL_MAX];
	size_t cur_fh_len, cur_off;
	struct rdv_out *cur_rdv; /* cur goes by rendezvous: only cur_fh is sent */
	struct msgq txq;
	/* control frames waiting for the next frame boundary */
	uint8_t *ctl;
	size_t ctl_len, ctl_cap;
	/* rendezvous */
	bool rma, peer_rma;
	struct mr_cache *mrc;
	struct rdv_out *outs; /* newest first */
	int outs_n;
	uint64_t rdv_seq;
	struct rdv_in rd;
	bool sp_sent;
	struct opipe *next_unattached;
	/* accepted (MSG): the peer's address, which no stray has (ofi_tcpsock.c) */
	struct sockaddr_storage peer_sa;
	size_t peer_sa_len;
};

struct ofi_ep {
	struct ofi_addr addr;
	struct fi_info *info;
	struct ofi_fabric *fab;
	struct fid_eq *eq;       /* listener: connection requests */
	struct fid_pep *pep;
	int eq_fd;
	struct bg_watch watch;
	struct bg_timer rearm;
	bool stopped;
	/* RDM: no connections underneath; the listener is an endpoint that
	 * takes hellos, and each pipe gets its own endpoint (like accept) */
	bool rdm, named; /* named: shm-style string addresses, not IP:port */
	char name[HELLO_MAX]; /* named: our listener's or the peer's address */
	struct fid_domain *domain;
	struct fid_av *av;
	struct fid_cq *cq;
	struct fid_ep *lep;
	struct lbuf {
		struct octx c;
		struct fid_mr *mr;
		uint8_t data[HELLO_MAX];
	} hello[NHELLO];
	struct endpoint *ep;
	struct opipe *pending; /* dialer: the connection being made */
	struct opipe *unattached; /* connections still in their SP handshake */
	/* MSG listener: accepted sockets the provider never reported */
	struct sockaddr_storage local;
	bool local_wildcard;
	struct bg_timer stray_sweep;
	struct stray {
		int fd;
		ino_t ino;
		int64_t since;
	} strays[MAX_STRAYS];
	int nstray;
};

/* A connection event with room for the peer's private data. */
struct cm_event {
	_Alignas(struct fi_eq_cm_entry) uint8_t raw[sizeof(struct fi_eq_cm_entry) + 64];
};

/* After a wake-up with no connection request: the longest a new
 * connection may wait while data flows on others. */
#define LISTENER_REARM_MS 5

/* Hello kinds of the RDM handshake (ofi_rdm.c). */
enum { HELLO = 1, WELCOME = 2 };

/* ofi_select.c */
int ofi_addr_parse(const char *rest, struct ofi_addr *a);
int ofi_select(const struct ofi_addr *a, bool passive, struct fi_info **out, bool *named);
struct ofi_fabric *fabric_open(struct fi_info *fi);
void fabric_unref(struct ofi_fabric *f);

/* ofi_pipe.c */
extern const struct pipe_ops opipe_ops;
uint64_t next_mr_key(void);
int buf_setup(struct opipe *op, struct obuf *b, bool is_tx);
int post_recv(struct opipe *op, struct obuf *b);
struct obuf *free_tx(struct opipe *op);
int tx_post(struct opipe *op, struct obuf *b);
int tx_pump(struct opipe *op);
bool queue_ctl(struct opipe *op, uint8_t kind, const uint8_t *body, size_t len);
void drain_rx(struct opipe *op);
void watch_backlog(struct opipe *op);
bool progress(struct opipe *op);
bool opipe_busy(struct pipe *p);
void release_fids(struct opipe *op);
void stop_watching(struct opipe *op);
void opipe_destroy(struct pipe *p);

/* ofi_conn.c */
void discard_unattached(void *arg);
void opipe_fail(struct opipe *op);
bool handshake_done(struct opipe *op);
void send_sp_header(struct opipe *op);
struct cm_data cm_data_of(const struct opipe *op);
bool peer_can_read(const void *ev, ssize_t n);
void eq_drain(struct opipe *op);
void connection_ended(struct opipe *op);
int cq_open(struct fid_domain *domain, size_t size, bool polled, struct fid_cq **cq, int *fd);
struct opipe *opipe_new(struct endpoint *ep, struct ofi_fabric *fab, struct fi_info *fi);
void watch_unattached(struct opipe *op);
void watch_idle(struct opipe *op);

/* ofi_tcpsock.c */
void stray_watch_start(struct ofi_ep *oe);
void note_peer(struct opipe *op, const struct fi_info *fi);
void keepalive_pipe(struct opipe *op);

/* ofi_ep.c */
void listener_rearm_fire(struct bg_timer *t);
void bound_port(struct fid *fid, char port[8]);
void describe(struct endpoint *ep, struct ofi_ep *oe, const char *port);

/* ofi_rdm.c */
bool send_hello(struct opipe *op, int kind);
bool insert_peer(struct opipe *op, const void *name);
bool rdm_welcome(struct opipe *op, const uint8_t *msg, size_t len);
bool rdm_listener_poll(struct ofi_ep *oe);
void rdm_listener_close(struct ofi_ep *oe);
void make_name(struct ofi_ep *oe, const char *port);
int rdm_bind(struct endpoint *ep, struct ofi_ep *oe);

#endif
