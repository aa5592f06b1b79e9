/* ofi endpoints: a listener (MSG: a passive endpoint whose connection
 * requests become pipes by fi_accept; RDM: see ofi_rdm.c), a dialer
 * (one connection at a time, redialed when it fails), and stopping
 * either. ofi_bind and ofi_connect are the transport's entry points. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

#include <rdma/fabric.h>
#include <rdma/fi_cm.h>
#include <rdma/fi_endpoint.h>
#include <rdma/fi_eq.h>
#include <rdma/fi_errno.h>

#include "core.h"
#include "ofi_internal.h"
#include "shm_local.h"

/* ---- listeners ------------------------------------------------------------ */

static void listener_event(struct bg_watch *w, uint32_t events)
{
	struct ofi_ep *oe = (struct ofi_ep *)((char *)w - offsetof(struct ofi_ep, watch));
	struct endpoint *lep = oe->ep;
	struct nnofi_sock *s = lep->sock;
	(void)events;
	pthread_mutex_lock(&s->mtx);
	bool any = false;
	while (!oe->stopped) {
		uint32_t event;
		struct cm_event ev;
		ssize_t n = fi_eq_read(oe->eq, &event, &ev, sizeof(ev), 0);
		if (n == -FI_EAGAIN)
			break;
		any = true;
		if (n < 0) {
			struct fi_eq_err_entry err = { 0 };
			fi_eq_readerr(oe->eq, &err, 0);
			continue;
		}
		DBG("ofi listener: event %u\n", event);
		if (event != FI_CONNREQ)
			continue;
		struct fi_eq_cm_entry entry;
		memcpy(&entry, &ev, sizeof(entry));
		struct opipe *op = opipe_new(lep, oe->fab, entry.info);
		if (!op) {
			fi_reject(oe->pep, entry.info->handle, NULL, 0);
			fi_freeinfo(entry.info);
			continue;
		}
		op->peer_rma = peer_can_read(&ev, n);
		note_peer(op, entry.info);
		struct cm_data cm = cm_data_of(op);
		int rc = fi_accept(op->fep, &cm, sizeof(cm));
		if (rc) {
			DBG("ofi listener: accept failed: %s\n", fi_strerror(-rc));
			discard_unattached(op);
		} else {
			watch_unattached(op);
		}
		fi_freeinfo(entry.info);
	}
	/* one-shot, like a pipe's EQ watch: the fd also polls readable while
	 * any connection of the fabric has data waiting */
	if (!oe->stopped) {
		if (any)
			bg_watch_mod(&oe->watch, EPOLLIN | EPOLLONESHOT);
		else
			bg_timer_arm(&oe->rearm, now_ms() + LISTENER_REARM_MS);
	}
	pthread_mutex_unlock(&s->mtx);
}

void listener_rearm_fire(struct bg_timer *t)
{
	struct ofi_ep *oe = (struct ofi_ep *)((char *)t - offsetof(struct ofi_ep, rearm));
	pthread_mutex_lock(&oe->ep->sock->mtx);
	if (!oe->stopped && oe->rdm) {
		rdm_listener_poll(oe); /* no fd: look, and look again later */
		if (!oe->stopped)
			bg_timer_arm(&oe->rearm, now_ms() + LISTENER_REARM_MS);
	} else if (!oe->stopped) {
		bg_watch_mod(&oe->watch, EPOLLIN | EPOLLONESHOT);
	}
	pthread_mutex_unlock(&oe->ep->sock->mtx);
}

static void dial(struct endpoint *ep);
static void ofi_stop(struct endpoint *ep);
static const struct ep_ops ofi_ep_ops = { .stop = ofi_stop, .dial = dial };

static int ofi_ep_init(struct endpoint *ep, bool passive, struct ofi_ep **out)
{
	struct ofi_ep *oe = calloc(1, sizeof(*oe));
	if (!oe)
		return ENOMEM;
	int rc = ofi_addr_parse(ep->url.name, &oe->addr);
	if (!rc)
		rc = ofi_select(&oe->addr, passive, &oe->info, &oe->named);
	if (!rc)
		oe->rdm = oe->info->ep_attr->type == FI_EP_RDM;
	if (!rc && !(oe->fab = fabric_open(oe->info)))
		rc = EIO;
	DBG("ofi: %s selected %s %s (%s): %d\n", ep->url.name, rc ? "-" : oe->info->fabric_attr->prov_name,
	    rc ? "" : oe->rdm ? "RDM" : "MSG", oe->named ? "named" : "IP:port", rc);
	if (rc) {
		if (oe->info)
			fi_freeinfo(oe->info);
		free(oe);
		return rc;
	}
	oe->ep = ep;
	ep->tdata = oe;
	ep->ops = &ofi_ep_ops;
	*out = oe;
	return 0;
}

/* The port a listening fid got (port 0 binds a free one); "?" if unknown. */
void bound_port(struct fid *fid, char port[8])
{
	struct sockaddr_storage sa;
	size_t len = sizeof(sa);
	snprintf(port, 8, "?");
	if (fi_getname(fid, &sa, &len) == 0)
		snprintf(port, 8, "%u",
			 ntohs(sa.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&sa)->sin6_port
							: ((struct sockaddr_in *)&sa)->sin_port));
}

