/* libfabric discovery: what fi_getinfo offers on this machine, flattened
 * for `nnofi info` / nnofi.fabric.providers() (like fi_info). */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include <rdma/fabric.h>
#include <rdma/fi_errno.h>

#include "core.h"

#define NNOFI_FI_VERSION FI_VERSION(1, 9)

static const char *ep_type_name(enum fi_ep_type t)
{
	switch (t) {
	case FI_EP_MSG: return "MSG";
	case FI_EP_RDM: return "RDM";
	case FI_EP_DGRAM: return "DGRAM";
	default: return "other";
	}
}

static void caps_string(uint64_t caps, char *out, size_t cap)
{
	static const struct { uint64_t bit; const char *name; } names[] = {
		{ FI_MSG, "MSG" }, { FI_TAGGED, "TAGGED" }, { FI_RMA, "RMA" },
		{ FI_ATOMIC, "ATOMIC" }, { FI_MULTICAST, "MULTICAST" },
		{ FI_HMEM, "HMEM" },
	};
	out[0] = '\0';
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (!(caps & names[i].bit))
			continue;
		if (out[0])
			strncat(out, ",", cap - strlen(out) - 1);
		strncat(out, names[i].name, cap - strlen(out) - 1);
	}
}

static void addr_string(const struct fi_info *fi, char *out, size_t cap)
{
	out[0] = '\0';
	if (!fi->src_addr)
		return;
	if (fi->addr_format == FI_SOCKADDR_IN) {
		const struct sockaddr_in *a = fi->src_addr;
		inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)cap);
	} else if (fi->addr_format == FI_SOCKADDR_IN6) {
		const struct sockaddr_in6 *a = fi->src_addr;
		inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)cap);
	} else {
		snprintf(out, cap, "(%s)", fi_tostr(&fi->addr_format, FI_TYPE_ADDR_FORMAT));
	}
}

int nnofi_fabric_list(nnofi_fabric_entry *out, int max, int *count)
{
	/* no hints: every provider answers with all it can do */
	struct fi_info *list = NULL;
	int rc = fi_getinfo(NNOFI_FI_VERSION, NULL, NULL, 0, NULL, &list);
	*count = 0;
	if (rc == -FI_ENODATA)
		return 0;
	if (rc)
		return -rc;
	for (struct fi_info *fi = list; fi && *count < max; fi = fi->next) {
		nnofi_fabric_entry *e = &out[(*count)++];
		memset(e, 0, sizeof(*e));
		snprintf(e->provider, sizeof(e->provider), "%s", fi->fabric_attr->prov_name);
		snprintf(e->fabric, sizeof(e->fabric), "%s", fi->fabric_attr->name);
		snprintf(e->domain, sizeof(e->domain), "%s", fi->domain_attr->name);
		snprintf(e->ep_type, sizeof(e->ep_type), "%s", ep_type_name(fi->ep_attr->type));
		caps_string(fi->caps, e->caps, sizeof(e->caps));
		addr_string(fi, e->address, sizeof(e->address));
		e->max_msg_size = fi->ep_attr->max_msg_size;
		e->mr_local = (fi->domain_attr->mr_mode & FI_MR_LOCAL) != 0;
	}
	fi_freeinfo(list);
	return 0;
}

const char *nnofi_fabric_version(void)
{
	static char v[32];
	uint32_t ver = fi_version();
	snprintf(v, sizeof(v), "%u.%u", FI_MAJOR(ver), FI_MINOR(ver));
	return v;
}
