/* The controller's engine and client tables (registry.h). */
#include "registry.h"

#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "vec.h"

void
cpar_registry_init(cpar_registry *r)
{
    memset(r, 0, sizeof(*r));
    cpar_idmap_init(&r->engine_ids);
    cpar_idmap_init(&r->client_ids);
}

void
cpar_registry_free(cpar_registry *r)
{
    for (size_t i = 0; i < r->nengines; i++) {
        free(r->engines[i].ident);
        free(r->engines[i].host);
        free(r->engines[i].shm);
    }
    for (size_t i = 0; i < r->nclients; i++)
        free(r->clients[i].ident);
    free(r->engines);
    free(r->clients);
    free(r->fd_engine);
    free(r->fd_client);
    cpar_idmap_free(&r->engine_ids);
    cpar_idmap_free(&r->client_ids);
    memset(r, 0, sizeof(*r));
}

cpar_reg_engine *
cpar_registry_engine(cpar_registry *r, int32_t id)
{
    cpar_reg_engine *e;
    if (id < 0 || (size_t)id >= r->nengines)
        return NULL;
    e = &r->engines[id];
    return (e->state == CPAR_ENGINE_LIVE || e->state == CPAR_ENGINE_STOPPING) ? e : NULL;
}

int
cpar_registry_engine_live(const cpar_registry *r, int32_t id)
{
    return id >= 0 && (size_t)id < r->nengines && r->engines[id].state == CPAR_ENGINE_LIVE;
}

int32_t
cpar_registry_engine_by_ident(const cpar_registry *r, const void *ident, size_t len)
{
    int32_t id;
    return cpar_idmap_get(&r->engine_ids, ident, len, &id) ? id : -1;
}

int32_t
cpar_registry_engine_by_fd(const cpar_registry *r, int fd)
{
    if (fd < 0 || (size_t)fd >= r->nfd)
        return -1;
    return r->fd_engine[fd];
}

int32_t
cpar_registry_pick_id(cpar_registry *r, int32_t requested)
{
    int32_t id;
    if (requested >= 0) {
        if (requested > CPAR_REGISTRY_MAX_REQUESTED_ID || cpar_registry_engine(r, requested))
            return CPAR_EINVAL;
        return requested;
    }
    /* Automatic ids count up and skip every id ever used, so a new engine never inherits
     * a dead one's number (clients may still hold results tagged with it). */
    id = r->next_id;
    while ((size_t)id < r->nengines && r->engines[id].state != CPAR_ENGINE_FREE)
        id++;
    if (id > CPAR_REGISTRY_MAX_ID)
        return CPAR_EINVAL;
    return id;
}

static int
cpar__registry_grow_engines(cpar_registry *r, size_t need)
{
    size_t n = r->nengines ? r->nengines : 16;
    cpar_reg_engine *ne;
    while (n < need)
        n *= 2;
    if (n == r->nengines)
        return CPAR_OK;
    ne = realloc(r->engines, n * sizeof(*ne));
    if (ne == NULL)
        return CPAR_ENOMEM;
    memset(ne + r->nengines, 0, (n - r->nengines) * sizeof(*ne));
    r->engines = ne;
    r->nengines = n;
    return CPAR_OK;
}

/* Grows an fd-indexed map (*n entries, -1: none) to cover fd (>= 0). */
static int
cpar__registry_fd_cover(int32_t **map, size_t *n, int fd)
{
    size_t old = *n;
    int32_t *nm;
    if ((size_t)fd < old)
        return CPAR_OK;
    nm = cpar_vec_grow(*map, n, (size_t)fd + 1, sizeof(*nm), 64);
    if (nm == NULL)
        return CPAR_ENOMEM;
    for (size_t i = old; i < *n; i++)
        nm[i] = -1;
    *map = nm;
    return CPAR_OK;
}

static int
cpar__registry_map_fd(cpar_registry *r, int fd, int32_t id)
{
    if (fd < 0)
        return CPAR_OK;
    if (cpar__registry_fd_cover(&r->fd_engine, &r->nfd, fd) != 0)
        return CPAR_ENOMEM;
    r->fd_engine[fd] = id;
    return CPAR_OK;
}