void describe(struct endpoint *ep, struct ofi_ep *oe, const char *port)
{
	const char *ip = oe->addr.ip;
	snprintf(ep->real_url, sizeof(ep->real_url), strchr(ip, ':') ? "ofi://[%s]:%s@%s:%s" : "ofi://%s:%s@%s:%s",
		 ip, port, oe->info->fabric_attr->name, oe->info->fabric_attr->prov_name);
}

int ofi_bind(struct endpoint *ep)
{
	struct ofi_ep *oe;
	int rc = ofi_ep_init(ep, true, &oe);
	if (rc)
		return rc;
	if (oe->rdm) {
		if ((rc = rdm_bind(ep, oe)))
			goto fail;
		return 0;
	}
	struct fi_eq_attr eqa = { .size = 64, .wait_obj = FI_WAIT_FD };
	int frc;
	if ((frc = fi_eq_open(oe->fab->fabric, &eqa, &oe->eq, NULL)) ||
	    (frc = fi_control(&oe->eq->fid, FI_GETWAIT, &oe->eq_fd)) ||
	    (frc = fi_passive_ep(oe->fab->fabric, oe->info, &oe->pep, ep)) ||
	    (frc = fi_pep_bind(oe->pep, &oe->eq->fid, 0)) || (frc = fi_listen(oe->pep))) {
		DBG("ofi bind: %s\n", fi_strerror(-frc));
		rc = frc == -FI_EADDRINUSE ? EADDRINUSE : EIO;
		goto fail;
	}
	char port[8];
	bound_port(&oe->pep->fid, port);
	describe(ep, oe, port);
	oe->watch.fd = oe->eq_fd;
	oe->watch.on_event = listener_event;
	oe->rearm.fire = listener_rearm_fire;
	if (bg_watch_add(&oe->watch, EPOLLIN | EPOLLONESHOT)) {
		rc = EIO;
		goto fail;
	}
	pthread_mutex_lock(&ep->sock->mtx);
	stray_watch_start(oe);
	pthread_mutex_unlock(&ep->sock->mtx);
	return 0;
fail:
	if (oe->pep)
		fi_close(&oe->pep->fid);
	if (oe->eq)
		fi_close(&oe->eq->fid);
	fabric_unref(oe->fab);
	fi_freeinfo(oe->info);
	free(oe);
	return rc;
}

/* ---- dialers ---------------------------------------------------------------- */

/* MSG: fi_connect with our private data; RDM: HELLO to the listener. */
static bool start_connecting(struct opipe *op, struct ofi_ep *oe)
{
	if (op->rdm)
		return insert_peer(op, oe->named ? (void *)oe->name : oe->info->dest_addr) && send_hello(op, HELLO);
	struct cm_data cm = cm_data_of(op);
	return fi_connect(op->fep, oe->info->dest_addr, &cm, sizeof(cm)) == 0;
}

static void dial(struct endpoint *ep)
{
	struct ofi_ep *oe = ep->tdata;
	if (oe->stopped || oe->pending)
		return;
	if (oe->named && shm_local(oe->name)) {
		DBG("ofi: %s is a listener of this process: not dialing\n", oe->name);
		return; /* see shm_local.h; ofi_connect said so when it could */
	}
	struct opipe *op = opipe_new(ep, oe->fab, oe->info);
	DBG("ofi dial: pipe %p\n", (void *)op);
	if (!op || !start_connecting(op, oe)) {
		if (op)
			discard_unattached(op);
		sock_ep_redial_later(ep);
		return;
	}
	oe->pending = op;
	watch_unattached(op);
}

static void free_ofi_ep(void *arg);

int ofi_connect(struct endpoint *ep)
{
	struct ofi_ep *oe;
	int rc = ofi_ep_init(ep, false, &oe);
	if (rc)
		return rc;
	describe(ep, oe, oe->addr.port);
	if (oe->named)
		make_name(oe, oe->addr.port);
	if (oe->named && shm_local(oe->name)) {
		free_ofi_ep(oe);
		return ENOTSUP; /* shm to this same process: see shm_local.h */
	}
	pthread_mutex_lock(&ep->sock->mtx);
	dial(ep);
	pthread_mutex_unlock(&ep->sock->mtx);
	return 0;
}

/* ---- stop ------------------------------------------------------------------- */

static void free_ofi_ep(void *arg)
{
	struct ofi_ep *oe = arg;
	fabric_unref(oe->fab);
	fi_freeinfo(oe->info);
	free(oe);
}

static void ofi_stop(struct endpoint *ep)
{
	struct ofi_ep *oe = ep->tdata;
	pthread_mutex_lock(&ep->sock->mtx);
	oe->stopped = true;
	if (oe->eq)
		bg_watch_del(&oe->watch);
	bg_timer_cancel(&oe->rearm);
	bg_timer_cancel(&oe->stray_sweep);
	rdm_listener_close(oe);
	/* the port is free when stop returns, so it can be bound again */
	if (oe->pep)
		fi_close(&oe->pep->fid);
	if (oe->eq)
		fi_close(&oe->eq->fid);
	oe->pep = NULL;
	oe->eq = NULL;
	while (oe->unattached)
		opipe_fail(oe->unattached);
	pthread_mutex_unlock(&ep->sock->mtx);
	bg_defer(free_ofi_ep, oe);
}
