/* Names of this process's shm endpoints: see shm_local.h. A short list
 * searched only when a connection starts. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shm_local.h"

struct local_name {
	struct local_name *next;
	char name[];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct local_name *listeners;

void shm_local_listener(const char *name)
{
	if (shm_local(name))
		return;
	size_t len = strlen(name) + 1;
	struct local_name *n = malloc(sizeof(*n) + len);
	if (!n)
		return;
	memcpy(n->name, name, len);
	pthread_mutex_lock(&lock);
	n->next = listeners;
	listeners = n;
	pthread_mutex_unlock(&lock);
}

bool shm_local(const char *name)
{
	char own[32];
	snprintf(own, sizeof(own), "fi_shm://%d:", (int)getpid());
	if (!strncmp(name, own, strlen(own)))
		return true; /* a pipe endpoint the provider named for us */
	pthread_mutex_lock(&lock);
	struct local_name *n = listeners;
	while (n && strcmp(n->name, name))
		n = n->next;
	pthread_mutex_unlock(&lock);
	return n != NULL;
}
