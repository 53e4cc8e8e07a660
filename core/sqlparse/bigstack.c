// The thread that runs libpg_query on statements large enough to need a
// deep C stack; see bigstack.go.

#define _GNU_SOURCE

#include <pthread.h>
#include <stddef.h>
#include <sys/mman.h>

#include "_cgo_export.h"

static void *gw_stack_lo;
static size_t gw_stack_size;

static void *gw_big_stack_main(void *arg) {
	(void)arg;
#ifdef __linux__
	// Elsewhere the stack's pages are simply kept.
	pthread_attr_t attr;
	if (pthread_getattr_np(pthread_self(), &attr) == 0) {
		pthread_attr_getstack(&attr, &gw_stack_lo, &gw_stack_size);
		pthread_attr_destroy(&attr);
	}
#endif
	gatewaydSqlparseBigStack(); // serves requests until the process ends
	return NULL;
}

int gw_start_big_stack(size_t stack_bytes) {
	pthread_attr_t attr;
	pthread_t thread;
	int rc = pthread_attr_init(&attr);
	if (rc != 0) {
		return rc;
	}
	rc = pthread_attr_setstacksize(&attr, stack_bytes);
	if (rc == 0) {
		rc = pthread_attr_setguardsize(&attr, 1 << 16);
	}
	if (rc == 0) {
		rc = pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	}
	if (rc == 0) {
		rc = pthread_create(&thread, &attr, gw_big_stack_main, NULL);
	}
	pthread_attr_destroy(&attr);
	return rc;
}

// gw_release_big_stack gives the pages of the stack below its top keep
// bytes back to the kernel. It runs on the big-stack thread itself, whose
// live frames are all near the top.
void gw_release_big_stack(size_t keep) {
	if (gw_stack_lo == NULL || gw_stack_size <= keep) {
		return;
	}
	madvise(gw_stack_lo, gw_stack_size - keep, MADV_DONTNEED);
}
