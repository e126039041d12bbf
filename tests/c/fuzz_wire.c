/* Fuzz target of the wire decoder (cpar_wire_parse, cpar_wire_header_decode, target lists).
 *
 * Input: byte 0 holds options (bit 0: recompute the tag with the fixed key, bit 1: set the
 * header's nframes and paylen to what follows, so mutations get past those checks); then
 * frames as [uint16 little-endian length][bytes], the first being the header frame; a
 * truncated last frame keeps what is there. Built with -fsanitize=fuzzer (and
 * -DCPAR_LIBFUZZER) it is a libFuzzer target; otherwise its main replays files and
 * directories given as arguments (tests/c/corpus/wire), checking that files named "ok-*"
 * parse and "bad-*" are rejected, then runs a bounded number of random mutations of each
 * file through the decoder (CPAR_FUZZ_MUTATIONS per file, default 300), so a build
 * without libFuzzer still explores a little around the seeds. */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "sign.h"
#include "wire.h"

#define FUZZ_KEY "5f3c9a1e0b7d4c2a8e6f1d3b5a7c9e0f2a4b6c8d0e1f3a5b7c9d1e3f5a7b9c0d"
#define FUZZ_MAX_PARTS (CPAR_WIRE_MAX_FRAMES + 4)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static cpar_signer *
fuzz_signer(void)
{
    static cpar_signer *s;
    if (s == NULL && cpar_signer_new((const uint8_t *)FUZZ_KEY, strlen(FUZZ_KEY), &s) != 0)
        abort();
    return s;
}