int
cpar_registry_engine_add(cpar_registry *r, int32_t id, const void *ident, size_t identlen, int fd,
                         int32_t pid, const char *host, uint64_t now_ms)
{
    cpar_reg_engine *e;
    uint8_t *icopy = NULL;
    char *hcopy = NULL;
    int rc = CPAR_ENOMEM;

    if (cpar__registry_grow_engines(r, (size_t)id + 1) != 0)
        goto error;
    icopy = malloc(identlen ? identlen : 1);
    hcopy = strdup(host ? host : "?");
    if (icopy == NULL || hcopy == NULL)
        goto error;
    if (identlen)
        memcpy(icopy, ident, identlen);
    if (cpar_idmap_put(&r->engine_ids, ident, identlen, id) != 0)
        goto error;
    if (cpar__registry_map_fd(r, fd, id) != 0) {
        cpar_idmap_del(&r->engine_ids, ident, identlen);
        goto error;
    }
    e = &r->engines[id];
    free(e->ident);
    free(e->host);
    free(e->shm);
    e->shm = NULL; /* set by the caller when the engine offers one */
    e->state = CPAR_ENGINE_LIVE;
    e->pid = pid;
    e->fd = fd;
    e->unreachable = 0;
    e->last_seen_ms = now_ms;
    e->ident = icopy;
    e->identlen = identlen;
    e->host = hcopy;
    r->nlive++;
    if (id == r->next_id)
        r->next_id = id + 1;
    return CPAR_OK;
error:
    free(icopy);
    free(hcopy);
    return rc;
}

void
cpar_registry_engine_remove(cpar_registry *r, int32_t id)
{
    cpar_reg_engine *e = cpar_registry_engine(r, id);
    if (e == NULL)
        return;
    cpar_idmap_del(&r->engine_ids, e->ident, e->identlen);
    if (e->fd >= 0 && (size_t)e->fd < r->nfd && r->fd_engine[e->fd] == id)
        r->fd_engine[e->fd] = -1;
    free(e->ident);
    e->ident = NULL;
    e->identlen = 0;
    e->fd = -1;
    e->state = CPAR_ENGINE_GONE;
    r->nlive--;
}

int32_t
cpar_registry_client(cpar_registry *r, const void *ident, size_t len)
{
    int32_t slot;
    cpar_reg_client *cl;

    if (cpar_idmap_get(&r->client_ids, ident, len, &slot))
        return slot;
    if (r->nclients >= (size_t)INT32_MAX)
        return -1;
    if (r->nclients == r->capclients) {
        size_t n = r->capclients ? r->capclients * 2 : 16;
        cpar_reg_client *nc = realloc(r->clients, n * sizeof(*nc));
        if (nc == NULL)
            return -1;
        r->clients = nc;
        r->capclients = n;
    }
    cl = &r->clients[r->nclients];
    cl->ident = malloc(len ? len : 1);
    if (cl->ident == NULL)
        return -1;
    if (len)
        memcpy(cl->ident, ident, len);
    cl->identlen = len;
    cl->live = 1;
    cl->fd = -1;
    slot = (int32_t)r->nclients;
    if (cpar_idmap_put(&r->client_ids, ident, len, slot) != 0) {
        free(cl->ident);
        return -1;
    }
    r->nclients++;
    return slot;
}

cpar_reg_client *
cpar_registry_client_at(cpar_registry *r, uint32_t slot)
{
    if (slot >= r->nclients || !r->clients[slot].live)
        return NULL;
    return &r->clients[slot];
}

void
cpar_registry_client_remove(cpar_registry *r, uint32_t slot)
{
    cpar_reg_client *cl = cpar_registry_client_at(r, slot);
    if (cl == NULL)
        return;
    cpar_idmap_del(&r->client_ids, cl->ident, cl->identlen);
    if (cl->fd >= 0 && (size_t)cl->fd < r->nfd_client && r->fd_client[cl->fd] == (int32_t)slot)
        r->fd_client[cl->fd] = -1;
    free(cl->ident);
    cl->ident = NULL;
    cl->identlen = 0;
    cl->fd = -1;
    cl->live = 0;
}

int
cpar_registry_client_set_fd(cpar_registry *r, uint32_t slot, int fd)
{
    cpar_reg_client *cl = cpar_registry_client_at(r, slot);
    if (cl == NULL || fd < 0 || cl->fd == fd)
        return CPAR_OK;
    if (cpar__registry_fd_cover(&r->fd_client, &r->nfd_client, fd) != 0)
        return CPAR_ENOMEM;
    if (cl->fd >= 0 && (size_t)cl->fd < r->nfd_client && r->fd_client[cl->fd] == (int32_t)slot)
        r->fd_client[cl->fd] = -1;
    cl->fd = fd;
    r->fd_client[fd] = (int32_t)slot;
    return CPAR_OK;
}

int32_t
cpar_registry_client_by_fd(const cpar_registry *r, int fd)
{
    if (fd < 0 || (size_t)fd >= r->nfd_client)
        return -1;
    return r->fd_client[fd];
}
