/* DB_REQUEST bodies for the controller fuzzer (fuzzdb.h). Test code. */
#include "fuzzdb.h"

#include <stdio.h>
#include <string.h>

#include "fuzzkit.h"

/* Appends a quoted id: a picked one, sometimes a part id or a string with a NUL and SQL. */
static void
fzdb_id(const fzdb_src *src, char *out, size_t cap)
{
    uint8_t id[16];
    size_t n = strlen(out);
    src->pick_id(src->arg, id);
    if (n + 48 >= cap)
        return;
    out[n++] = '"';
    for (int i = 0; i < 16; i++)
        n += (size_t)snprintf(out + n, cap - n, "%02x", id[i]);
    if (fk_chance(src->rng, 20))
        n += (size_t)snprintf(out + n, cap - n, ":%d", (int)src->pick_engine(src->arg));
    else if (fk_chance(src->rng, 5))
        n += (size_t)snprintf(out + n, cap - n, "\\u0000'); --");
    snprintf(out + n, cap - n, "\"");
}

/* Appends s when it fits. */
static void
fzdb_cat(char *out, size_t cap, const char *s)
{
    size_t n = strlen(out);
    if (n + strlen(s) < cap)
        memcpy(out + n, s, strlen(s) + 1);
}

int
fzdb_body(const fzdb_src *src, char *out, size_t cap)
{
    static const char *const keys[] = {"msg_id",  "status", "engine_id",    "label", "seq",
                                       "targets", "stdout", "request_kept", "nope",  "seq;"};
    static const char *const ops[] = {"$lt", "$gt", "$lte", "$gte",    "$eq",
                                      "$ne", "$in", "$nin", "$exists", "$where"};
    static const char *const vals[] = {"1",  "null", "true", "\"ok\"",          "[1, null, \"x\"]",
                                       "[]", "{}",   "-3.5", "\"x' OR 1=1 --\""};
    static const char *const names[] = {"get", "purge", "label", "resubmit"};
    int k = (int)fk_below(src->rng, 8);
    size_t nids = fk_below(src->rng, 4);
    out[0] = '\0';
    if (k == 0) {
        snprintf(out, cap, "{\"op\": \"query\", \"query\": {\"%s\": {\"%s\": %s}}, \"keys\": %s}",
                 keys[fk_below(src->rng, 10)], ops[fk_below(src->rng, 10)],
                 vals[fk_below(src->rng, 9)], fk_chance(src->rng, 50) ? "null" : "[\"status\"]");
    } else if (k == 1) {
        snprintf(out, cap, "{\"op\": \"history\"}");
    } else if (k <= 5) {
        snprintf(out, cap, "{\"op\": \"%s\", \"label\": \"L\", \"msg_ids\": [", names[k - 2]);
        for (size_t i = 0; i < nids; i++) {
            if (i)
                fzdb_cat(out, cap, ", ");
            fzdb_id(src, out, cap);
        }
        fzdb_cat(out, cap, "], \"new_ids\": [");
        for (size_t i = 0; i < nids + (fk_chance(src->rng, 10) ? 1 : 0); i++) {
            if (i)
                fzdb_cat(out, cap, ", ");
            fzdb_id(src, out, cap);
        }
        fzdb_cat(out, cap, fk_chance(src->rng, 30) ? "], \"engines\": [0, 1, 2]}" : "]}");
        if (k == 3 && fk_chance(src->rng, 30))
            snprintf(out, cap, "{\"op\": \"purge\", \"msg_ids\": \"all\"}");
    } else if (k == 6) {
        return 1;
    } else {
        snprintf(out, cap, "%s", fk_chance(src->rng, 50) ? "{\"op\": 3}" : "[\"op\", \"history\"]");
    }
    return 0;
}