static void
put_le(uint8_t *p, uint64_t v, int n)
{
    for (int i = 0; i < n; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Parses one input; returns cpar_wire_parse's code (or CPAR_EPROTO for no frames). */
static int
fuzz_one(const uint8_t *data, size_t size)
{
    static zmq_msg_t parts[FUZZ_MAX_PARTS];
    cpar_signer *s = fuzz_signer();
    size_t n = 0, pos = 1;
    uint8_t opts;
    cpar_msg m;
    cpar_header h;
    int rc;

    if (size == 0)
        return CPAR_EPROTO;
    opts = data[0];
    while (pos < size && n < FUZZ_MAX_PARTS) {
        size_t len = data[pos];
        if (pos + 1 < size)
            len |= (size_t)data[pos + 1] << 8;
        pos += 2;
        if (pos > size)
            pos = size;
        if (len > size - pos)
            len = size - pos;
        zmq_msg_init_size(&parts[n], len);
        if (len)
            memcpy(zmq_msg_data(&parts[n]), data + pos, len);
        pos += len;
        n++;
    }
    if (n > 0) {
        uint8_t *hdr = zmq_msg_data(&parts[0]);
        size_t hlen = zmq_msg_size(&parts[0]);
        (void)cpar_wire_header_decode(hdr, hlen, &h);
        if (hlen == CPAR_WIRE_HEADER_SIZE && (opts & 2)) {
            uint64_t paylen = 0;
            for (size_t i = 1; i < n; i++)
                paylen += zmq_msg_size(&parts[i]);
            put_le(hdr + 8, n - 1, 4);
            put_le(hdr + 72, paylen, 8);
        }
        if (hlen == CPAR_WIRE_HEADER_SIZE && (opts & 1)) {
            cpar_signer_begin(s);
            cpar_signer_update(s, hdr, CPAR_WIRE_SIGNED_SIZE);
            for (size_t i = 1; i < n; i++)
                cpar_signer_update(s, zmq_msg_data(&parts[i]), zmq_msg_size(&parts[i]));
            cpar_signer_finish(s, hdr + CPAR_WIRE_SIGNED_SIZE);
        }
    }
    rc = cpar_wire_parse(s, parts, n, &m);
    if (rc == 0) {
        if (m.h.flags & CPAR_FLAG_TARGETED) {
            int t = cpar_wire_targets(&m);
            int64_t sum = 0;
            for (int i = 0; i < t; i++)
                sum += cpar_wire_target_at(&m, (size_t)i);
            (void)sum;
        }
        if (m.nframes != m.h.nframes)
            abort();
    }
    cpar_msg_close(&m);
    return rc;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_one(data, size);
    return 0;
}

#ifndef CPAR_LIBFUZZER
static int passed, failed;
static long mutations_per_file = 300;
static unsigned long long mutated;
static uint64_t rng_state = 0x243f6a8885a308d3ULL;

static uint64_t
rng(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Feeds random variants of data to the decoder: flipped bits, overwritten bytes,
 * truncation, inserted or removed bytes, toggled options. Only crashes matter here. */
static void
mutate_file(const uint8_t *data, size_t len)
{
    uint8_t *buf = malloc(len + 64);
    if (buf == NULL)
        abort();
    for (long k = 0; k < mutations_per_file; k++) {
        size_t n = len;
        int edits = 1 + (int)(rng() % 4);
        memcpy(buf, data, len);
        for (int e = 0; e < edits && n > 0; e++) {
            size_t at = (size_t)(rng() % n);
            switch (rng() % 6) {
            case 0:
                buf[at] ^= (uint8_t)(1u << (rng() % 8));
                break;
            case 1:
                buf[at] = (uint8_t)rng();
                break;
            case 2:
                n = at;
                break;
            case 3:
                if (n < len + 64) {
                    memmove(buf + at + 1, buf + at, n - at);
                    buf[at] = (uint8_t)rng();
                    n++;
                }
                break;
            case 4:
                memmove(buf + at, buf + at + 1, n - at - 1);
                n--;
                break;
            default:
                buf[0] = (uint8_t)(rng() % 4);
                break;
            }
        }
        fuzz_one(buf, n);
        mutated++;
    }
    free(buf);
}

static void
replay_file(const char *path, const char *name)
{
    FILE *f = fopen(path, "rb");
    uint8_t *buf = NULL;
    long len;
    int rc;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (buf = malloc((size_t)len + 1)) == NULL ||
        fread(buf, 1, (size_t)len, f) != (size_t)len) {
        printf("not ok - %s (cannot read)\n", path);
        failed++;
        goto done;
    }
    rc = fuzz_one(buf, (size_t)len);
    mutate_file(buf, (size_t)len);
    if ((strncmp(name, "ok-", 3) == 0 && rc != 0) || (strncmp(name, "bad-", 4) == 0 && rc == 0)) {
        printf("not ok - %s (parse returned %d: %s)\n", path, rc, cpar_strerror(rc));
        failed++;
    } else {
        passed++;
    }
done:
    free(buf);
    if (f)
        fclose(f);
}

static int
by_name(const struct dirent **a, const struct dirent **b)
{
    return strcmp((*a)->d_name, (*b)->d_name);
}

int
main(int argc, char **argv)
{
    const char *def[] = {argv[0], "tests/c/corpus/wire"};
    const char *env = getenv("CPAR_FUZZ_MUTATIONS");
    if (env)
        mutations_per_file = strtol(env, NULL, 10);
    if (argc < 2) {
        argc = 2;
        argv = (char **)def;
    }
    for (int i = 1; i < argc; i++) {
        struct dirent **ents;
        int n = scandir(argv[i], &ents, NULL, by_name);
        if (n < 0) {
            const char *slash = strrchr(argv[i], '/');
            replay_file(argv[i], slash ? slash + 1 : argv[i]);
            continue;
        }
        for (int k = 0; k < n; k++) {
            char path[4096];
            if (ents[k]->d_name[0] != '.') {
                snprintf(path, sizeof(path), "%s/%s", argv[i], ents[k]->d_name);
                replay_file(path, ents[k]->d_name);
            }
            free(ents[k]);
        }
        free(ents);
    }
    cpar_signer_free(fuzz_signer());
    printf("%llu mutated inputs decoded without a crash\n", mutated);
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
#endif
