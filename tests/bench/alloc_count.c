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

// A sluice linked with jemalloc (meson option `allocator`) gets malloc, free and C++'s operator new and
// delete from it, unless this shim defines them all: it does, so in the counting run the process allocates
// from glibc alone, and operator new is counted once whichever allocator the binary links (libstdc++'s own
// operator new would call malloc; jemalloc's would not). Itanium C++ ABI names, as C symbols.
extern void __libc_free(void*);
void free(void* p) { __libc_free(p); }
void* _Znwm(size_t n) { return malloc(n ? n : 1); }                   // operator new(size_t)
void* _Znam(size_t n) { return malloc(n ? n : 1); }                   // operator new[](size_t)
void* _ZnwmRKSt9nothrow_t(size_t n, const void* t) { (void)t; return malloc(n ? n : 1); }
void* _ZnamRKSt9nothrow_t(size_t n, const void* t) { (void)t; return malloc(n ? n : 1); }
void* _ZnwmSt11align_val_t(size_t n, size_t a) { return memalign(a, n ? n : 1); }
void* _ZnamSt11align_val_t(size_t n, size_t a) { return memalign(a, n ? n : 1); }
void _ZdlPv(void* p) { __libc_free(p); }                              // operator delete(void*)
void _ZdaPv(void* p) { __libc_free(p); }
void _ZdlPvm(void* p, size_t n) { (void)n; __libc_free(p); }          // sized
void _ZdaPvm(void* p, size_t n) { (void)n; __libc_free(p); }
void _ZdlPvRKSt9nothrow_t(void* p, const void* t) { (void)t; __libc_free(p); }
void _ZdaPvRKSt9nothrow_t(void* p, const void* t) { (void)t; __libc_free(p); }
void _ZdlPvSt11align_val_t(void* p, size_t a) { (void)a; __libc_free(p); }
void _ZdaPvSt11align_val_t(void* p, size_t a) { (void)a; __libc_free(p); }
void _ZdlPvmSt11align_val_t(void* p, size_t n, size_t a) { (void)n; (void)a; __libc_free(p); }
void _ZdaPvmSt11align_val_t(void* p, size_t n, size_t a) { (void)n; (void)a; __libc_free(p); }


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
