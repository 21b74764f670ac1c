// pool.c: the kernels' threads and the CPU's instruction set.
//
// One process-wide pool of (cores - 1) workers that spin briefly, then sleep on a futex. A parallel
// job is a count of independent tasks; the caller and the workers take task indices from one atomic
// counter, so which thread runs a task never changes what the task computes. One job at a time: a
// thread that finds the pool busy (another in-process rank) runs its tasks itself. The thread count
// is process-wide (tk_set_threads): in-process ranks each use their share of the cores.
#define _GNU_SOURCE
#include "internal.h"
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <malloc.h>

// MARK: - ISA

static int cpu_isa = -1, isa_limit = TK_ISA_AVX512, has_bf16 = 0;

static void detect(void) {
    if (cpu_isa >= 0) return;
    __builtin_cpu_init();
    int isa = TK_ISA_PORTABLE;
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")) isa = TK_ISA_AVX2;
    if (isa == TK_ISA_AVX2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw")
        && __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) isa = TK_ISA_AVX512;
    has_bf16 = __builtin_cpu_supports("avx512bf16");
    const char *lim = getenv("TURING_MAX_ISA");     // measurement only: e.g. AVX2 on an AVX-512 machine
    if (lim) {
        if (!strcasecmp(lim, "avx2")) isa_limit = TK_ISA_AVX2;
        else if (!strcasecmp(lim, "portable")) isa_limit = TK_ISA_PORTABLE;
    }
    cpu_isa = isa;
}

int tk_cpu_isa(void) { detect(); return cpu_isa; }
int tk_isa(void) { detect(); return cpu_isa < isa_limit ? cpu_isa : isa_limit; }
int tk_limit_isa(int isa) { detect(); isa_limit = isa; return tk_isa(); }
int tk_cpu_has_avx512bf16(void) { detect(); return has_bf16; }

// MARK: - threads

int tk_available_cores(void) {
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) { int n = CPU_COUNT(&set); return n > 0 ? n : 1; }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static _Atomic int thread_limit = 0;   // 0: all available cores
void tk_set_threads(int n) { atomic_store(&thread_limit, n < 1 ? 1 : n); }
int tk_threads(void) {
    int n = atomic_load(&thread_limit);
    return n > 0 ? n : tk_available_cores();
}

typedef struct {
    pthread_mutex_t busy;
    _Atomic int gen;            // bumped for every job; workers wait on it
    _Atomic int sleepers;
    _Atomic long next;          // next task index
    _Atomic int running;        // workers still inside the current job
    long ntasks;
    int want;                   // threads for this job, the caller included
    tk_task_fn fn;
    void *ctx;
    int nworkers;
} pool_t;

static pool_t pool = { .busy = PTHREAD_MUTEX_INITIALIZER };
static pthread_once_t pool_once = PTHREAD_ONCE_INIT;

static void futex_wait(_Atomic int *addr, int val) { syscall(SYS_futex, addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0); }
static void futex_wake(_Atomic int *addr) { syscall(SYS_futex, addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0); }

static void run_tasks(void) {
    for (;;) {
        long t = atomic_fetch_add_explicit(&pool.next, 1, memory_order_relaxed);
        if (t >= pool.ntasks) return;
        pool.fn(pool.ctx, t);
    }
}

static void *worker(void *arg) {
    int index = (int)(long)arg;          // 1 ... nworkers (the caller is 0)
    int seen = 0;                        // workers start before the first job bumps gen
    for (;;) {
        int g;
        int spins = 0;
        while ((g = atomic_load_explicit(&pool.gen, memory_order_acquire)) == seen) {
            if (++spins < 20000) { __builtin_ia32_pause(); continue; }
            atomic_fetch_add(&pool.sleepers, 1);
            if (atomic_load(&pool.gen) == seen) futex_wait(&pool.gen, seen);
            atomic_fetch_sub(&pool.sleepers, 1);
            spins = 0;
        }
        seen = g;
        if (index < pool.want) run_tasks();
        atomic_fetch_sub_explicit(&pool.running, 1, memory_order_release);
    }
    return NULL;
}

static void start_pool(void) {
    int n = tk_available_cores() - 1;
    if (n > 63) n = 63;
    pool.nworkers = 0;
    for (int i = 1; i <= n; i++) {
        pthread_t t;
        pthread_attr_t a; pthread_attr_init(&a); pthread_attr_setstacksize(&a, 256 * 1024);
        if (pthread_create(&t, &a, worker, (void *)(long)i) == 0) { pthread_detach(t); pool.nworkers++; }
        pthread_attr_destroy(&a);
    }
}

void tk_parallel(long ntasks, int threads, tk_task_fn fn, void *ctx) {
    if (ntasks <= 0) return;
    if (threads > ntasks) threads = (int)ntasks;
    if (threads <= 1) { for (long t = 0; t < ntasks; t++) fn(ctx, t); return; }
    pthread_once(&pool_once, start_pool);
    if (pool.nworkers == 0 || pthread_mutex_trylock(&pool.busy) != 0) {
        for (long t = 0; t < ntasks; t++) fn(ctx, t);
        return;
    }
    pool.fn = fn; pool.ctx = ctx; pool.ntasks = ntasks;
    pool.want = threads <= pool.nworkers + 1 ? threads : pool.nworkers + 1;
    atomic_store_explicit(&pool.next, 0, memory_order_relaxed);
    atomic_store_explicit(&pool.running, pool.nworkers, memory_order_relaxed);
    atomic_fetch_add_explicit(&pool.gen, 1, memory_order_release);
    if (atomic_load(&pool.sleepers) > 0) futex_wake(&pool.gen);
    run_tasks();
    while (atomic_load_explicit(&pool.running, memory_order_acquire) > 0) __builtin_ia32_pause();
    pthread_mutex_unlock(&pool.busy);
}

void tk_release_freed_memory(void) { malloc_trim(0); }

void tk_keep_freed_memory(void) {
    mallopt(M_ARENA_MAX, 1);                   // threads allocate from the main heap, which is not trimmed below...
    mallopt(M_TRIM_THRESHOLD, INT_MAX);        // ...what the process has used
    mallopt(M_MMAP_THRESHOLD, 32 << 20);       // blocks up to 32 MB from the heap (larger ones stay mapped)
}

void tk_parallel_for(long ntasks, void (*fn)(void *ctx, long task), void *ctx) { tk_parallel(ntasks, tk_threads(), fn, ctx); }
