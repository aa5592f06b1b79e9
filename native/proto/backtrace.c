/* The SP backtrace of REQ/REP and SURVEYOR/RESPONDENT: 32-bit big-endian
 * words, pipe ids with the top bit clear, ending with the request id
 * whose top bit is set. Kept apart from the sockets so the fuzz target
 * can drive it alone. */
#include <string.h>

#include "core.h"

void put_u32be(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

uint32_t get_u32be(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

bool proto_take_backtrace(nnofi_msg *m, size_t prefix)
{
	size_t h = prefix;
	for (;;) {
		if (m->len < 4 || h + 4 > NNOFI_MAX_HDR)
			return false;
		memcpy(m->hdr + h, m->body, 4);
		h += 4;
		bool last = m->body[0] & 0x80;
		m->body += 4;
		m->len -= 4;
		if (last)
			break;
	}
	m->hdr_len = h;
	return true;
}
