/* The background progress thread: accepts, dials, handshakes, redials,
 * notices dead idle pipes and flushes writes nobody else is waiting on.
 * The hot path (send/recv) never waits for it. One per process, started
 * on first use, like nng's. */
#include <errno.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "core.h"

struct deferred {
	void (*fn)(void *);
	void *arg;
	struct deferred *next;
};

static struct {
	bool started;
	pthread_t thread;
	int epfd, evfd;
	struct bg_watch wake;
	pthread_mutex_t mtx;
	struct bg_timer *timers;
	int64_t wakes_at; /* when the thread's sleep ends by itself (ns) */
	struct deferred *deferred, *deferred_tail;
} bg = { .mtx = PTHREAD_MUTEX_INITIALIZER };
static pthread_mutex_t start_mtx = PTHREAD_MUTEX_INITIALIZER;

static void bg_poke(void)
{
	uint64_t one = 1;
	ssize_t n = write(bg.evfd, &one, sizeof(one));
	(void)n; /* EAGAIN means already poked */
}

/* How long the thread may sleep (ns; -1: until woken). */
static int64_t next_timeout_locked(void)
{
	int64_t first = INT64_MAX;
	for (struct bg_timer *t = bg.timers; t; t = t->next)
		if (t->when_ns < first)
			first = t->when_ns;
	int64_t now = now_ns();
	if (first == INT64_MAX) {
		bg.wakes_at = INT64_MAX;
		return -1;
	}
	int64_t d = first - now;
	if (d < 0)
		d = 0;
	if (d > 60 * NS_PER_S)
		d = 60 * NS_PER_S;
	bg.wakes_at = now + d;
	return d;
}

/* epoll_wait with a timeout in ns: stream pipes' tail flush is due within
 * a fraction of a millisecond. */
static int wait_events(struct epoll_event *evs, int max, int64_t timeout_ns)
{
	if (timeout_ns < 0)
		return epoll_wait(bg.epfd, evs, max, -1);
	static bool no_pwait2; /* kernels before 5.11: ms it is */
	if (!no_pwait2) {
		struct timespec ts = { .tv_sec = timeout_ns / NS_PER_S, .tv_nsec = timeout_ns % NS_PER_S };
		int n = epoll_pwait2(bg.epfd, evs, max, &ts, NULL);
		if (n >= 0 || errno != ENOSYS)
			return n;
		no_pwait2 = true;
	}
	return epoll_wait(bg.epfd, evs, max, (int)((timeout_ns + NS_PER_MS - 1) / NS_PER_MS));
}

static void fire_due_timers(void)
{
	for (;;) {
		struct bg_timer *due = NULL;
		int64_t now = now_ns();
		pthread_mutex_lock(&bg.mtx);
		for (struct bg_timer **pp = &bg.timers; *pp; pp = &(*pp)->next) {
			if ((*pp)->when_ns <= now) {
				due = *pp;
				*pp = due->next;
				due->armed = false;
				due->next = NULL;
				break;
			}
		}
		pthread_mutex_unlock(&bg.mtx);
		if (!due)
			return;
		due->fire(due);
	}
}

static void run_deferred(void)
{
	pthread_mutex_lock(&bg.mtx);
	struct deferred *d = bg.deferred;
	bg.deferred = bg.deferred_tail = NULL;
	pthread_mutex_unlock(&bg.mtx);
	while (d) {
		struct deferred *next = d->next;
		d->fn(d->arg);
		free(d);
		d = next;
	}
}

static void *bg_main(void *unused)
{
	(void)unused;
	struct epoll_event evs[64];
	for (;;) {
		pthread_mutex_lock(&bg.mtx);
		int64_t timeout = next_timeout_locked();
		if (bg.deferred)
			timeout = 0;
		pthread_mutex_unlock(&bg.mtx);
		int n = wait_events(evs, 64, timeout);
		for (int i = 0; i < n; i++) {
			struct bg_watch *w = evs[i].data.ptr;
			if (w == &bg.wake) {
				uint64_t v;
				ssize_t r = read(bg.evfd, &v, sizeof(v));
				(void)r;
				continue;
			}
			w->on_event(w, evs[i].events);
		}
		fire_due_timers();
		run_deferred();
	}
	return NULL;
}

