/* libfabric 1.17's shm provider reaches an endpoint of the same process
 * by a plain pointer, and keeps finding a closed one by name: a send to,
 * or an address-vector insert of, an endpoint of this process that has
 * closed touches freed memory (seen as crashes in fi_av_insert and
 * fi_send). nnofi therefore never connects two shm endpoints of one
 * process (inproc:// is the way there): it keeps the names of the shm
 * listeners this process has bound, and its own pipe endpoints are named
 * "fi_shm://PID:..." by the provider. */
#ifndef NNOFI_SHM_LOCAL_H
#define NNOFI_SHM_LOCAL_H

#include <stdbool.h>

/* A listener name bound in this process (kept after it closes). */
void shm_local_listener(const char *name);
/* Is `name` an shm endpoint of this process, now or before? */
bool shm_local(const char *name);

#endif
