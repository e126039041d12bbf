/* ThreadSanitizer annotations for hand-overs it cannot see.
 *
 * libzmq is not instrumented: when one thread fills memory and passes a pointer to it (or
 * a zmq_msg_t) to another thread through a zmq socket, TSan sees no synchronization and
 * reports a race. CPAR_TSAN_RELEASE(obj) just before such a send and CPAR_TSAN_ACQUIRE(obj)
 * just after the matching receive (the same obj: any address both sides know, e.g. the
 * channel's owner) tell it what libzmq guarantees. Both compile to nothing without
 * -fsanitize=thread. Any thread; no Python, no GIL. */
#ifndef CPAR_CORE_TSAN_H
#define CPAR_CORE_TSAN_H

#if defined(__SANITIZE_THREAD__)
#define CPAR_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define CPAR_TSAN 1
#endif
#endif

#ifdef CPAR_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define CPAR_TSAN_RELEASE(obj) __tsan_release((void *)(obj))
#define CPAR_TSAN_ACQUIRE(obj) __tsan_acquire((void *)(obj))
#else
#define CPAR_TSAN_RELEASE(obj) ((void)(obj))
#define CPAR_TSAN_ACQUIRE(obj) ((void)(obj))
#endif

#endif /* CPAR_CORE_TSAN_H */
