/* URL parsing: inproc://NAME, ipc://PATH, tcp://HOST:PORT with HOST an
 * IPv4 address, [IPv6], a name, or * (any). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core.h"

static int parse_port(const char *s, int *port)
{
	if (*s == '\0' || strlen(s) > 5)
		return EINVAL;
	long v = 0;
	for (const char *c = s; *c; c++) {
		if (*c < '0' || *c > '9')
			return EINVAL;
		v = v * 10 + (*c - '0');
	}
	if (v > 65535)
		return EINVAL;
	*port = (int)v;
	return 0;
}

static int parse_host_port(const char *hp, struct url *u)
{
	const char *colon;
	if (hp[0] == '[') {
		const char *close = strchr(hp, ']');
		if (!close || close[1] != ':' || close == hp + 1)
			return EINVAL;
		size_t n = (size_t)(close - hp - 1);
		if (n >= sizeof(u->host))
			return EINVAL;
		memcpy(u->host, hp + 1, n);
		u->host[n] = '\0';
		u->ipv6_literal = true;
		colon = close + 1;
	} else {
		colon = strrchr(hp, ':');
		if (!colon || colon == hp)
			return EINVAL;
		size_t n = (size_t)(colon - hp);
		if (n >= sizeof(u->host) || memchr(hp, ':', n))
			return EINVAL;
		memcpy(u->host, hp, n);
		u->host[n] = '\0';
	}
	return parse_port(colon + 1, &u->port);
}

int url_parse(const char *text, struct url *u)
{
	memset(u, 0, sizeof(*u));
	if (!text || strlen(text) >= sizeof(u->text))
		return EINVAL;
	strcpy(u->text, text);
	const char *sep = strstr(text, "://");
	if (!sep)
		return EINVAL;
	size_t slen = (size_t)(sep - text);
	const char *rest = sep + 3;
	if (slen == 6 && !strncmp(text, "inproc", 6)) {
		u->scheme = URL_INPROC;
	} else if (slen == 3 && !strncmp(text, "ipc", 3)) {
		u->scheme = URL_IPC;
	} else if (slen == 3 && !strncmp(text, "ofi", 3)) {
		u->scheme = URL_OFI; /* the transport parses IP:PORT@FABRIC:PROVIDER */
	} else if (slen == 3 && !strncmp(text, "tcp", 3)) {
		u->scheme = URL_TCP;
		return parse_host_port(rest, u);
	} else {
		return EPROTONOSUPPORT;
	}
	if (*rest == '\0')
		return EINVAL;
	if (u->scheme == URL_IPC && strlen(rest) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return ENAMETOOLONG;
	strcpy(u->name, rest);
	return 0;
}
