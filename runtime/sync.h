/* pml — internal: what the worker pools wait with (a pause for spinning, futex sleep and wake),
 * and how they start threads. */
#ifndef PML_RUNTIME_SYNC_H
#define PML_RUNTIME_SYNC_H

#include <limits.h>
#include <linux/futex.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <uv.h>

static inline void pml__cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* sleeps while *addr == val (returns at once if it differs, or on any wake) */
static inline void pml__futex_wait(_Atomic uint32_t *addr, uint32_t val)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAIT_PRIVATE, val, NULL, NULL, 0);
}

static inline void pml__futex_wake(_Atomic uint32_t *addr)
{
    syscall(SYS_futex, (uint32_t *)addr, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
}

/* Starts a worker with every signal blocked: signals go to the thread that handles them (the
 * caller of pml_train), never to a compute thread. \return uv_thread_create's result. */
static inline int pml__thread_start(uv_thread_t *t, void (*fn)(void *), void *arg)
{
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int r = uv_thread_create(t, fn, arg);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return r;
}

#endif
