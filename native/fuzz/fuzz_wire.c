/* libFuzzer target for everything that parses bytes a peer or a user
 * controls: URLs, the SP header, the stream frame decoder (tcp and ipc,
 * frames split anywhere) and the SP backtrace. The first input byte
 * picks the parser. Built by `make fuzz` and tests/fuzz. */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "framing.h"

static void fuzz_url(const uint8_t *data, size_t size)
{
	char text[NNOFI_URL_MAX + 8];
	size_t n = size < sizeof(text) - 1 ? size : sizeof(text) - 1;
	memcpy(text, data, n);
	text[n] = '\0';
	struct url u;
	if (url_parse(text, &u) == 0 && u.scheme == URL_TCP && (u.port < 0 || u.port > 65535))
		abort(); /* a parsed port is always valid */
}

/* Decode a stream of frames; each complete payload is parsed as a
 * backtrace the way REP and RESPONDENT do. */
static void fuzz_stream(const uint8_t *data, size_t size, bool ipc, int64_t max_size)
{
	while (size > 0) {
		size_t hsz;
		uint64_t len;
		enum frame_status st = frame_header_decode(data, size, ipc, max_size, &hsz, &len);
		if (st != FRAME_OK)
			return;
		if (hsz > size || (max_size >= 0 && len > (uint64_t)max_size))
			abort();
		data += hsz;
		size -= hsz;
		if (len > size)
			return; /* the rest would come later */
		struct chunk c = { .data = (uint8_t *)data, .len = (size_t)len };
		nnofi_msg m = { .chunk = &c, .body = (uint8_t *)data, .len = (size_t)len };
		put_u32be(m.hdr, 7);
		if (proto_take_backtrace(&m, 4)) {
			if (m.hdr_len > NNOFI_MAX_HDR || m.hdr_len % 4 || !(m.hdr[m.hdr_len - 4] & 0x80))
				abort();
			if (m.body + m.len != data + len)
				abort();
		}
		data += len;
		size -= (size_t)len;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	uint8_t mode = data[0];
	data++;
	size--;
	switch (mode % 4) {
	case 0:
		fuzz_url(data, size);
		break;
	case 1:
		if (size >= SP_HEADER_SIZE) {
			int proto = sp_header_decode(data);
			if (proto > 0xffff)
				abort();
		}
		break;
	case 2:
		fuzz_stream(data, size, false, mode & 0x80 ? -1 : 1024 * 1024);
		break;
	case 3:
		fuzz_stream(data, size, true, mode & 0x80 ? -1 : 1024 * 1024);
		break;
	}
	return 0;
}
