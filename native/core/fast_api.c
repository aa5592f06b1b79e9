/* The function table nnofi._fast calls through (nnofi_fast.h). */
#include "nnofi_fast.h"

static const struct nnofi_fast_api api = {
	.version = NNOFI_FAST_API_VERSION,
	.send = nnofi_send,
	.recv = nnofi_recv,
	.msg_free = nnofi_msg_free,
	.send_vec = nnofi_send_vec,
	.recv_msgs = nnofi_recv_msgs,
	.rendezvous_waiting = nnofi_rendezvous_waiting,
	.recv_landing = nnofi_recv_landing,
};

uintptr_t nnofi_fast_api(void)
{
	return (uintptr_t)&api;
}
