/* The same-host shared-memory path for large frames (shm.h). */
#include "shm.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/random.h>
#include <sys/uio.h>
#include <unistd.h>

#include "errors.h"
#include "pagepool.h"
#include "vec.h"

#define CPAR__SHM_CHUNK (64u << 20) /* bytes per process_vm_readv call */
#define CPAR__SHM_HUGE (2u << 20)   /* transparent huge page size (x86-64, arm64 4K) */
/* Frames from this size on are read by two threads, half each: a first read into fresh
 * pages is bound by the kernel's page clearing, which then runs on two cores. */
#define CPAR__SHM_SPLIT (16u << 20)

static void
cpar__shm_put(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t
cpar__shm_get(const uint8_t *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- seals ------------------------------------------------------------------------------ */

#define CPAR__SEAL_PAGE 4096 /* slots come in pages of 512, never unmapped */

static pthread_mutex_t cpar__seal_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic uint64_t **cpar__seal_free; /* free slots (malloc'd stack), under the lock */
static size_t cpar__seal_nfree, cpar__seal_cap;
static uint64_t cpar__seal_next; /* next value; random start, under the lock */
static atomic_long cpar__seal_live;

/* Adds a fresh page of slots to the free stack. Called with the lock held. */
static int
cpar__seal_grow(void)
{
    size_t per = CPAR__SEAL_PAGE / sizeof(uint64_t);
    _Atomic uint64_t *page;

    if (cpar__seal_nfree + per > cpar__seal_cap) {
        size_t ncap = cpar__seal_cap ? cpar__seal_cap * 2 : per;
        _Atomic uint64_t **nv;
        while (ncap < cpar__seal_nfree + per)
            ncap *= 2;
        nv = realloc(cpar__seal_free, ncap * sizeof(*nv));
        if (nv == NULL)
            return CPAR_ENOMEM;
        cpar__seal_free = nv;
        cpar__seal_cap = ncap;
    }
    page = mmap(NULL, CPAR__SEAL_PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (page == MAP_FAILED)
        return CPAR_ENOMEM;
    for (size_t i = per; i-- > 0;)
        cpar__seal_free[cpar__seal_nfree++] = &page[i];
    if (cpar__seal_next == 0 &&
        getrandom(&cpar__seal_next, sizeof(cpar__seal_next), 0) != sizeof(cpar__seal_next))
        cpar__seal_next = cpar_now_ns() ^ ((uint64_t)getpid() << 40);
    return CPAR_OK;
}

int
cpar_shm_seal_new(cpar_shm_seal *s)
{
    int rc = CPAR_OK;

    s->slot = NULL;
    s->value = 0;
    pthread_mutex_lock(&cpar__seal_lock);
    if (cpar__seal_nfree == 0)
        rc = cpar__seal_grow();
    if (rc == CPAR_OK) {
        s->slot = cpar__seal_free[--cpar__seal_nfree];
        if (++cpar__seal_next == 0)
            ++cpar__seal_next;
        s->value = cpar__seal_next;
        atomic_store(s->slot, s->value);
        atomic_fetch_add(&cpar__seal_live, 1);
    }
    pthread_mutex_unlock(&cpar__seal_lock);
    return rc;
}

void
cpar_shm_seal_break(cpar_shm_seal *s)
{
    if (s->slot == NULL)
        return;
    /* The store and the fence come before anything that releases the guarded bytes: a
     * reader that still sees the value after its copy copied bytes written before now. */
    atomic_store(s->slot, 0);
    atomic_thread_fence(memory_order_seq_cst);
    pthread_mutex_lock(&cpar__seal_lock);
    if (cpar__seal_nfree < cpar__seal_cap) /* always: the stack has room for every slot */
        cpar__seal_free[cpar__seal_nfree++] = s->slot;
    pthread_mutex_unlock(&cpar__seal_lock);
    atomic_fetch_sub(&cpar__seal_live, 1);
    s->slot = NULL;
    s->value = 0;
}

long
cpar_shm_seals_live(void)
{
    return atomic_load(&cpar__seal_live);
}

/* ---- descriptor tables ------------------------------------------------------------------ */

void
cpar_shm_entry_encode(const cpar_shm_entry *e, uint8_t out[CPAR_SHM_ENTRY_SIZE])
{
    cpar__shm_put(out, e->index, 4);
    cpar__shm_put(out + 4, e->pid, 4);
    cpar__shm_put(out + 8, e->addr, 8);
    cpar__shm_put(out + 16, e->len, 8);
}

static void
cpar__shm_entry_decode(const uint8_t *p, cpar_shm_entry *e)
{
    e->index = (uint32_t)cpar__shm_get(p, 4);
    e->pid = (uint32_t)cpar__shm_get(p + 4, 4);
    e->addr = cpar__shm_get(p + 8, 8);
    e->len = cpar__shm_get(p + 16, 8);
}

int
cpar_shm_table_decode(const uint8_t *buf, size_t len, size_t nframes, cpar_shm_entry *seal,
                      cpar_shm_entry *out, size_t max, size_t *n)
{
    size_t count;
    *n = 0;
    if (nframes < 2 || len < 2 * CPAR_SHM_ENTRY_SIZE || len % CPAR_SHM_ENTRY_SIZE != 0)
        return CPAR_EPROTO;
    count = len / CPAR_SHM_ENTRY_SIZE - 1;
    if (count > nframes - 1 || count > max)
        return CPAR_EPROTO;
    cpar__shm_entry_decode(buf, seal);
    if (seal->index != CPAR_SHM_SEAL_INDEX || seal->pid == 0 || seal->addr == 0 ||
        seal->addr % 8 != 0 || seal->len == 0)
        return CPAR_EPROTO;
    for (size_t i = 0; i < count; i++) {
        cpar_shm_entry e;
        cpar__shm_entry_decode(buf + (i + 1) * CPAR_SHM_ENTRY_SIZE, &e);
        if (e.index >= nframes - 1 || e.len == 0 || e.len > CPAR_SHM_MAX_LEN ||
            e.pid != seal->pid || e.addr == 0 || e.addr + e.len < e.addr)
            return CPAR_EPROTO;
        if (i > 0 && e.index <= out[i - 1].index) /* sorted, no index twice */
            return CPAR_EPROTO;
        out[i] = e;
    }
    *n = count;
    return CPAR_OK;
}

/* ---- enablement and locality ------------------------------------------------------------ */

/* -1 until checked, then 0 or 1. Two threads checking at once get the same answer. */
static atomic_int cpar__shm_ok = -1;

static int cpar__shm_read_line(const char *path, char *out, size_t outlen);

static int
cpar__shm_check(void)
{
    const char *env = getenv("CPAR_SHM");
    char src[64] = "cpar process_vm_readv self-test", dst[64] = "", scope[8];
    struct iovec local = {dst, sizeof(src)}, remote = {src, sizeof(src)};

    if (env != NULL && strcmp(env, "0") == 0)
        return 0;
    /* Yama mode 1: a peer that is not our ancestor may read us only if we say so. Modes
     * 2 and 3 forbid it whatever we say: the probes find that out and fall back. */
    if (cpar__shm_read_line("/proc/sys/kernel/yama/ptrace_scope", scope, sizeof(scope)) == 0 &&
        strcmp(scope, "1") == 0)
        prctl(PR_SET_PTRACER, PR_SET_PTRACER_ANY, 0, 0, 0);
    if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != (ssize_t)sizeof(src))
        return 0;
    return memcmp(src, dst, sizeof(src)) == 0;
}

int
cpar_shm_enabled(void)
{
    int ok = atomic_load(&cpar__shm_ok);
    if (ok < 0) {
        ok = cpar__shm_check();
        atomic_store(&cpar__shm_ok, ok);
    }
    return ok;
}

/* Reads the first line of a small file into out; returns 0 or -1. */
static int
cpar__shm_read_line(const char *path, char *out, size_t outlen)
{
    FILE *f = fopen(path, "r");
    size_t n;
    if (f == NULL)
        return -1;
    n = fread(out, 1, outlen - 1, f);
    fclose(f);
    out[n] = '\0';
    out[strcspn(out, "\r\n")] = '\0';
    return out[0] ? 0 : -1;
}

int
cpar_shm_token(char *out, size_t outlen)
{
    char boot[64], ns[64] = "?", host[128] = "";
    ssize_t r;
    int len;

    if (cpar__shm_read_line("/proc/sys/kernel/random/boot_id", boot, sizeof(boot)) != 0)
        return CPAR_EIO;
    r = readlink("/proc/self/ns/pid", ns, sizeof(ns) - 1);
    ns[r > 0 ? r : 1] = '\0';
    gethostname(host, sizeof(host) - 1);
    len = snprintf(out, outlen, "%s/%s/%u/%s", boot, ns, (unsigned)getuid(), host);
    if (len < 0 || (size_t)len >= outlen)
        return CPAR_EIO;
    for (char *p = out; *p; p++) /* one printable word */
        if (*p <= ' ' || *p > '~')
            *p = '?';
    return CPAR_OK;
}

/* ---- probes ----------------------------------------------------------------------------- */

void
cpar_shm_probe_fill(uint8_t out[CPAR_SHM_PROBE_SIZE])
{
    for (size_t i = 0; i < CPAR_SHM_PROBE_SIZE; i++)
        out[i] = (uint8_t)(0xA5 ^ (i * 29));
}

int
cpar_shm_probe_check(const zmq_msg_t *f)
{
    uint8_t want[CPAR_SHM_PROBE_SIZE];
    cpar_shm_probe_fill(want);
    return zmq_msg_size((zmq_msg_t *)f) == CPAR_SHM_PROBE_SIZE &&
           memcmp(zmq_msg_data((zmq_msg_t *)f), want, CPAR_SHM_PROBE_SIZE) == 0;
}

uint32_t
cpar_shm_sender_pid(const cpar_msg *m)
{
    zmq_msg_t *table;
    const uint8_t *p;

    if (!(m->h.flags & CPAR_FLAG_SHM) || m->nframes < 2)
        return 0;
    table = &m->frames[m->nframes - 1];
    if (zmq_msg_size(table) < CPAR_SHM_ENTRY_SIZE)
        return 0;
    p = zmq_msg_data(table);
    if (cpar__shm_get(p, 4) != CPAR_SHM_SEAL_INDEX)
        return 0;
    return (uint32_t)cpar__shm_get(p + 4, 4);
}

uint64_t
cpar_shm_described_bytes(const cpar_msg *m)
{
    zmq_msg_t *table;
    const uint8_t *p;
    size_t len;
    uint64_t total = 0;

    if (!(m->h.flags & CPAR_FLAG_SHM) || m->nframes < 2)
        return 0;
    table = &m->frames[m->nframes - 1];
    len = zmq_msg_size(table);
    if (len < 2 * CPAR_SHM_ENTRY_SIZE || len % CPAR_SHM_ENTRY_SIZE != 0)
        return 0;
    p = zmq_msg_data(table);
    for (size_t off = CPAR_SHM_ENTRY_SIZE; off < len; off += CPAR_SHM_ENTRY_SIZE) {
        uint64_t n = cpar__shm_get(p + off + 16, 8);
        if (n > CPAR_SHM_MAX_LEN)
            return 0;
        total += n;
    }
    return total;
}

/* ---- sender ----------------------------------------------------------------------------- */

int
cpar_shm_offload(cpar_msg *m, size_t first, size_t min_size, zmq_msg_t **pinned, size_t *npinned,
                 cpar_shm_seal *seal)
{
    size_t count = 0, k = 1;
    zmq_msg_t *pins = NULL;
    uint8_t *table = NULL;
    int rc = CPAR_ENOMEM;
    uint32_t pid = (uint32_t)getpid();

    *pinned = NULL;
    *npinned = 0;
    seal->slot = NULL;
    seal->value = 0;
    /* Tiny frames live inside their zmq_msg_t (their address moves with it): never those. */
    if (min_size < 64)
        min_size = 64;
    for (size_t i = first; i < m->nframes; i++)
        if (zmq_msg_size(&m->frames[i]) >= min_size && zmq_msg_size(&m->frames[i]) > 0)
            count++;
    if (count == 0)
        return 0;
    if (m->nframes + 1 > CPAR_WIRE_MAX_FRAMES)
        return 0; /* no room for the table: the bytes go over the wire */
    pins = malloc(count * sizeof(zmq_msg_t));
    table = malloc((count + 1) * CPAR_SHM_ENTRY_SIZE);
    if (pins == NULL || table == NULL || cpar_shm_seal_new(seal) != 0)
        goto error;
    {
        cpar_shm_entry se = {CPAR_SHM_SEAL_INDEX, pid, (uint64_t)(uintptr_t)seal->slot,
                             seal->value};
        cpar_shm_entry_encode(&se, table);
    }
    for (size_t i = first; i < m->nframes; i++) {
        zmq_msg_t *f = &m->frames[i];
        cpar_shm_entry e;
        if (zmq_msg_size(f) < min_size || zmq_msg_size(f) == 0)
            continue;
        e.index = (uint32_t)i;
        e.pid = pid;
        e.addr = (uint64_t)(uintptr_t)zmq_msg_data(f);
        e.len = zmq_msg_size(f);
        cpar_shm_entry_encode(&e, table + k * CPAR_SHM_ENTRY_SIZE);
        k++;
    }
    /* Only now change m: the table frame goes in first, so a failure leaves m as it was. */
    rc = cpar_msg_add_copy(m, table, (count + 1) * CPAR_SHM_ENTRY_SIZE);
    if (rc != 0)
        goto error;
    k = 0;
    for (size_t i = first; i + 1 < m->nframes; i++) {
        zmq_msg_t *f = &m->frames[i];
        if (zmq_msg_size(f) < min_size || zmq_msg_size(f) == 0)
            continue;
        zmq_msg_init(&pins[k]);
        zmq_msg_move(&pins[k], f); /* leaves f empty: the placeholder */
        k++;
    }
    free(table);
    m->h.flags |= CPAR_FLAG_SHM;
    *pinned = pins;
    *npinned = count;
    return (int)count;
error:
    cpar_shm_seal_break(seal);
    free(pins);
    free(table);
    return rc;
}

/* ---- receiver --------------------------------------------------------------------------- */

/* libzmq's free function for resolved frames: hint is the mapping's size, which goes back
 * to the page pool. */
static void
cpar__shm_unmap(void *data, void *hint)
{
    cpar_pagepool_put(data, (size_t)(uintptr_t)hint);
}

/* One stretch of a read: [off, off + len) of the frame, from pid's memory at remote into
 * local; on failure `done` is how far it got and `saved` the errno. */
typedef struct {
    pid_t pid;
    char *local;
    uint64_t remote;
    size_t len, done;
    int saved;
} cpar__shm_part;

static void *
cpar__shm_copy(void *arg)
{
    cpar__shm_part *p = arg;
    while (p->done < p->len) {
        size_t want = p->len - p->done < CPAR__SHM_CHUNK ? p->len - p->done : CPAR__SHM_CHUNK;
        struct iovec local = {p->local + p->done, want};
        struct iovec remote = {(void *)(uintptr_t)(p->remote + p->done), want};
        ssize_t got = process_vm_readv(p->pid, &local, 1, &remote, 1, 0);
        if (got <= 0) {
            p->saved = got < 0 ? errno : EFAULT;
            break;
        }
        p->done += (size_t)got;
    }
    return NULL;
}

/* Reads one described frame into pages of this process (the page pool's: present when
 * reused); on success *f is a frame owning them. A frame of CPAR__SHM_SPLIT bytes or more
 * is read by a second thread and this one, half each (serially when the thread cannot be
 * made or there is one core). */
static int
cpar__shm_read(const cpar_shm_entry *e, zmq_msg_t *f, char *err, size_t errlen)
{
    size_t len = (size_t)e->len, size = 0, half = 0;
    cpar__shm_part parts[2];
    pthread_t helper;
    int split = 0;
    void *mem;

    mem = cpar_pagepool_get(len, &size);
    if (mem == NULL) {
        snprintf(err, errlen, "cannot map %zu bytes for a shared-memory frame: %s", len,
                 strerror(errno));
        return CPAR_ENOMEM;
    }
    /* Huge pages: one fault per 2 MiB instead of per 4 KiB (DESIGN §4, page-fault cost). */
    if (len >= CPAR__SHM_HUGE)
        madvise(mem, len, MADV_HUGEPAGE);
    if (len >= CPAR__SHM_SPLIT && sysconf(_SC_NPROCESSORS_ONLN) > 1)
        half = len / 2 / CPAR__SHM_HUGE * CPAR__SHM_HUGE; /* on a huge-page boundary */
    parts[0] = (cpar__shm_part){(pid_t)e->pid, mem, e->addr, half ? half : len, 0, 0};
    parts[1] =
        (cpar__shm_part){(pid_t)e->pid, (char *)mem + half, e->addr + half, len - half, 0, 0};
    if (half)
        split = pthread_create(&helper, NULL, cpar__shm_copy, &parts[1]) == 0;
    cpar__shm_copy(&parts[0]);
    if (split)
        pthread_join(helper, NULL);
    else if (half)
        cpar__shm_copy(&parts[1]);
    for (int i = 0; i < (half ? 2 : 1); i++) {
        if (parts[i].done == parts[i].len)
            continue;
        snprintf(err, errlen,
                 "shared-memory read of %zu bytes from pid %u failed after %zu bytes: "
                 "process_vm_readv: %s%s",
                 len, (unsigned)e->pid, (size_t)(i ? half : 0) + parts[i].done,
                 strerror(parts[i].saved),
                 parts[i].saved == ESRCH ? " (the sending process is gone)" : "");
        cpar_pagepool_put(mem, size);
        return parts[i].saved == EPERM ? CPAR_EPERM : CPAR_EIO;
    }
    if (zmq_msg_init_data(f, mem, len, cpar__shm_unmap, (void *)(uintptr_t)size) != 0) {
        snprintf(err, errlen, "zmq_msg_init_data failed");
        cpar_pagepool_put(mem, size);
        return CPAR_ENOMEM;
    }
    return CPAR_OK;
}

/* Checks that the sender's seal still holds its value (the guarded bytes are pinned).
 * Returns 0, CPAR_ESTALE, or CPAR_EPERM/CPAR_EIO when the slot cannot be read. */
static int
cpar__shm_seal_check(const cpar_shm_entry *seal, char *err, size_t errlen)
{
    uint64_t now = 0;
    struct iovec local = {&now, sizeof(now)};
    struct iovec remote = {(void *)(uintptr_t)seal->addr, sizeof(now)};
    ssize_t got;

    atomic_thread_fence(memory_order_seq_cst); /* the copy before, this read after */
    got = process_vm_readv((pid_t)seal->pid, &local, 1, &remote, 1, 0);
    if (got != (ssize_t)sizeof(now)) {
        int saved = got < 0 ? errno : EFAULT;
        snprintf(err, errlen,
                 "cannot read the shared-memory seal of pid %u: process_vm_readv: %s%s",
                 (unsigned)seal->pid, strerror(saved),
                 saved == ESRCH ? " (the sending process is gone)" : "");
        return saved == EPERM ? CPAR_EPERM : saved == ESRCH ? CPAR_ESTALE : CPAR_EIO;
    }
    if (now != seal->len) {
        snprintf(err, errlen,
                 "pid %u released the shared-memory data before it was read (it closed, lost "
                 "its connection or stopped waiting); nothing was read",
                 (unsigned)seal->pid);
        return CPAR_ESTALE;
    }
    return CPAR_OK;
}

int
cpar_shm_resolve(cpar_msg *m, uint32_t pid, char *err, size_t errlen)
{
    cpar_shm_entry seal, *entries = NULL;
    zmq_msg_t *table;
    size_t n = 0, max;
    int rc;

    if (!(m->h.flags & CPAR_FLAG_SHM))
        return CPAR_OK;
    if (m->nframes < 2) {
        snprintf(err, errlen, "shared-memory message without a descriptor table");
        return CPAR_EPROTO;
    }
    table = &m->frames[m->nframes - 1];
    max = zmq_msg_size(table) / CPAR_SHM_ENTRY_SIZE;
    entries = malloc((max ? max : 1) * sizeof(*entries));
    if (entries == NULL) {
        snprintf(err, errlen, "out of memory");
        return CPAR_ENOMEM;
    }
    rc = cpar_shm_table_decode(zmq_msg_data(table), zmq_msg_size(table), m->nframes, &seal, entries,
                               max, &n);
    if (rc != 0) {
        snprintf(err, errlen, "malformed shared-memory descriptor table (%zu bytes)",
                 zmq_msg_size(table));
        goto error;
    }
    if (pid != 0 && seal.pid != pid) {
        snprintf(err, errlen, "shared-memory descriptors name pid %u, not the sender (pid %u)",
                 (unsigned)seal.pid, (unsigned)pid);
        rc = CPAR_EPROTO;
        goto error;
    }
    for (size_t i = 0; i < n; i++)
        if (zmq_msg_size(&m->frames[entries[i].index]) != 0) {
            snprintf(err, errlen, "shared-memory placeholder frame %u is not empty",
                     (unsigned)entries[i].index);
            rc = CPAR_EPROTO;
            goto error;
        }
    /* Seal, bytes, seal: a broken seal before means nothing to read, after means the bytes
     * may be the reuser's, so they are dropped (closing m closes what was read). */
    rc = cpar__shm_seal_check(&seal, err, errlen);
    if (rc != 0)
        goto error;
    for (size_t i = 0; i < n; i++) {
        zmq_msg_t f;
        rc = cpar__shm_read(&entries[i], &f, err, errlen);
        if (rc != 0)
            goto error;
        zmq_msg_close(&m->frames[entries[i].index]);
        zmq_msg_init(&m->frames[entries[i].index]);
        zmq_msg_move(&m->frames[entries[i].index], &f);
        zmq_msg_close(&f);
    }
    rc = cpar__shm_seal_check(&seal, err, errlen);
    if (rc != 0)
        goto error;
    zmq_msg_close(table);
    m->nframes--;
    m->h.flags &= (uint16_t)~CPAR_FLAG_SHM;
    free(entries);
    return CPAR_OK;
error:
    free(entries);
    return rc;
}

/* ---- pin sets --------------------------------------------------------------------------- */

void
cpar_shm_pins_init(cpar_shm_pins *p)
{
    memset(p, 0, sizeof(*p));
}

static void
cpar__shm_pin_close(cpar_shm_pin *pin)
{
    cpar_shm_seal_break(&pin->seal); /* first: no reader may take the bytes from now on */
    for (size_t i = 0; i < pin->nframes; i++)
        zmq_msg_close(&pin->frames[i]);
    free(pin->frames);
    free(pin->wait);
}

int
cpar_shm_pins_add(cpar_shm_pins *p, const uint8_t id[CPAR_WIRE_ID_SIZE], zmq_msg_t *frames,
                  size_t nframes, cpar_shm_seal *seal, const int32_t *wait, size_t nwait)
{
    cpar_shm_pin pin, *nv;

    memset(&pin, 0, sizeof(pin));
    pin.frames = frames;
    pin.nframes = nframes;
    pin.seal = *seal; /* moved: the pin breaks it */
    seal->slot = NULL;
    nv = cpar_vec_grow(p->v, &p->cap, p->n + 1, sizeof(*nv), 8);
    if (nv == NULL)
        goto error;
    p->v = nv;
    if (nwait > 0) {
        pin.wait = malloc(nwait * sizeof(int32_t));
        if (pin.wait == NULL)
            goto error;
        memcpy(pin.wait, wait, nwait * sizeof(int32_t));
        pin.nwait = nwait;
    }
    memcpy(pin.id, id, CPAR_WIRE_ID_SIZE);
    pin.created_ns = cpar_mono_ns();
    p->v[p->n++] = pin;
    p->frames += nframes;
    return CPAR_OK;
error:
    cpar__shm_pin_close(&pin);
    return CPAR_ENOMEM;
}

static size_t
cpar__shm_pins_drop(cpar_shm_pins *p, size_t i)
{
    size_t n = p->v[i].nframes;
    cpar__shm_pin_close(&p->v[i]);
    p->v[i] = p->v[--p->n];
    p->frames -= n;
    return n;
}

size_t
cpar_shm_pins_answered(cpar_shm_pins *p, const uint8_t id[CPAR_WIRE_ID_SIZE], int32_t engine)
{
    for (size_t i = 0; i < p->n; i++) {
        cpar_shm_pin *pin = &p->v[i];
        if (memcmp(pin->id, id, CPAR_WIRE_ID_SIZE) != 0)
            continue;
        if (engine < 0) {
            pin->nwait = 0;
        } else {
            for (size_t j = 0; j < pin->nwait; j++)
                if (pin->wait[j] == engine) {
                    pin->wait[j] = pin->wait[--pin->nwait];
                    break;
                }
        }
        return pin->nwait == 0 ? cpar__shm_pins_drop(p, i) : 0;
    }
    return 0;
}

size_t
cpar_shm_pins_expire(cpar_shm_pins *p, uint64_t before_ns)
{
    size_t released = 0;
    for (size_t i = p->n; i-- > 0;)
        if (before_ns == 0 || p->v[i].created_ns < before_ns)
            released += cpar__shm_pins_drop(p, i);
    return released;
}

void
cpar_shm_pins_free(cpar_shm_pins *p)
{
    cpar_shm_pins_expire(p, 0);
    free(p->v);
    cpar_shm_pins_init(p);
}
