/* Descriptions of the CPAR_E* codes (errors.h). */
#include "errors.h"

const char *
cpar_strerror(int code)
{
    switch (code) {
    case CPAR_OK:
        return "success";
    case CPAR_ENOMEM:
        return "out of memory";
    case CPAR_EINVAL:
        return "invalid argument";
    case CPAR_EPROTO:
        return "malformed message";
    case CPAR_ESIG:
        return "missing or wrong message signature (is the key right?)";
    case CPAR_EVERSION:
        return "unknown wire protocol version";
    case CPAR_ETYPE:
        return "unknown message type";
    case CPAR_EZMQ:
        return "libzmq call failed";
    case CPAR_ETIMEOUT:
        return "timed out";
    case CPAR_ECLOSED:
        return "connection closed";
    case CPAR_ENOENGINE:
        return "no such engine";
    case CPAR_EENGINEDEAD:
        return "engine died";
    case CPAR_ECRYPTO:
        return "libcrypto failed";
    case CPAR_EIO:
        return "I/O error";
    case CPAR_EAGAIN:
        return "try again";
    case CPAR_ESHUTDOWN:
        return "controller shutting down";
    case CPAR_EIMPOSSIBLE:
        return "the task's dependencies can never be met";
    case CPAR_EDEPTIMEOUT:
        return "the task's dependencies were not met within its timeout";
    case CPAR_ETASKTIMEOUT:
        return "no engine took the task within its timeout";
    case CPAR_EABORTED:
        return "the task was aborted";
    case CPAR_ESTALE:
        return "shared-memory data was released by its sender before it was read";
    case CPAR_EPERM:
        return "the kernel denied reading the sender's memory";
    case CPAR_EWINDOW:
        return "message timestamp outside the accepted window (clocks apart, or a replay)";
    case CPAR_EREPLAY:
        return "message already received (a replay)";
    default:
        return "unknown error";
    }
}
