/* Sockets: options, pipes, endpoints, and the blocking send/recv loops.
 *
 * Latency path: a caller that has to wait polls the socket's pipes
 * itself (epoll on s->epfd, lock released) and does the reads/writes in
 * its own thread; only one caller polls at a time, the others wait on cv.
 * The background thread only accepts, dials and watches idle pipes. */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "core.h"

#define WAKE_KEY UINT64_MAX

atomic_long nnofi_live_socks, nnofi_live_pipes;
extern atomic_long nnofi_live_msgs;

/* ---- retained send buffers (zero-copy inproc) ------------------------- */

static pthread_mutex_t reap_mtx = PTHREAD_MUTEX_INITIALIZER;
static uint64_t *reaped;
static int reaped_n, reaped_cap;

static void reap_handle(void *arg, void *data, size_t len)
{
	(void)data;
	(void)len;
	pthread_mutex_lock(&reap_mtx);
	if (reaped_n == reaped_cap) {
		reaped_cap = reaped_cap ? 2 * reaped_cap : 64;
		reaped = realloc(reaped, (size_t)reaped_cap * sizeof(*reaped));
		die_on(reaped == NULL, "out of memory");
	}
	reaped[reaped_n++] = (uint64_t)(uintptr_t)arg;
	pthread_mutex_unlock(&reap_mtx);
}

int nnofi_reap(uint64_t *handles, int max)
{
	pthread_mutex_lock(&reap_mtx);
	int n = reaped_n < max ? reaped_n : max;
	if (n)
		memcpy(handles, reaped + (reaped_n - n), (size_t)n * sizeof(*handles));
	reaped_n -= n;
	pthread_mutex_unlock(&reap_mtx);
	return n;
}

/* Turn the borrowed message of the send call in progress into one the
 * core may keep. One owned body per call, shared by every pipe that needs
 * it: the caller's buffer itself (zero copy) when it gave a handle and the
 * body is big (NNOFI_ZERO_COPY_MIN), else a copy. */
static nnofi_msg *sock_own_msg(struct nnofi_sock *s, const nnofi_msg *m)
{
	if (!s->send_owned) {
		nnofi_msg *own;
		if (s->send_handle && m->len >= NNOFI_ZERO_COPY_MIN) {
			struct chunk *c = chunk_external(m->body, m->len);
			chunk_add_dtor(c, reap_handle, (void *)(uintptr_t)s->send_handle);
			own = msg_on_chunk(c);
			chunk_unref(c);
			s->send_retained = true;
		} else {
			own = msg_alloc(m->len);
			if (m->len)
				memcpy(own->body, m->body, m->len);
		}
		s->send_owned = own;
	}
	nnofi_msg *dup = msg_dup(s->send_owned);
	dup->hdr_len = m->hdr_len;
	memcpy(dup->hdr, m->hdr, m->hdr_len);
	dup->pipe_id = m->pipe_id;
	return dup;
}

nnofi_msg *sock_keep_msg(struct nnofi_sock *s, const nnofi_msg *m, bool borrowed)
{
	return borrowed ? sock_own_msg(s, m) : msg_dup(m);
}

/* After each attempt of a send call: the handle may be given out once. */
static void send_attempt_done(struct nnofi_sock *s, bool *handle_used, int *retained)
{
	if (s->send_retained) {
		*handle_used = true;
		*retained = 1;
	}
	s->send_retained = false;
	msg_free(s->send_owned);
	s->send_owned = NULL;
}

static void sock_timer_fire(struct bg_timer *t);

static int64_t spin_ns = -1;

/* ---- lifetime ------------------------------------------------------------ */

static const struct proto_ops *proto_by_id(int id, bool raw)
{
	switch (id) {
	case NNOFI_PAIR: return &proto_pair;
	case NNOFI_PUSH: return &proto_push;
	case NNOFI_PULL: return &proto_pull;
	case NNOFI_REQ: return raw ? &proto_xreq : &proto_req;
	case NNOFI_REP: return raw ? &proto_xrep : &proto_rep;
	case NNOFI_PUB: return &proto_pub;
	case NNOFI_SUB: return &proto_sub;
	case NNOFI_SURVEYOR: return raw ? &proto_xsurveyor : &proto_surveyor;
	case NNOFI_RESPONDENT: return raw ? &proto_xrespondent : &proto_respondent;
	case NNOFI_BUS: return &proto_bus;
	default: return NULL;
	}
}

int nnofi_socket(int protocol, int raw, nnofi_sock **out)
{
	const struct proto_ops *proto = proto_by_id(protocol, raw != 0);
	if (!proto)
		return EPROTONOSUPPORT;
	bg_start();
	if (spin_ns < 0) {
		/* spinning only pays when the peer can run on another core */
		const char *env = getenv("NNOFI_SPIN_US");
		spin_ns = (env ? atoll(env) : (sysconf(_SC_NPROCESSORS_ONLN) > 1 ? 50 : 0)) * 1000;
	}
	struct nnofi_sock *s = calloc(1, sizeof(*s));
	if (!s)
		return ENOMEM;
	s->epfd = epoll_create1(EPOLL_CLOEXEC);
	s->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	s->sendfd = -1; /* nnofi_send_fd makes it */
	if (s->epfd < 0 || s->wakefd < 0) {
		int err = errno;
		if (s->epfd >= 0)
			close(s->epfd);
		if (s->wakefd >= 0)
			close(s->wakefd);
		free(s);
		return err;
	}
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = WAKE_KEY };
	epoll_ctl(s->epfd, EPOLL_CTL_ADD, s->wakefd, &ev);
	pthread_mutex_init(&s->mtx, NULL);
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&s->cv, &ca);
	pthread_condattr_destroy(&ca);
	atomic_init(&s->refs, 1);
	s->proto = proto;
	s->raw = raw != 0;
	s->send_timeout = -1;
	s->recv_timeout = -1;
	s->recv_max_size = 1024 * 1024;
	s->send_buffer = 128 * 1024;
	s->recv_buffer = 128 * 1024;
	s->reconnect_ivl = 100;
	s->reconnect_ivl_max = 0;
	s->linger = 1000;
	s->req_resend_ivl = 60000;
	s->spin_us = spin_ns / 1000;
	s->survey_time = 1000;
	s->rendezvous_min = 128 * 1024;
	s->mr_cache_max = 1LL << 30;
	s->ofi_rma = 1;
	s->ipc_permissions = 0600;
	s->tcp_keepalive = 10000;
	s->timer.fire = sock_timer_fire;
	s->timer_at = INT64_MAX;
	s->next_pipe_id = 1;
	s->next_ep_id = 1;
	if (proto->data_size) {
		s->proto_data = calloc(1, proto->data_size);
		if (!s->proto_data) {
			close(s->epfd);
			close(s->wakefd);
			free(s);
			return ENOMEM;
		}
	}
	if (proto->init)
		proto->init(s);
	atomic_fetch_add(&nnofi_live_socks, 1);
	*out = s;
	return 0;
}