static void bg_init(void)
{
	bg.epfd = epoll_create1(EPOLL_CLOEXEC);
	bg.evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	die_on(bg.epfd < 0 || bg.evfd < 0, "background thread: no epoll/eventfd");
	bg.wake.fd = bg.evfd;
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = &bg.wake };
	die_on(epoll_ctl(bg.epfd, EPOLL_CTL_ADD, bg.evfd, &ev) != 0, "background epoll_ctl");
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 256 * 1024);
	die_on(pthread_create(&bg.thread, &attr, bg_main, NULL) != 0, "cannot start background thread");
	pthread_attr_destroy(&attr);
}

/* A forked child has no background thread (threads do not survive fork):
 * forget the parent's and start one on first use. The parent's sockets
 * are not usable in the child, as with nanomsg and zmq. */
static void bg_after_fork_child(void)
{
	if (!bg.started)
		return;
	close(bg.epfd);
	close(bg.evfd);
	bg.timers = NULL;
	bg.wakes_at = 0;
	bg.deferred = bg.deferred_tail = NULL;
	pthread_mutex_init(&bg.mtx, NULL);
	pthread_mutex_init(&start_mtx, NULL);
	bg.started = false;
}

void bg_start(void)
{
	static bool atfork_registered;
	pthread_mutex_lock(&start_mtx);
	if (!atfork_registered) {
		pthread_atfork(NULL, NULL, bg_after_fork_child);
		atfork_registered = true;
	}
	if (!bg.started) {
		bg_init();
		bg.started = true;
	}
	pthread_mutex_unlock(&start_mtx);
}

int bg_watch_add(struct bg_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	return epoll_ctl(bg.epfd, EPOLL_CTL_ADD, w->fd, &ev) ? errno : 0;
}

int bg_watch_mod(struct bg_watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };
	return epoll_ctl(bg.epfd, EPOLL_CTL_MOD, w->fd, &ev) ? errno : 0;
}

void bg_watch_del(struct bg_watch *w)
{
	struct epoll_event ev = { 0 };
	epoll_ctl(bg.epfd, EPOLL_CTL_DEL, w->fd, &ev);
}

bool bg_timer_arm(struct bg_timer *t, int64_t when_ms)
{
	/* far deadlines (a REQ's resend interval may be any positive ms)
	 * saturate: wrapped negative, they would fire at once, again and
	 * again */
	return bg_timer_arm_ns(t, when_ms > INT64_MAX / NS_PER_MS ? INT64_MAX : when_ms * NS_PER_MS);
}

bool bg_timer_arm_ns(struct bg_timer *t, int64_t when)
{
	pthread_mutex_lock(&bg.mtx);
	bool was_armed = t->armed;
	if (!t->armed) {
		t->next = bg.timers;
		bg.timers = t;
		t->armed = true;
	}
	t->when_ns = when;
	/* a timer due after the thread wakes anyway needs no wake-up: a REQ
	 * re-arms its resend timer on every request */
	bool poke = when < bg.wakes_at;
	pthread_mutex_unlock(&bg.mtx);
	if (poke)
		bg_poke();
	return was_armed;
}

bool bg_timer_cancel(struct bg_timer *t)
{
	pthread_mutex_lock(&bg.mtx);
	bool was_armed = t->armed;
	if (t->armed) {
		for (struct bg_timer **pp = &bg.timers; *pp; pp = &(*pp)->next) {
			if (*pp == t) {
				*pp = t->next;
				break;
			}
		}
		t->armed = false;
		t->next = NULL;
	}
	pthread_mutex_unlock(&bg.mtx);
	return was_armed;
}

void bg_defer(void (*fn)(void *), void *arg)
{
	struct deferred *d = malloc(sizeof(*d));
	die_on(d == NULL, "out of memory");
	d->fn = fn;
	d->arg = arg;
	d->next = NULL;
	pthread_mutex_lock(&bg.mtx);
	if (bg.deferred_tail)
		bg.deferred_tail->next = d;
	else
		bg.deferred = d;
	bg.deferred_tail = d;
	pthread_mutex_unlock(&bg.mtx);
	bg_poke();
}
