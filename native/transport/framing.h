/* The SP wire format over byte streams, as pure functions: what the
 * stream transport uses and what the fuzz target drives. */
#ifndef NNOFI_FRAMING_H
#define NNOFI_FRAMING_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SP_HEADER_SIZE 8
#define FRAME_HEADER_MAX 9 /* ipc: type byte + 64-bit length */
/* A frame's body is allocated this big at first (or as big as what has
 * arrived) and doubles as its bytes come: a peer that claims a big frame
 * and sends little costs little. */
#define FRAME_GROW_FIRST (256 * 1024)

/* 00 'S' 'P' 00, protocol id (big-endian), 00 00 */
void sp_header_encode(uint8_t out[SP_HEADER_SIZE], int protocol);
/* The peer's protocol id, or -1 if these 8 bytes are not an SP header. */
int sp_header_decode(const uint8_t in[SP_HEADER_SIZE]);

enum frame_status {
	FRAME_NEED_MORE, /* not enough bytes for the frame header yet */
	FRAME_OK,
	FRAME_BAD_TYPE,  /* ipc: type byte other than 0x01 */
	FRAME_TOO_LARGE, /* length over max_size */
};

/* Decode the frame header at buf; on FRAME_OK, *hdr_size is its size and
 * *payload_len the length that follows. max_size < 0: no limit. */
enum frame_status frame_header_decode(const uint8_t *buf, size_t len, bool ipc, int64_t max_size,
				      size_t *hdr_size, uint64_t *payload_len);
size_t frame_header_encode(uint8_t *out, bool ipc, uint64_t payload_len);
/* What precedes a message's body on the wire: the frame header, then the
 * SP header words (backtrace, request id). Returns its size; out holds
 * FRAME_HEADER_MAX + hdr_len bytes. */
size_t frame_prefix_encode(uint8_t *out, bool ipc, const uint8_t *hdr, size_t hdr_len, size_t body_len);
static inline size_t frame_header_size(bool ipc)
{
	return ipc ? 9 : 8;
}

#endif