void sock_ref(struct nnofi_sock *s)
{
	atomic_fetch_add_explicit(&s->refs, 1, memory_order_relaxed);
}

void sock_unref(struct nnofi_sock *s)
{
	if (atomic_fetch_sub_explicit(&s->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (s->proto->fini)
		s->proto->fini(s);
	free(s->proto_data);
	recvq_clear(s);
	free(s->pipes);
	close(s->epfd);
	close(s->wakefd);
	if (s->sendfd >= 0)
		close(s->sendfd);
	pthread_mutex_destroy(&s->mtx);
	pthread_cond_destroy(&s->cv);
	atomic_fetch_sub(&nnofi_live_socks, 1);
	free(s);
}

void nnofi_release(nnofi_sock *s)
{
	if (!s)
		return;
	nnofi_close(s);
	sock_unref(s);
}

static void free_endpoint(void *arg)
{
	struct endpoint *ep = arg;
	struct nnofi_sock *s = ep->sock;
	free(ep);
	sock_unref(s);
}

/* Stop one endpoint (sock unlocked): its transport first, then its pipes. */
static void endpoint_shutdown(struct nnofi_sock *s, struct endpoint *ep)
{
	ep->ops->stop(ep);
	bg_timer_cancel(&ep->redial); /* closed: a firing timer does nothing */
	pthread_mutex_lock(&s->mtx);
	for (int i = s->npipes - 1; i >= 0; i--)
		if (i < s->npipes && s->pipes[i]->ep == ep)
			sock_remove_pipe(s, s->pipes[i], false);
	pthread_mutex_unlock(&s->mtx);
	bg_defer(free_endpoint, ep);
}

/* Pipes write what they queued (a send_many batch, a burst) as far as
 * the kernel takes it; the rest waits on want_write (sock locked). */
static void write_out_batches(struct nnofi_sock *s)
{
	s->batches_queued = false;
	for (int i = s->npipes - 1; i >= 0; i--)
		if (i < s->npipes)
			s->pipes[i]->ops->write_ready(s->pipes[i]);
}

static bool writes_pending(struct nnofi_sock *s)
{
	for (int i = 0; i < s->npipes; i++) {
		struct pipe *p = s->pipes[i];
		if (p->want_write || (p->ops->sending && p->ops->sending(p)))
			return true;
	}
	return false;
}

static int sock_wait(struct nnofi_sock *s, int64_t deadline);
static void sync_readiness(struct nnofi_sock *s);
static void sync_send_readiness(struct nnofi_sock *s);
static void arm_readiness_deadline(struct nnofi_sock *s);
static int recv_locked(struct nnofi_sock *s, int flags, nnofi_msg **out);

int nnofi_close(nnofi_sock *s)
{
	pthread_mutex_lock(&s->mtx);
	if (s->closed) {
		pthread_mutex_unlock(&s->mtx);
		return EBADF;
	}
	/* linger: give frames already on their way time to leave */
	int64_t deadline = deadline_after(s->linger);
	write_out_batches(s);
	while (writes_pending(s) && sock_wait(s, deadline) == 0)
		;
	s->closed = true;
	struct endpoint *eps = s->eps;
	s->eps = NULL;
	for (struct endpoint *ep = eps; ep; ep = ep->next)
		ep->closed = true;
	pthread_mutex_unlock(&s->mtx);

	while (eps) {
		struct endpoint *next = eps->next;
		endpoint_shutdown(s, eps);
		eps = next;
	}

	pthread_mutex_lock(&s->mtx);
	while (s->npipes)
		sock_remove_pipe(s, s->pipes[s->npipes - 1], false);
	s->timer_at = INT64_MAX;
	if (bg_timer_cancel(&s->timer))
		sock_unref(s); /* the caller's reference keeps s alive */
	recvq_clear(s);
	sock_kick_locked(s);
	sync_readiness(s); /* readable: a receive now fails fast with Closed */
	sync_send_readiness(s); /* ... and so does a send */
	pthread_cond_broadcast(&s->cv);
	pthread_mutex_unlock(&s->mtx);
	return 0;
}

/* ---- options and statistics ---------------------------------------- */

static int64_t *opt_slot(struct nnofi_sock *s, int opt)
{
	switch (opt) {
	case NNOFI_OPT_SEND_TIMEOUT: return &s->send_timeout;
	case NNOFI_OPT_RECV_TIMEOUT: return &s->recv_timeout;
	case NNOFI_OPT_RECV_MAX_SIZE: return &s->recv_max_size;
	case NNOFI_OPT_SEND_BUFFER: return &s->send_buffer;
	case NNOFI_OPT_RECV_BUFFER: return &s->recv_buffer;
	case NNOFI_OPT_RECONNECT_IVL: return &s->reconnect_ivl;
	case NNOFI_OPT_RECONNECT_IVL_MAX: return &s->reconnect_ivl_max;
	case NNOFI_OPT_LINGER: return &s->linger;
	case NNOFI_OPT_REQ_RESEND_IVL:
		return s->proto->id == NNOFI_REQ ? &s->req_resend_ivl : NULL;
	case NNOFI_OPT_SPIN_US: return &s->spin_us;
	case NNOFI_OPT_SURVEY_TIME:
		return s->proto->id == NNOFI_SURVEYOR ? &s->survey_time : NULL;
	case NNOFI_OPT_RENDEZVOUS_MIN: return &s->rendezvous_min;
	case NNOFI_OPT_MR_CACHE_MAX: return &s->mr_cache_max;
	case NNOFI_OPT_OFI_RMA: return &s->ofi_rma;
	case NNOFI_OPT_IPC_PERMISSIONS: return &s->ipc_permissions;
	case NNOFI_OPT_TCP_KEEPALIVE: return &s->tcp_keepalive;
	default: return NULL;
	}
}

static bool opt_valid(int opt, int64_t v)
{
	switch (opt) {
	case NNOFI_OPT_SEND_TIMEOUT:
	case NNOFI_OPT_RECV_TIMEOUT:
	case NNOFI_OPT_RECV_MAX_SIZE:
	case NNOFI_OPT_LINGER:
		return v >= -1;
	case NNOFI_OPT_SEND_BUFFER:
	case NNOFI_OPT_RECV_BUFFER:
		return v >= 1024 && v <= (1LL << 31);
	case NNOFI_OPT_RECONNECT_IVL:
	case NNOFI_OPT_REQ_RESEND_IVL:
	case NNOFI_OPT_SURVEY_TIME:
		return v >= 1;
	case NNOFI_OPT_RECONNECT_IVL_MAX:
		return v >= 0;
	case NNOFI_OPT_SPIN_US:
		return v >= 0 && v <= 1000000;
	case NNOFI_OPT_RENDEZVOUS_MIN:
		return v == -1 || v >= 1;
	case NNOFI_OPT_MR_CACHE_MAX:
		return v >= 0;
	case NNOFI_OPT_OFI_RMA:
		return v == 0 || v == 1;
	case NNOFI_OPT_IPC_PERMISSIONS:
		return v >= 0 && v <= 0777; /* permission bits only: no setuid, sticky */
	case NNOFI_OPT_TCP_KEEPALIVE:
		return v >= 0 && v <= 3600000;
	default:
		return false;
	}
}

int nnofi_setopt(nnofi_sock *s, int opt, int64_t value)
{
	pthread_mutex_lock(&s->mtx);
	int64_t *slot = opt_slot(s, opt);
	int rc = 0;
	if (!slot)
		rc = ENOPROTOOPT;
	else if (!opt_valid(opt, value))
		rc = EINVAL;
	else
		*slot = value;
	if (rc == 0 && opt == NNOFI_OPT_SEND_BUFFER)
		s->send_buffer_set = true;
	if (rc == 0 && opt == NNOFI_OPT_RECV_BUFFER)
		s->recv_buffer_set = true;
	pthread_mutex_unlock(&s->mtx);
	return rc;
}

int nnofi_setopt_bytes(nnofi_sock *s, int opt, const void *data, size_t len)
{
	pthread_mutex_lock(&s->mtx);
	int rc = s->proto->setopt ? s->proto->setopt(s, opt, data, len) : ENOPROTOOPT;
	pthread_mutex_unlock(&s->mtx);
	return rc;
}

int nnofi_getopt(nnofi_sock *s, int opt, int64_t *value)
{
	pthread_mutex_lock(&s->mtx);
	int64_t *slot = opt_slot(s, opt);
	if (slot)
		*value = *slot;
	pthread_mutex_unlock(&s->mtx);
	return slot ? 0 : ENOPROTOOPT;
}

void sock_stat(struct nnofi_sock *s, int which, uint64_t n)
{
	atomic_fetch_add_explicit(&s->stats[which], n, memory_order_relaxed);
}

void nnofi_stats(nnofi_sock *s, uint64_t *out, int n)
{
	for (int i = 0; i < n && i < NNOFI_STAT_COUNT; i++)
		out[i] = atomic_load_explicit(&s->stats[i], memory_order_relaxed);
}

void nnofi_live_counts(int64_t *socks, int64_t *pipes, int64_t *msgs)
{
	*socks = atomic_load(&nnofi_live_socks);
	*pipes = atomic_load(&nnofi_live_pipes);
	*msgs = atomic_load(&nnofi_live_msgs);
}

/* ---- waking and readiness ------------------------------------------- */

static void wake_write(struct nnofi_sock *s)
{
	uint64_t one = 1;
	ssize_t n = write(s->wakefd, &one, sizeof(one));
	(void)n;
}

static void wake_drain(struct nnofi_sock *s)
{
	uint64_t v;
	ssize_t n = read(s->wakefd, &v, sizeof(v));
	(void)n;
	s->wake_signaled = false;
}

/* Lock-free: for other sockets' threads (inproc peers). */
void sock_kick(struct nnofi_sock *s)
{
	if (atomic_load(&s->sleeping) || atomic_load(&s->rfd_used))
		wake_write(s);
	/* the peer may have made room in its mailbox: a send may go now */
	if (atomic_load(&s->send_blocked))
		eventfd_write(s->sendfd, 1);
}

/* The socket whose waiting caller is this thread, driving its pipes from
 * the spin loop: that caller looks again right after, so what its own
 * progress changes needs no wake-up (strace of an ofi+shm REP: a write,
 * an epoll_wait and a read of its own wakefd for every message). */
static __thread struct nnofi_sock *spinning_here __attribute__((tls_model("initial-exec")));

/* Something changed (sock locked): wake a caller asleep in epoll_wait on
 * the pipes (it may not poll what changed, e.g. a frame the background
 * thread finished) and those waiting on cv. */
void sock_kick_locked(struct nnofi_sock *s)
{
	if (atomic_load(&s->sleeping) && spinning_here != s) {
		wake_write(s);
		s->wake_signaled = true;
	}
	if (s->cv_waiters)
		pthread_cond_broadcast(&s->cv);
}

/* Keep a readiness eventfd readable iff want (sock locked; *signaled:
 * it is). Drained, it is signalled again while an inproc peer's kick,
 * drained with it, may be for what was not taken in yet: the caller then
 * looks (the peer counts inproc_pending before it kicks). */
static void set_level(struct nnofi_sock *s, int fd, bool *signaled, bool want)
{
	if (want) {
		if (!*signaled)
			(void)eventfd_write(fd, 1);
		*signaled = true;
		return;
	}
	eventfd_t v;
	(void)eventfd_read(fd, &v);
	*signaled = atomic_load(&s->inproc_pending) > 0;
	if (*signaled)
		(void)eventfd_write(fd, 1);
}

/* The readiness fd (epfd) must poll readable iff a message waits. */
static void sync_readiness(struct nnofi_sock *s)
{
	if (atomic_load(&s->rfd_used))
		set_level(s, s->wakefd, &s->wake_signaled, s->queued > 0 || s->closed);
}

int nnofi_recv_fd(nnofi_sock *s, int *fd)
{
	pthread_mutex_lock(&s->mtx);
	atomic_store(&s->rfd_used, true);
	sock_process_inproc(s); /* what inproc peers sent already counts */
	sync_readiness(s);
	arm_readiness_deadline(s);
	*fd = s->epfd;
	pthread_mutex_unlock(&s->mtx);
	return 0;
}

/* Whether a send would wait now (sock locked): the protocol says; a
 * closed socket's fails at once. */
static bool send_would_wait(struct nnofi_sock *s)
{
	return !s->closed && s->proto->send_waits && s->proto->send_waits(s);
}

/* The send readiness fd must poll readable iff a send would not wait.
 * Called (sock locked) wherever that can change: pipes added, removed or
 * given room, a send or receive (REP's reply state), close. */
static void sync_send_readiness(struct nnofi_sock *s)
{
	if (!atomic_load(&s->sfd_used))
		return;
	bool waits = send_would_wait(s);
	/* blocked first, then drained: a kick from now on signals again */
	atomic_store(&s->send_blocked, waits);
	set_level(s, s->sendfd, &s->send_signaled, !waits);
}

int nnofi_send_fd(nnofi_sock *s, int *fd)
{
	pthread_mutex_lock(&s->mtx);
	if (s->sendfd < 0) {
		s->sendfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
		if (s->sendfd < 0) {
			int err = errno;
			pthread_mutex_unlock(&s->mtx);
			return err;
		}
	}
	atomic_store(&s->sfd_used, true);
	sock_process_inproc(s); /* room inproc peers made already counts */
	sync_send_readiness(s);
	*fd = s->sendfd;
	pthread_mutex_unlock(&s->mtx);
	return 0;
}

/* ---- pipes --------------------------------------------------------------- */

uint32_t sock_new_pipe_id(struct nnofi_sock *s)
{
	uint32_t id = s->next_pipe_id++ & 0x7fffffffu;
	if (s->next_pipe_id > 0x7fffffffu)
		s->next_pipe_id = 1;
	return id ? id : sock_new_pipe_id(s);
}

struct pipe *sock_find_pipe(struct nnofi_sock *s, uint32_t id)
{
	for (int i = 0; i < s->npipes; i++)
		if (s->pipes[i]->id == id)
			return s->pipes[i];
	return NULL;
}

bool sock_peer_compatible(struct nnofi_sock *s, int peer_proto)
{
	return s->proto->peer_id == peer_proto;
}

static uint32_t poll_events(struct nnofi_sock *s, struct pipe *p)
{
	return (s->reads_paused ? 0 : EPOLLIN) | (p->want_write ? EPOLLOUT : 0);
}

int sock_poll_add(struct nnofi_sock *s, struct pipe *p)
{
	struct epoll_event ev = { .events = poll_events(s, p), .data.u64 = p->id };
	return epoll_ctl(s->epfd, EPOLL_CTL_ADD, p->fd, &ev) ? errno : 0;
}

void sock_poll_update(struct nnofi_sock *s, struct pipe *p, bool want_write)
{
	if (p->fd < 0 || p->want_write == want_write)
		return;
	p->want_write = want_write;
	struct epoll_event ev = { .events = poll_events(s, p), .data.u64 = p->id };
	epoll_ctl(s->epfd, EPOLL_CTL_MOD, p->fd, &ev);
	/* Written out (by the background thread, say): a close lingering on
	 * this pipe sleeps on s->epfd, where the EPOLLOUT it waited for was
	 * just taken away. Wake it to look again. */
	if (!want_write)
		sock_kick_locked(s);
}

static void set_reads_paused(struct nnofi_sock *s, bool paused)
{
	if (s->reads_paused == paused)
		return;
	s->reads_paused = paused;
	for (int i = 0; i < s->npipes; i++) {
		struct pipe *p = s->pipes[i];
		if (p->fd < 0)
			continue;
		struct epoll_event ev = { .events = poll_events(s, p), .data.u64 = p->id };
		epoll_ctl(s->epfd, EPOLL_CTL_MOD, p->fd, &ev);
	}
}

bool sock_add_pipe(struct nnofi_sock *s, struct pipe *p)
{
	if (s->closed || !s->proto->pipe_add(s, p))
		return false;
	if (s->npipes == s->pipes_cap) {
		int cap = s->pipes_cap ? 2 * s->pipes_cap : 4;
		struct pipe **np = realloc(s->pipes, (size_t)cap * sizeof(*np));
		if (!np) {
			s->proto->pipe_remove(s, p);
			return false;
		}
		s->pipes = np;
		s->pipes_cap = cap;
	}
	if (p->fd >= 0 && sock_poll_add(s, p) != 0) {
		s->proto->pipe_remove(s, p);
		return false;
	}
	s->pipes[s->npipes++] = p;
	if (p->ops->busy)
		s->trywait_pipes++;
	if (p->ops->busy && p->fd < 0)
		s->polled_pipes++;
	atomic_fetch_add(&nnofi_live_pipes, 1);
	sock_stat(s, NNOFI_STAT_PIPES_OPENED, 1);
	if (p->ep)
		p->ep->backoff = 0;
	if (p->writable && s->proto->pipe_writable)
		s->proto->pipe_writable(s, p);
	sock_kick_locked(s);
	sync_send_readiness(s);
	return true;
}

static void destroy_pipe(void *arg)
{
	struct pipe *p = arg;
	struct nnofi_sock *s = p->sock;
	/* A pipe can fail inside a call about it (its own progress, in the
	 * caller's thread, under the socket lock) and that call may still
	 * read it after removing it: wait for the lock to be let go. */
	pthread_mutex_lock(&s->mtx);
	pthread_mutex_unlock(&s->mtx);
	p->ops->destroy(p);
	atomic_fetch_sub(&nnofi_live_pipes, 1);
	sock_unref(s);
}

void sock_remove_pipe(struct nnofi_sock *s, struct pipe *p, bool broken)
{
	int i;
	for (i = 0; i < s->npipes && s->pipes[i] != p; i++)
		;
	if (i == s->npipes)
		return;
	s->pipes[i] = s->pipes[--s->npipes];
	if (p->ops->busy)
		s->trywait_pipes--;
	if (p->ops->busy && p->fd < 0)
		s->polled_pipes--;
	recvq_orphan(s, p);
	p->dead = true;
	p->broken = broken;
	s->proto->pipe_remove(s, p);
	sock_stat(s, broken ? NNOFI_STAT_PIPES_BROKEN : NNOFI_STAT_PIPES_CLOSED, 1);
	p->ops->close(p);
	if (p->ep && !s->closed)
		sock_ep_redial_later(p->ep);
	bg_defer(destroy_pipe, p);
	sock_kick_locked(s);
	sync_send_readiness(s);
}

void sock_deliver(struct nnofi_sock *s, struct pipe *p, nnofi_msg *m)
{
	m->pipe_id = p->id;
	s->delivering = p;
	s->proto->deliver(s, p, m);
	s->delivering = NULL;
}

void sock_enqueue(struct nnofi_sock *s, nnofi_msg *m)
{
	if (s->proto->drop_when_full && s->queued && s->queued_bytes >= (size_t)s->recv_buffer) {
		proto_drop(s, m, -1); /* a slow receiver loses, the sender goes on */
		return;
	}
	struct pipe *p = s->delivering;
	recvq_push(s, p && p->id == m->pipe_id && !p->dead ? p : NULL, m);
	if (s->queued_bytes >= (size_t)s->recv_buffer)
		set_reads_paused(s, true);
	sock_kick_locked(s);
	sync_readiness(s);
}

void sock_pipe_writable(struct nnofi_sock *s, struct pipe *p)
{
	p->writable = true;
	if (s->proto->pipe_writable)
		s->proto->pipe_writable(s, p);
	sock_kick_locked(s);
	sync_send_readiness(s);
}

static int64_t next_backoff(struct endpoint *ep)
{
	struct nnofi_sock *s = ep->sock;
	if (ep->backoff <= 0) {
		ep->backoff = s->reconnect_ivl;
	} else if (s->reconnect_ivl_max > 0) {
		ep->backoff *= 2;
		if (ep->backoff > s->reconnect_ivl_max)
			ep->backoff = s->reconnect_ivl_max;
	}
	return ep->backoff;
}

void sock_ep_redial_later(struct endpoint *ep)
{
	if (ep->closed || ep->kind != EP_CONNECT || !ep->ops->dial)
		return;
	bg_timer_arm(&ep->redial, now_ms() + next_backoff(ep));
}

static void redial_fire(struct bg_timer *t)
{
	struct endpoint *ep = (struct endpoint *)((char *)t - offsetof(struct endpoint, redial));
	pthread_mutex_lock(&ep->sock->mtx);
	if (!ep->closed)
		ep->ops->dial(ep);
	pthread_mutex_unlock(&ep->sock->mtx);
}

/* ---- protocol timers ------------------------------------------------- */

/* An armed timer holds a socket reference, released when it fires or is
 * cancelled. It only moves earlier: one armed for sooner fires, and the
 * tick then arms it for the protocol's next deadline (a REQ's resend
 * deadline moves later with every request; re-arming it took the
 * background thread's lock each time). */
void sock_timer_arm(struct nnofi_sock *s, int64_t when)
{
	if (when >= s->timer_at)
		return;
	s->timer_at = when;
	if (!bg_timer_arm(&s->timer, when))
		sock_ref(s);
}

/* Run the protocol's timers and arm the socket's for the next deadline. */
static void tick_and_rearm(struct nnofi_sock *s)
{
	int64_t next = s->proto->tick(s, now_ms());
	if (next != INT64_MAX)
		sock_timer_arm(s, next);
}

static void sock_timer_fire(struct bg_timer *t)
{
	struct nnofi_sock *s = (struct nnofi_sock *)((char *)t - offsetof(struct nnofi_sock, timer));
	pthread_mutex_lock(&s->mtx);
	s->timer_at = INT64_MAX; /* fired: the tick arms it anew */
	if (!s->closed && s->proto->tick) {
		tick_and_rearm(s);
		/* a deadline passed (a survey's end): a receive may fail now,
		 * so make the readiness fd readable for it to look */
		if (atomic_load(&s->rfd_used)) {
			wake_write(s);
			s->wake_signaled = true;
		}
	}
	pthread_mutex_unlock(&s->mtx);
	sock_unref(s);
}

/* ---- polling ------------------------------------------------------------- */

/* Inproc peers bump inproc_pending; pull their messages in. */
void sock_process_inproc(struct nnofi_sock *s)
{
	/* a plain load first: the exchange is a locked instruction, and this
	 * runs on every send and receive */
	if (!atomic_load_explicit(&s->inproc_pending, memory_order_acquire) ||
	    atomic_exchange(&s->inproc_pending, 0) == 0)
		return;
	for (int i = s->npipes - 1; i >= 0; i--) {
		if (i >= s->npipes)
			continue;
		struct pipe *p = s->pipes[i];
		if (p->fd < 0)
			p->ops->read_ready(p);
	}
}

static void handle_event(struct nnofi_sock *s, struct epoll_event *ev)
{
	if (ev->data.u64 == WAKE_KEY) {
		wake_drain(s);
		return;
	}
	struct pipe *p = sock_find_pipe(s, (uint32_t)ev->data.u64);
	if (!p)
		return; /* closed meanwhile */
	if (ev->events & EPOLLOUT)
		p->ops->write_ready(p);
	if (!p->dead && (ev->events & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP)))
		p->ops->read_ready(p);
}

/* Pipes without a wait fd (ofi RDM: shm, rxm) are looked at by the
 * background thread only every millisecond or so: a waiting caller spins
 * at least this long (unless spinning is off) so replies find it awake. */
#define POLLED_SPIN_US 1000

/* Pipes on libfabric (sock locked): true if any has completions, so the
 * caller must not sleep on their fds yet. `spinning`: a look between
 * others, which only reads completions (fi_trywait, which re-arms the
 * fds, comes once, before sleeping). */
static bool progress_fabric_pipes(struct nnofi_sock *s, bool spinning)
{
	bool work = false;
	for (int i = s->npipes - 1; s->trywait_pipes && i >= 0; i--) {
		struct pipe *p = i < s->npipes ? s->pipes[i] : NULL;
		if (!p || !p->ops->busy)
			continue;
		if (spinning) {
			work |= p->ops->poll(p);
		} else if (p->ops->busy(p)) {
			p->ops->read_ready(p);
			work = true;
		}
	}
	return work;
}

/* Poll the pipes in this thread until deadline (sock locked; unlocked
 * while waiting). */
static void poll_pipes(struct nnofi_sock *s, int64_t deadline)
{
	struct epoll_event evs[32];
	int64_t spin_us = s->spin_us;
	if (s->polled_pipes && spin_us > 0 && spin_us < POLLED_SPIN_US)
		spin_us = POLLED_SPIN_US;
	bool will_block = deadline != 0 && !atomic_load(&s->inproc_pending);
	bool spin = will_block && spin_us > 0;
	/* libfabric completion fds may only be slept on after fi_trywait */
	bool work = progress_fabric_pipes(s, spin);
	s->polling = true;
	atomic_store(&s->sleeping, true);
	int timeout;
	bool until_deadline = false; /* the ms left are read off the clock only before sleeping */
	if (work || !will_block) {
		timeout = 0;
	} else if (deadline == INT64_MAX) {
		timeout = -1;
	} else {
		timeout = 1;
		until_deadline = true;
	}
	pthread_mutex_unlock(&s->mtx);
	int n = 0;
	bool locked = false; /* progress found work: the lock is kept for taking it */
	if (timeout != 0 && spin) {
		/* A reply often comes within microseconds: look before sleeping,
		 * since a wake-up from epoll_wait costs tens of them on a VM. */
		int64_t until = now_ns() + spin_us * 1000;
		unsigned round = 0;
		bool look;
		do {
			/* With pipes to poll (fabric completions) a round is a
			 * CQ read: look at the fds and the clock every 8th round
			 * only, as their syscall and clock read cost more; every
			 * 32nd over shm, whose CQ read makes no syscall. */
			look = !(s->polled_pipes || s->trywait_pipes) || (round++ & (s->polled_pipes ? 31 : 7)) == 0;
			n = look ? epoll_wait(s->epfd, evs, 32, 0) : 0;
			if (n == 0 && s->trywait_pipes) {
				pthread_mutex_lock(&s->mtx);
				spinning_here = s;
				work = progress_fabric_pipes(s, true);
				spinning_here = NULL;
				if ((locked = work))
					break;
				pthread_mutex_unlock(&s->mtx);
			}
		} while (n == 0 && !work && (!look || now_ns() < until));
		if (n == 0 && !work && s->trywait_pipes) {
			/* about to sleep: fi_trywait re-arms the fds */
			pthread_mutex_lock(&s->mtx);
			if (!(locked = work = progress_fabric_pipes(s, false)))
				pthread_mutex_unlock(&s->mtx);
		}
	}
	if (n == 0 && !work) {
		if (until_deadline && timeout != 0) {
			int64_t d = deadline - now_ms();
			timeout = d < 0 ? 0 : (d > 3600000 ? 3600000 : (int)d);
		}
		n = epoll_wait(s->epfd, evs, 32, timeout);
	}
	if (!locked)
		pthread_mutex_lock(&s->mtx);
	atomic_store(&s->sleeping, false);
	for (int i = 0; i < n; i++)
		handle_event(s, &evs[i]);
	sock_process_inproc(s);
	s->polling = false;
	if (s->cv_waiters)
		pthread_cond_broadcast(&s->cv);
	sync_readiness(s);
	sync_send_readiness(s);
}

/* Wait for something to change (sock locked): poll if nobody else does. */
static int sock_wait(struct nnofi_sock *s, int64_t deadline)
{
	if (s->closed)
		return EBADF;
	int64_t now = now_ms();
	if (now >= deadline)
		return ETIMEDOUT;
	int64_t wake_at = deadline;
	if (s->proto->tick) {
		int64_t t = s->proto->tick(s, now);
		if (t < wake_at)
			wake_at = t;
	}
	if (!s->polling) {
		poll_pipes(s, wake_at);
	} else {
		s->cv_waiters++;
		if (wake_at == INT64_MAX) {
			pthread_cond_wait(&s->cv, &s->mtx);
		} else {
			struct timespec ts = { .tv_sec = wake_at / 1000,
					       .tv_nsec = (wake_at % 1000) * 1000000 };
			pthread_cond_timedwait(&s->cv, &s->mtx, &ts);
		}
		s->cv_waiters--;
	}
	return s->closed ? EBADF : 0;
}

/* ---- send and receive ---------------------------------------------- */

/* Bytes of send call `token` its pipe still writes from the caller's buffer. */
static size_t still_borrowed(struct nnofi_sock *s, uint64_t token, uint32_t pipe_id)
{
	struct pipe *p = pipe_id ? sock_find_pipe(s, pipe_id) : NULL;
	return p ? p->ops->borrowing(p, token) : 0;
}

/* A call's deadline is read off the clock only once it must wait: most
 * calls never do, and the clock costs ~65 ns a read on this kind of VM. */
#define DEADLINE_UNSET INT64_MIN
static int64_t resolve_deadline(int64_t *deadline, int64_t timeout_ms)
{
	if (*deadline == DEADLINE_UNSET)
		*deadline = deadline_after(timeout_ms);
	return *deadline;
}

/* A big frame the kernel did not take whole: keep writing it from the
 * caller's buffer (zero copy) while the receiver drains it; when it stops
 * draining for BORROW_STALL_MS, or the call must return, copy the rest so
 * send returns like nanomsg's, without waiting for a receiver. */
#define BORROW_STALL_MS 2
static void finish_borrowed(struct nnofi_sock *s, uint64_t token, uint32_t pid, int flags,
			    int64_t *deadline)
{
	size_t left = still_borrowed(s, token, pid);
	if (!left)
		return;
	int64_t stall_at = now_ms() + BORROW_STALL_MS;
	int64_t until = resolve_deadline(deadline, s->send_timeout);
	while (left) {
		bool must_return = s->closed || (flags & NNOFI_DONTWAIT) || now_ms() >= until;
		if (!must_return) {
			sock_wait(s, stall_at < until ? stall_at : until);
			size_t now_left = still_borrowed(s, token, pid);
			if (now_left < left)
				stall_at = now_ms() + BORROW_STALL_MS; /* draining: keep going */
			left = now_left;
			if (!left || now_ms() < stall_at)
				continue;
		}
		struct pipe *p = sock_find_pipe(s, pid);
		if (p && p->ops->borrowing(p, token))
			p->ops->own_pending(p);
		return;
	}
}

/* Sends closer together than this, with no receive between, are a burst. */
#define SEND_BURST_NS 50000

/* The send loop of nnofi_send and nnofi_send_msg. `borrowed`: m's body is
 * the caller's, valid only during the call. */
static int send_common(struct nnofi_sock *s, nnofi_msg *m, bool borrowed, int flags,
		       uint64_t handle, int *retained)
{
	size_t len = m->len;
	*retained = 0;

	pthread_mutex_lock(&s->mtx);
	uint64_t token = ++s->send_seq;
	int64_t deadline = DEADLINE_UNSET; /* DONTWAIT never waits */
	int64_t now = now_ns();
	s->send_burst = s->last_send_ns && now - s->last_send_ns < SEND_BURST_NS;
	s->last_send_ns = now;
	bool handle_used = false, polled = false;
	int rc;
	for (;;) {
		if (s->closed) {
			rc = EBADF;
			break;
		}
		sock_process_inproc(s);
		s->send_token = borrowed ? token : 0;
		s->sent_pipe = 0;
		s->send_handle = handle_used ? 0 : handle;
		nnofi_msg attempt = *m; /* protocols may write the header */
		if (!s->raw)
			attempt.hdr_len = 0; /* only raw sockets send a header as given */
		rc = s->proto->send(s, &attempt, borrowed);
		send_attempt_done(s, &handle_used, retained);
		if (rc != EAGAIN)
			break;
		if (flags & NNOFI_DONTWAIT) {
			if (polled || s->polling)
				break;
			poll_pipes(s, 0); /* one look at the pipes, then give up */
			polled = true;
			continue;
		}
		rc = sock_wait(s, resolve_deadline(&deadline, s->send_timeout));
		if (rc)
			break;
	}
	s->send_token = 0;
	s->send_handle = 0;
	if (rc == 0) {
		if (borrowed)
			finish_borrowed(s, token, s->sent_pipe, flags, &deadline);
		sock_stat(s, NNOFI_STAT_MSGS_SENT, 1);
		sock_stat(s, NNOFI_STAT_BYTES_SENT, len);
	}
	sync_send_readiness(s);
	pthread_mutex_unlock(&s->mtx);
	return rc;
}

/* A message on the caller's buffer, for the duration of one call. */
static nnofi_msg borrowed_msg(struct chunk *ch, const void *buf, size_t len)
{
	*ch = (struct chunk){ .data = (uint8_t *)buf, .len = len };
	atomic_init(&ch->refs, 1);
	return (nnofi_msg){ .chunk = ch, .body = (uint8_t *)buf, .len = len };
}

int nnofi_send(nnofi_sock *s, const void *buf, size_t len, int flags, uint64_t handle, int *retained)
{
	struct chunk ch;
	nnofi_msg m = borrowed_msg(&ch, buf, len);
	return send_common(s, &m, true, flags, handle, retained);
}

/* Write out what corked pipes queued (sock locked). */
static void uncork(struct nnofi_sock *s)
{
	s->corked = false;
	write_out_batches(s);
}

int nnofi_send_vec(nnofi_sock *s, const void *const *bufs, const size_t *lens, int n, int flags, int *sent)
{
	int rc = 0, retained;
	*sent = 0;
	pthread_mutex_lock(&s->mtx);
	s->corked = true;
	pthread_mutex_unlock(&s->mtx);
	for (int i = 0; i < n; i++) {
		struct chunk ch;
		nnofi_msg m = borrowed_msg(&ch, bufs[i], lens[i]);
		rc = send_common(s, &m, true, flags, 0, &retained);
		if (rc)
			break;
		(*sent)++;
	}
	pthread_mutex_lock(&s->mtx);
	uncork(s);
	pthread_mutex_unlock(&s->mtx);
	return rc;
}

/* Batches of this many messages go to nnofi_send_vec at a time. */
#define SEND_MANY_STEP 256

int nnofi_send_many(nnofi_sock *s, const void *buf, const size_t *lens, int n, int flags, int *sent)
{
	const uint8_t *at = buf;
	const void *bufs[SEND_MANY_STEP];
	int rc = 0;
	*sent = 0;
	for (int i = 0; i < n && rc == 0; i += SEND_MANY_STEP) {
		int k = n - i < SEND_MANY_STEP ? n - i : SEND_MANY_STEP, went;
		for (int j = 0; j < k; j++) {
			bufs[j] = at;
			at += lens[i + j];
		}
		rc = nnofi_send_vec(s, bufs, lens + i, k, flags, &went);
		*sent += went;
	}
	return rc;
}

int nnofi_recv_msgs(nnofi_sock *s, nnofi_recv_result *out, int max, size_t max_bytes, int flags, int *got)
{
	size_t bytes = 0;
	int rc = 0;
	*got = 0;
	pthread_mutex_lock(&s->mtx);
	while (*got < max) {
		/* wait for the first only; then take what is already here */
		nnofi_msg *m = NULL;
		rc = recv_locked(s, *got ? NNOFI_DONTWAIT : flags, &m);
		if (rc)
			break;
		if (*got && (bytes >= max_bytes || m->len > max_bytes - bytes)) {
			/* the first always comes, alone if it is over max_bytes
			 * (dropping it, or refusing it for ever, would lose it) */
			recvq_unpop(s, m); /* first in line for the next call */
			sock_stat(s, NNOFI_STAT_MSGS_RECV, (uint64_t)-1);
			sock_stat(s, NNOFI_STAT_BYTES_RECV, (uint64_t)-m->len);
			break;
		}
		bytes += m->len;
		out[(*got)++] = (nnofi_recv_result){ .msg = m, .data = m->body, .len = m->len };
	}
	if (*got)
		rc = 0; /* what stopped the batch is for the next call to say */
	sync_readiness(s);
	pthread_mutex_unlock(&s->mtx);
	return rc;
}

int nnofi_recv_many(nnofi_sock *s, void *buf, size_t cap, size_t *lens, int max, int flags, int *got)
{
	*got = 0;
	if (max <= 0)
		return 0;
	nnofi_recv_result *msgs = malloc((size_t)max * sizeof(*msgs));
	if (!msgs)
		return ENOMEM;
	int rc = nnofi_recv_msgs(s, msgs, max, cap, flags, got);
	uint8_t *at = buf;
	for (int i = 0; i < *got; i++) {
		if (msgs[i].len)
			memcpy(at, msgs[i].data, msgs[i].len);
		lens[i] = msgs[i].len;
		at += msgs[i].len;
		msg_free(msgs[i].msg);
	}
	free(msgs);
	return rc;
}

int nnofi_send_msg(nnofi_sock *s, nnofi_msg *m, int flags)
{
	int retained;
	return send_common(s, m, false, flags, 0, &retained);
}

/* A receive found nothing and returns while the readiness fd is watched:
 * nobody waits in the socket for the protocol's next deadline (a survey's
 * end, when recv fails with ETIMEDOUT), so the socket's timer makes the
 * fd readable then (sock_timer_fire). */
static void arm_readiness_deadline(struct nnofi_sock *s)
{
	if (s->proto->tick && atomic_load(&s->rfd_used) && !s->closed)
		tick_and_rearm(s);
}

/* recv_locked's flag for nnofi_recv_landing's own receive */
#define RECV_LANDING_OWNER (1 << 30)

static bool sock_landed(const struct nnofi_sock *s, const nnofi_msg *m);
static void landing_detach(struct landing *l);

static int recv_locked(struct nnofi_sock *s, int flags, nnofi_msg **out)
{
	int64_t deadline = DEADLINE_UNSET; /* DONTWAIT never waits */
	bool polled = false;
	s->last_send_ns = 0; /* a send after this answers: not a burst */
	for (;;) {
		if (s->closed)
			return EBADF;
		sock_process_inproc(s);
		int err = 0;
		nnofi_msg *m = s->proto->recv(s, &err);
		if (m) {
			if (sock_landed(s, m) && !(flags & RECV_LANDING_OWNER))
				landing_detach(s->landing); /* not the offering call: off its buffer */
			if (s->reads_paused && s->queued_bytes < (size_t)s->recv_buffer / 2)
				set_reads_paused(s, false);
			sync_readiness(s);
			sync_send_readiness(s); /* REP: a reply may go now */
			sock_stat(s, NNOFI_STAT_MSGS_RECV, 1);
			sock_stat(s, NNOFI_STAT_BYTES_RECV, m->len);
			*out = m;
			return 0;
		}
		if (err)
			return err;
		if (flags & NNOFI_DONTWAIT) {
			if (polled || s->polling || (flags & NNOFI_QUEUED)) {
				sync_readiness(s);
				if (!(flags & NNOFI_QUEUED)) /* else a blocking call follows */
					arm_readiness_deadline(s);
				return EAGAIN;
			}
			poll_pipes(s, 0);
			polled = true;
			continue;
		}
		if (s->batches_queued)
			write_out_batches(s); /* the reply may wait on the burst's tail */
		int rc = sock_wait(s, resolve_deadline(&deadline, s->recv_timeout));
		if (rc)
			return rc;
	}
}

int nnofi_recv(nnofi_sock *s, int flags, nnofi_recv_result *out)
{
	nnofi_msg *m = NULL;
	pthread_mutex_lock(&s->mtx);
	int rc = recv_locked(s, flags, &m);
	pthread_mutex_unlock(&s->mtx);
	if (rc == 0) {
		out->msg = m;
		out->data = m->body;
		out->len = m->len;
	}
	return rc;
}

/* ---- receiving into the caller's memory (ofi rendezvous) ------------- */

nnofi_msg *sock_claim_landing(struct nnofi_sock *s, size_t len)
{
	struct landing *l = s->landing;
	if (!l || l->msg || (l->up_to ? len > l->len : len != l->len))
		return NULL;
	struct chunk *c = chunk_external(l->buf, len);
	l->msg = msg_on_chunk(c);
	chunk_unref(c);
	l->reading = true;
	return l->msg;
}

void sock_landing_done(struct nnofi_sock *s, nnofi_msg *m, bool delivered)
{
	struct landing *l = s->landing;
	if (!l || l->msg != m)
		return;
	l->reading = false;
	if (!delivered) {
		l->msg = NULL; /* the transport frees it */
		sock_kick_locked(s);
	}
}

static bool sock_landed(const struct nnofi_sock *s, const nnofi_msg *m)
{
	return s->landing && s->landing->msg == m;
}

/* The landed message goes on without the caller's buffer: a copy of its own. */
static void landing_detach(struct landing *l)
{
	nnofi_msg *m = l->msg;
	struct chunk *own = chunk_alloc(m->len);
	memcpy(own->data, m->body, m->len);
	struct chunk *old = m->chunk;
	m->chunk = own;
	m->body = own->data;
	chunk_unref(old);
	l->msg = NULL;
}

size_t nnofi_rendezvous_waiting(nnofi_sock *s)
{
	size_t len = 0;
	/* asked before every blocking recv(): small messages pay no lock */
	if (!atomic_load_explicit(&s->unread_rendezvous, memory_order_relaxed))
		return 0;
	pthread_mutex_lock(&s->mtx);
	for (int i = 0; i < s->npipes && !len; i++)
		if (s->pipes[i]->ops->rendezvous_waiting)
			len = s->pipes[i]->ops->rendezvous_waiting(s->pipes[i]);
	pthread_mutex_unlock(&s->mtx);
	return len;
}

/* Only where a delivered message is queued as it is, and stays queued
 * until a receive takes it or the socket closes (recvq_clear). */
static bool may_land(const struct nnofi_sock *s)
{
	return s->proto->deliver == proto_queue_deliver && !s->proto->drop_when_full && !s->landing && !s->closed;
}

static int recv_landing(nnofi_sock *s, int flags, struct landing l, nnofi_recv_result *out, int *landed)
{
	nnofi_msg *m = NULL;
	pthread_mutex_lock(&s->mtx);
	bool offered = may_land(s) && l.len;
	if (offered)
		s->landing = &l;
	int rc = recv_locked(s, flags | (offered ? RECV_LANDING_OWNER : 0), &m);
	/* buf is the caller's again once no transport writes it: a read
	 * begun goes on past the call's deadline, or ends with its pipe */
	while (l.reading) {
		if (sock_wait(s, now_ms() + 100) == EBADF) { /* closing: its pipes go once it has the lock */
			pthread_mutex_unlock(&s->mtx);
			sched_yield();
			pthread_mutex_lock(&s->mtx);
		}
	}
	if (l.msg && l.msg != m)
		landing_detach(&l); /* queued for a later receive */
	*landed = l.msg && l.msg == m;
	if (*landed)
		sock_stat(s, NNOFI_STAT_RENDEZVOUS_IN_PLACE, 1);
	if (offered)
		s->landing = NULL;
	pthread_mutex_unlock(&s->mtx);
	if (!rc)
		*out = (nnofi_recv_result){ .msg = m, .data = m->body, .len = m->len };
	return rc;
}

int nnofi_recv_landing(nnofi_sock *s, int flags, void *buf, size_t len, nnofi_recv_result *out, int *landed)
{
	return recv_landing(s, flags, (struct landing){ .buf = buf, .len = len }, out, landed);
}

/* A big ofi message whose body has not been read is read straight into
 * buf if it fits. */
int nnofi_recv_into(nnofi_sock *s, void *buf, size_t cap, int flags, size_t *len)
{
	nnofi_recv_result res;
	int landed = 0;
	int rc = flags & NNOFI_DONTWAIT ? nnofi_recv(s, flags, &res)
		 : recv_landing(s, flags, (struct landing){ .buf = buf, .len = cap, .up_to = true }, &res, &landed);
	if (rc)
		return rc;
	*len = res.len;
	if (!landed)
		memcpy(buf, res.data, res.len < cap ? res.len : cap);
	msg_free(res.msg);
	return 0;
}

/* ---- endpoints --------------------------------------------------------- */

static int add_endpoint(nnofi_sock *s, const char *text, enum ep_kind kind, char *url_out,
			size_t cap, uint32_t *ep_id)
{
	struct endpoint *ep = calloc(1, sizeof(*ep));
	if (!ep)
		return ENOMEM;
	int rc = url_parse(text, &ep->url);
	if (rc) {
		free(ep);
		return rc;
	}
	pthread_mutex_lock(&s->mtx);
	if (s->closed) {
		pthread_mutex_unlock(&s->mtx);
		free(ep);
		return EBADF;
	}
	ep->id = s->next_ep_id++;
	pthread_mutex_unlock(&s->mtx);
	ep->sock = s;
	ep->kind = kind;
	ep->redial.fire = redial_fire;
	strcpy(ep->real_url, ep->url.text);
	sock_ref(s);
	if (ep->url.scheme == URL_INPROC)
		rc = kind == EP_BIND ? inproc_bind(ep) : inproc_connect(ep);
	else if (ep->url.scheme == URL_OFI)
		rc = kind == EP_BIND ? ofi_bind(ep) : ofi_connect(ep);
	else
		rc = kind == EP_BIND ? stream_bind(ep) : stream_connect(ep);
	if (rc) {
		sock_unref(s);
		free(ep);
		return rc;
	}
	pthread_mutex_lock(&s->mtx);
	bool closed = s->closed;
	if (!closed) {
		ep->next = s->eps;
		s->eps = ep;
	}
	pthread_mutex_unlock(&s->mtx);
	if (closed) {
		ep->closed = true;
		endpoint_shutdown(s, ep);
		return EBADF;
	}
	if (url_out && cap) {
		strncpy(url_out, ep->real_url, cap - 1);
		url_out[cap - 1] = '\0';
	}
	if (ep_id)
		*ep_id = ep->id;
	return 0;
}

int nnofi_bind(nnofi_sock *s, const char *url, char *url_out, size_t cap, uint32_t *ep_id)
{
	return add_endpoint(s, url, EP_BIND, url_out, cap, ep_id);
}

int nnofi_connect(nnofi_sock *s, const char *url, char *url_out, size_t cap, uint32_t *ep_id)
{
	return add_endpoint(s, url, EP_CONNECT, url_out, cap, ep_id);
}

int nnofi_endpoint_close(nnofi_sock *s, uint32_t ep_id)
{
	pthread_mutex_lock(&s->mtx);
	struct endpoint **pp = &s->eps;
	while (*pp && (*pp)->id != ep_id)
		pp = &(*pp)->next;
	struct endpoint *ep = *pp;
	if (ep) {
		*pp = ep->next;
		ep->closed = true;
	}
	pthread_mutex_unlock(&s->mtx);
	if (!ep)
		return ENOENT;
	endpoint_shutdown(s, ep);
	return 0;
}
