/* SP stream wire format (see framing.h). Over ipc the real libraries
 * send and expect a type byte of 0x01 before each frame. */
#include <string.h>

#include "framing.h"

void sp_header_encode(uint8_t out[SP_HEADER_SIZE], int protocol)
{
	out[0] = 0;
	out[1] = 'S';
	out[2] = 'P';
	out[3] = 0;
	out[4] = (uint8_t)(protocol >> 8);
	out[5] = (uint8_t)protocol;
	out[6] = 0;
	out[7] = 0;
}

int sp_header_decode(const uint8_t in[SP_HEADER_SIZE])
{
	if (in[0] != 0 || in[1] != 'S' || in[2] != 'P' || in[3] != 0 || in[6] != 0 || in[7] != 0)
		return -1;
	return (in[4] << 8) | in[5];
}

enum frame_status frame_header_decode(const uint8_t *buf, size_t len, bool ipc, int64_t max_size,
				      size_t *hdr_size, uint64_t *payload_len)
{
	size_t need = frame_header_size(ipc);
	if (len < need)
		return FRAME_NEED_MORE;
	if (ipc && buf[0] != 1)
		return FRAME_BAD_TYPE;
	uint64_t v = 0;
	for (size_t i = need - 8; i < need; i++)
		v = (v << 8) | buf[i];
	if (max_size >= 0 && v > (uint64_t)max_size)
		return FRAME_TOO_LARGE;
	*hdr_size = need;
	*payload_len = v;
	return FRAME_OK;
}

size_t frame_header_encode(uint8_t *out, bool ipc, uint64_t payload_len)
{
	size_t h = 0;
	if (ipc)
		out[h++] = 1;
	for (int i = 7; i >= 0; i--)
		out[h + (size_t)i] = (uint8_t)payload_len, payload_len >>= 8;
	return h + 8;
}

size_t frame_prefix_encode(uint8_t *out, bool ipc, const uint8_t *hdr, size_t hdr_len, size_t body_len)
{
	size_t h = frame_header_encode(out, ipc, hdr_len + body_len);
	memcpy(out + h, hdr, hdr_len);
	return h + hdr_len;
}
