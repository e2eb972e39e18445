// LD_PRELOAD shim for the proxy benchmark's `allocs_per_request`: counts calls to malloc, calloc,
// realloc, aligned_alloc, posix_memalign and memalign (C++'s operator new goes through malloc) in the
// process it is loaded into, and writes the running total to the file named by SLUICE_ALLOC_COUNT_FILE
// every 50 ms (written to FILE.tmp, then renamed). The benchmark reads the total before and after a wrk
// run and divides by the requests wrk made. Bench builds only; never linked into sluice.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

extern void* __libc_malloc(size_t);
extern void* __libc_calloc(size_t, size_t);
extern void* __libc_realloc(void*, size_t);
extern void* __libc_memalign(size_t, size_t);

static atomic_ulong count;

void* malloc(size_t n) {
  atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
  return __libc_malloc(n);
}

void* calloc(size_t n, size_t size) {
  atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
  return __libc_calloc(n, size);
}

void* realloc(void* p, size_t n) {
  atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
  return __libc_realloc(p, n);
}

void* memalign(size_t alignment, size_t n) {
  atomic_fetch_add_explicit(&count, 1, memory_order_relaxed);
  return __libc_memalign(alignment, n);
}

void* aligned_alloc(size_t alignment, size_t n) { return memalign(alignment, n); }

int posix_memalign(void** out, size_t alignment, size_t n) {
  void* p = memalign(alignment, n);
  if (!p) return ENOMEM;
  *out = p;
  return 0;
}

static void* reporter(void* path) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s.tmp", (const char*)path);
  const struct timespec period = {0, 50 * 1000 * 1000};
  for (;;) {
    // open/write, not stdio: the reporter itself must not allocate.
    char line[32];
    int len = snprintf(line, sizeof line, "%lu\n", atomic_load_explicit(&count, memory_order_relaxed));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ssize_t ignored = write(fd, line, (size_t)len);
      (void)ignored;
      close(fd);
      rename(tmp, (const char*)path);
    }
    nanosleep(&period, NULL);
  }
  return NULL;
}

__attribute__((constructor)) static void start_reporter(void) {
  const char* path = getenv("SLUICE_ALLOC_COUNT_FILE");
  if (!path || !*path) return;
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  pthread_create(&thread, &attr, reporter, strdup(path));
  pthread_attr_destroy(&attr);
}
