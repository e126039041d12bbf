/* Error codes shared by every part of the C core: 0 is success, failures are negative. */
#ifndef CPAR_CORE_ERRORS_H
#define CPAR_CORE_ERRORS_H

/* Every core function returns CPAR_OK or one of these. The extension maps them to
 * Python exception classes in exactly one place (cext/module/exceptions.c). */
#define CPAR_OK 0
#define CPAR_ENOMEM (-1)       /* an allocation failed */
#define CPAR_EINVAL (-2)       /* a caller passed an invalid argument */
#define CPAR_EPROTO (-3)       /* malformed message: truncated, lengths disagree, bad frame count */
#define CPAR_ESIG (-4)         /* missing or wrong HMAC signature */
#define CPAR_EVERSION (-5)     /* unknown wire version */
#define CPAR_ETYPE (-6)        /* unknown message type */
#define CPAR_EZMQ (-7)         /* a libzmq call failed; errno holds the detail */
#define CPAR_ETIMEOUT (-8)     /* a wait ran out of time */
#define CPAR_ECLOSED (-9)      /* the object or connection is closed */
#define CPAR_ENOENGINE (-10)   /* a request named an engine that is not registered */
#define CPAR_EENGINEDEAD (-11) /* the engine died before answering */
#define CPAR_ECRYPTO (-12)     /* libcrypto failed */
#define CPAR_EIO (-13)         /* a file or socket operation failed; errno holds the detail */
#define CPAR_EAGAIN (-14)      /* nothing to do right now (non-blocking call) */
#define CPAR_ESHUTDOWN (-15)   /* the controller is shutting down */
#define CPAR_EIMPOSSIBLE (-16) /* a task's dependencies can never be met */
#define CPAR_EDEPTIMEOUT (-17) /* a task waited for its dependencies past its timeout */
#define CPAR_EABORTED (-18)    /* a task was aborted before it ran */
#define CPAR_ESTALE (-19)      /* shared-memory bytes were released by their owner before read */
#define CPAR_EPERM (-20)       /* the kernel denied a shared-memory read (ptrace rules) */
#define CPAR_EWINDOW (-21)     /* a message's timestamp lies outside the accepted window */
#define CPAR_EREPLAY (-22)     /* an identical message was received recently (a replay) */
#define CPAR_ETASKTIMEOUT (-23) /* a task waited for an engine to take it past its timeout */

/* Returns a static, human-readable description of a CPAR_E* code. */
const char *cpar_strerror(int code);

#endif /* CPAR_CORE_ERRORS_H */
