/* ofi:// addresses and provider selection: the URL's parts, the
 * fi_getinfo hints and the order providers are tried in, and the fabric
 * the endpoints of one selection share. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rdma/fabric.h>

#include "ofi_internal.h"

#define OFI_VERSION FI_VERSION(1, 9)

/* ofi://IP:PORT[@FABRIC[:PROVIDER]]; a single name after @ may be either
 * (resolved against fi_getinfo by the caller). */
int ofi_addr_parse(const char *rest, struct ofi_addr *a)
{
	memset(a, 0, sizeof(*a));
	char buf[NNOFI_URL_MAX];
	snprintf(buf, sizeof(buf), "%s", rest);
	char *at = strchr(buf, '@');
	if (at) {
		*at++ = '\0';
		char *colon = strchr(at, ':');
		if (colon) {
			*colon++ = '\0';
			snprintf(a->provider, sizeof(a->provider), "%.63s", colon);
		}
		snprintf(a->fabric, sizeof(a->fabric), "%.127s", at);
		if (!a->fabric[0] && !a->provider[0])
			return EINVAL;
	}
	char *hp = buf, *port;
	if (hp[0] == '[') {
		char *close = strchr(hp, ']');
		if (!close || close[1] != ':')
			return EINVAL;
		*close = '\0';
		hp++;
		port = close + 2;
	} else {
		port = strrchr(hp, ':');
		if (!port)
			return EINVAL;
		*port++ = '\0';
	}
	if (!hp[0] || !port[0] || strlen(port) > 5 || strspn(port, "0123456789") != strlen(port) ||
	    atoi(port) > 65535)
		return EINVAL;
	snprintf(a->ip, sizeof(a->ip), "%.63s", hp);
	snprintf(a->port, sizeof(a->port), "%s", port);
	return 0;
}

/* Providers in order of preference when the URL names none. */
static const char *const preferred[] = { "verbs", "tcp", "sockets" };

/* What a selection tries: endpoint type, FI_RMA or not, and for RDM
 * whether the provider is addressed by IP:port or by name (shm). */
struct choice {
	enum fi_ep_type type;
	bool rma, named;
};

static struct fi_info *ofi_hints(const struct ofi_addr *a, const char *prov, struct choice c)
{
	struct fi_info *h = fi_allocinfo();
	if (!h)
		return NULL;
	h->ep_attr->type = c.type;
	bool rma = c.rma;
	if (c.type == FI_EP_RDM) /* the SP stream is cut into messages: keep them in order */
		h->tx_attr->msg_order = h->rx_attr->msg_order = FI_ORDER_SAS;
	h->caps = FI_MSG | (rma ? FI_RMA | FI_READ | FI_REMOTE_READ : 0);
	h->mode = FI_CONTEXT | FI_CONTEXT2;
	h->domain_attr->mr_mode = FI_MR_LOCAL | FI_MR_VIRT_ADDR | FI_MR_ALLOCATED | FI_MR_PROV_KEY;
	h->domain_attr->threading = FI_THREAD_SAFE;
	h->addr_format = c.named ? FI_ADDR_STR : strchr(a->ip, ':') ? FI_SOCKADDR_IN6 : FI_SOCKADDR_IN;
	if (prov && prov[0])
		h->fabric_attr->prov_name = strdup(prov);
	return h;
}

static bool fabric_matches(const struct fi_info *fi, const struct ofi_addr *a)
{
	if (!a->fabric[0])
		return true;
	return !strcmp(fi->fabric_attr->name, a->fabric) || !strcmp(fi->domain_attr->name, a->fabric);
}

/* fi_getinfo for this address: the named provider/fabric, or the best one.
 * A single name after @ is tried as a fabric/domain, then as a provider. */
/* Connected endpoints first (MSG), then reliable datagrams (RDM: shm,
 * rxm, rxd); each with FI_RMA if the provider has it. */
static const struct choice choices[] = {
	{ FI_EP_MSG, true, false }, { FI_EP_MSG, false, false },
	{ FI_EP_RDM, true, false }, { FI_EP_RDM, false, false },
	{ FI_EP_RDM, true, true },  { FI_EP_RDM, false, true },
};
#define NCHOICES (sizeof(choices) / sizeof(*choices))

int ofi_select(const struct ofi_addr *a, bool passive, struct fi_info **out, bool *named)
{
	const char *provs[4] = { 0 };
	int n = 0;
	struct ofi_addr alt = *a;
	if (a->provider[0]) {
		provs[n++] = a->provider;
	} else {
		for (size_t i = 0; i < sizeof(preferred) / sizeof(*preferred); i++)
			provs[n++] = preferred[i];
	}
	for (int pass = 0; pass < 2; pass++) {
		for (size_t k = 0; k < (size_t)n * NCHOICES; k++) {
			int i = (int)(k / NCHOICES);
			struct choice c = choices[k % NCHOICES];
			struct fi_info *hints = ofi_hints(&alt, provs[i], c), *list = NULL;
			if (!hints)
				return ENOMEM;
			/* named providers take no IP:port: the name is made from it */
			int rc = c.named ? fi_getinfo(OFI_VERSION, NULL, NULL, 0, hints, &list)
					 : fi_getinfo(OFI_VERSION, a->ip, a->port, passive ? FI_SOURCE : 0, hints, &list);
			fi_freeinfo(hints);
			if (rc)
				continue;
			for (struct fi_info *fi = list; fi; fi = fi->next) {
				if (fabric_matches(fi, &alt)) {
					*named = c.named;
					*out = fi_dupinfo(fi);
					fi_freeinfo(list);
					return *out ? 0 : ENOMEM;
				}
			}
			fi_freeinfo(list);
		}
		/* "@NAME" alone: not a fabric here; try it as a provider */
		if (pass == 0 && a->fabric[0] && !a->provider[0]) {
			snprintf(alt.provider, sizeof(alt.provider), "%.63s", a->fabric);
			alt.fabric[0] = '\0';
			provs[0] = alt.provider;
			n = 1;
		} else {
			break;
		}
	}
	return ENODEV;
}

/* ---- shared fabric -------------------------------------------------- */

struct ofi_fabric *fabric_open(struct fi_info *fi)
{
	struct ofi_fabric *f = calloc(1, sizeof(*f));
	if (!f)
		return NULL;
	if (fi_fabric(fi->fabric_attr, &f->fabric, NULL)) {
		free(f);
		return NULL;
	}
	atomic_init(&f->refs, 1);
	return f;
}

void fabric_unref(struct ofi_fabric *f)
{
	if (atomic_fetch_sub(&f->refs, 1) == 1) {
		fi_close(&f->fabric->fid);
		free(f);
	}
}
