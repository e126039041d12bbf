/* The floor under cpar's numbers: raw libzmq and memcpy on this machine, no Python.
 *
 * Three processes, as in cpar: a client DEALER, a relay with two ROUTERs (the
 * controller's place) and a worker DEALER (an engine's place), over TCP on 127.0.0.1.
 * Measures the round trip of a small message client -> relay -> worker -> relay ->
 * client, the message rate through the relay with a window of messages in flight, the
 * bandwidth of one large message client -> worker (acknowledged), memcpy bandwidth, and
 * the bandwidth of a first write to fresh pages (what a cold transfer's receiver pays),
 * and the context switches and CPU time of the three processes per round trip (every
 * thread's going to sleep or being preempted: the wake-ups a round trip costs, and what
 * running them costs). Prints one JSON object on stdout.
 *
 *     floor [--batches 5] [--roundtrips 2000] [--messages 200000] [--big-mb 100]
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#define FRONT "tcp://127.0.0.1:%d"
#define MAX_BATCHES 64

static void
die(const char *what)
{
    fprintf(stderr, "floor: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

static double
now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* Binds `sock` to a free port on 127.0.0.1 and returns the port. */
static int
bind_any(void *sock)
{
    char ep[64];
    size_t len = sizeof ep;
    if (zmq_bind(sock, "tcp://127.0.0.1:*") != 0)
        die("bind");
    if (zmq_getsockopt(sock, ZMQ_LAST_ENDPOINT, ep, &len) != 0)
        die("getsockopt");
    return atoi(strrchr(ep, ':') + 1);
}

static void
set_unlimited(void *sock)
{
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_SNDHWM, &zero, sizeof zero);
    zmq_setsockopt(sock, ZMQ_RCVHWM, &zero, sizeof zero);
}

/* Moves every frame of one multipart message from `from` to `to`. */
static void
forward(void *from, void *to, const void *prefix, size_t prefix_len)
{
    zmq_msg_t m;
    int more = 1;
    if (prefix && zmq_send(to, prefix, prefix_len, ZMQ_SNDMORE) < 0)
        die("relay send");
    while (more) {
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, from, 0) < 0)
            die("relay recv");
        more = zmq_msg_more(&m);
        if (zmq_msg_send(&m, to, more ? ZMQ_SNDMORE : 0) < 0)
            die("relay send");
    }
}

/* The relay: client frames [client_id, body] go out as [worker_id, client_id, body];
 * worker frames [worker_id, client_id, body] go back as [client_id, body]. */
static void
relay(int front_port_fd, int back_port_fd)
{
    void *ctx = zmq_ctx_new();
    void *front = zmq_socket(ctx, ZMQ_ROUTER), *back = zmq_socket(ctx, ZMQ_ROUTER);
    set_unlimited(front);
    set_unlimited(back);
    int ports[2] = {bind_any(front), bind_any(back)};
    if (write(front_port_fd, &ports[0], sizeof(int)) < 0 ||
        write(back_port_fd, &ports[1], sizeof(int)) < 0)
        exit(1);
    zmq_pollitem_t items[2] = {{front, 0, ZMQ_POLLIN, 0}, {back, 0, ZMQ_POLLIN, 0}};
    for (;;) {
        if (zmq_poll(items, 2, -1) < 0)
            die("poll");
        if (items[0].revents & ZMQ_POLLIN)
            forward(front, back, "worker", 6);
        if (items[1].revents & ZMQ_POLLIN) {
            char id[256];
            if (zmq_recv(back, id, sizeof id, 0) < 0) /* the worker's identity: dropped */
                die("relay recv");
            forward(back, front, NULL, 0);
        }
    }
}

/* The worker: echoes small messages; answers a large one with a 1-byte ack. */
static void
worker(int back_port)
{
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    char ep[64];
    set_unlimited(sock);
    zmq_setsockopt(sock, ZMQ_ROUTING_ID, "worker", 6);
    snprintf(ep, sizeof ep, FRONT, back_port);
    if (zmq_connect(sock, ep) != 0)
        die("connect");
    for (;;) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, sock, 0) < 0 || zmq_msg_recv(&body, sock, 0) < 0)
            die("worker recv");
        if (zmq_msg_size(&body) > 4096) {
            zmq_msg_close(&body);
            zmq_msg_init_size(&body, 1);
        }
        if (zmq_msg_send(&id, sock, ZMQ_SNDMORE) < 0 || zmq_msg_send(&body, sock, 0) < 0)
            die("worker send");
    }
}

static void
recv_reply(void *sock)
{
    zmq_msg_t m;
    zmq_msg_init(&m);
    if (zmq_msg_recv(&m, sock, 0) < 0)
        die("client recv");
    zmq_msg_close(&m);
}

static void
noop_free(void *data, void *hint)
{
    (void)data;
    (void)hint;
}

static int
cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Context switches of process `pid` so far, summed over its live threads (from
 * /proc/<pid>/task/<tid>/status; 0 where it cannot be read). */
static long
switches_of(pid_t pid)
{
    char path[96], line[128];
    long total = 0, v;
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *dir = opendir(path);
    if (dir == NULL)
        return 0;
    struct dirent *d;
    while ((d = readdir(dir)) != NULL) {
        if (d->d_name[0] == '.')
            continue;
        snprintf(path, sizeof path, "/proc/%d/task/%.16s/status", (int)pid, d->d_name);
        FILE *f = fopen(path, "r");
        if (f == NULL)
            continue;
        while (fgets(line, sizeof line, f) != NULL)
            if ((sscanf(line, "voluntary_ctxt_switches: %ld", &v) == 1) ||
                (sscanf(line, "nonvoluntary_ctxt_switches: %ld", &v) == 1))
                total += v;
        fclose(f);
    }
    closedir(dir);
    return total;
}

/* User + system CPU seconds of process `pid` so far, all its threads (/proc/<pid>/stat). */
static double
cpu_of(pid_t pid)
{
    char path[64], buf[1024];
    unsigned long long utime = 0, stime = 0;
    snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')'); /* fields after the command name: state is field 3 */
    if (p == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return 0;
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

static void
print_stats(const char *name, double *v, int n, int last)
{
    qsort(v, n, sizeof *v, cmp_double);
    double median = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
    printf(" \"%s\": {\"min\": %.9g, \"median\": %.9g, \"max\": %.9g, \"n\": %d}%s\n", name, v[0],
           median, v[n - 1], n, last ? "" : ",");
}

static double
memcpy_gbps(size_t nbytes)
{
    char *src = malloc(nbytes), *dst = malloc(nbytes);
    if (!src || !dst)
        exit(1);
    memset(src, 1, nbytes);
    memset(dst, 0, nbytes);
    double best = 1e30;
    for (int i = 0; i < 5; i++) {
        double t = now();
        memcpy(dst, src, nbytes);
        t = now() - t;
        best = t < best ? t : best;
    }
    volatile char sink = dst[nbytes - 1];
    (void)sink;
    free(src);
    free(dst);
    return nbytes / best / 1e9;
}

/* Writing `nbytes` of freshly mapped memory once, as an engine's first read of a large
 * frame does (its page pool maps fresh pages with MADV_HUGEPAGE): the kernel zeroes each
 * page on its first touch; on a VM, memory the guest has not touched lately may cost the
 * host's allocation too. The floor under a cold transfer. The mapping is left for the
 * caller to unmap, so that each sample writes pages none before it wrote. */
static double
first_touch_gbps(size_t nbytes, char **mapped)
{
    char *m = mmap(NULL, nbytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        exit(1);
    madvise(m, nbytes, MADV_HUGEPAGE);
    double t = now();
    memset(m, 1, nbytes);
    t = now() - t;
    *mapped = m;
    return nbytes / t / 1e9;
}

int
main(int argc, char **argv)
{
    int batches = 5, roundtrips = 2000, messages = 100000, big_mb = 100, window = 1000;
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "--batches"))
            batches = v < MAX_BATCHES ? v : MAX_BATCHES;
        else if (!strcmp(argv[i], "--roundtrips"))
            roundtrips = v;
        else if (!strcmp(argv[i], "--messages"))
            messages = v;
        else if (!strcmp(argv[i], "--big-mb"))
            big_mb = v;
    }
    if (batches < 1 || roundtrips < 1 || messages < 1 || big_mb < 1) {
        fprintf(stderr, "floor: counts must be positive\n");
        return 2;
    }
    int fp[2], bp[2];
    if (pipe(fp) || pipe(bp))
        return 1;
    pid_t relay_pid = fork();
    if (relay_pid == 0) {
        relay(fp[1], bp[1]);
        _exit(0);
    }
    int front_port, back_port;
    if (read(fp[0], &front_port, sizeof(int)) != sizeof(int) ||
        read(bp[0], &back_port, sizeof(int)) != sizeof(int))
        return 1;
    pid_t worker_pid = fork();
    if (worker_pid == 0) {
        worker(back_port);
        _exit(0);
    }

    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    char ep[64];
    set_unlimited(sock);
    snprintf(ep, sizeof ep, FRONT, front_port);
    if (zmq_connect(sock, ep) != 0)
        die("connect");
    char body[64] = {0};

    /* Until the worker has connected the relay drops what it forwards: send until one
     * answer comes back, drain the late answers, then warm up. */
    zmq_pollitem_t item = {sock, 0, ZMQ_POLLIN, 0};
    for (int tries = 0; tries < 100; tries++) {
        zmq_send(sock, body, sizeof body, 0);
        if (zmq_poll(&item, 1, 100) == 1)
            break;
    }
    while (zmq_poll(&item, 1, 200) == 1)
        recv_reply(sock);
    for (int i = 0; i < 1000; i++) {
        zmq_send(sock, body, sizeof body, 0);
        recv_reply(sock);
    }

    double rtt[MAX_BATCHES], rate[MAX_BATCHES], big[MAX_BATCHES], sw[MAX_BATCHES];
    double cpu[MAX_BATCHES];
    pid_t three[3] = {getpid(), relay_pid, worker_pid};
    for (int b = 0; b < batches; b++) {
        long s0 = 0, s1 = 0;
        double c0 = 0, c1 = 0;
        for (int k = 0; k < 3; k++) {
            s0 += switches_of(three[k]);
            c0 += cpu_of(three[k]);
        }
        double t = now();
        for (int i = 0; i < roundtrips; i++) {
            if (zmq_send(sock, body, sizeof body, 0) < 0)
                die("client send");
            recv_reply(sock);
        }
        rtt[b] = (now() - t) / roundtrips;
        for (int k = 0; k < 3; k++) {
            s1 += switches_of(three[k]);
            c1 += cpu_of(three[k]);
        }
        sw[b] = (double)(s1 - s0) / roundtrips;
        cpu[b] = (c1 - c0) / roundtrips;
    }
    for (int b = 0; b < batches; b++) {
        int sent = 0, got = 0;
        double t = now();
        while (got < messages) {
            while (sent < messages && sent - got < window) {
                if (zmq_send(sock, body, sizeof body, 0) < 0)
                    die("client send");
                sent++;
            }
            recv_reply(sock);
            got++;
        }
        rate[b] = messages / (now() - t);
    }
    size_t big_bytes = (size_t)big_mb * 1000 * 1000;
    char *payload = malloc(big_bytes);
    if (!payload)
        return 1;
    memset(payload, 1, big_bytes);
    for (int b = 0; b < batches; b++) {
        zmq_msg_t m;
        double t = now();
        zmq_msg_init_data(&m, payload, big_bytes, noop_free, NULL);
        if (zmq_msg_send(&m, sock, 0) < 0)
            die("client send");
        recv_reply(sock);
        big[b] = big_bytes / (now() - t) / 1e9;
    }
    double mc[MAX_BATCHES];
    for (int b = 0; b < batches; b++)
        mc[b] = memcpy_gbps(256u << 20);
    double ft[MAX_BATCHES];
    char *touched[MAX_BATCHES];
    for (int b = 0; b < batches; b++)
        ft[b] = first_touch_gbps(big_bytes, &touched[b]);
    for (int b = 0; b < batches; b++)
        munmap(touched[b], big_bytes);

    printf("{\n \"zmq_version\": \"%d.%d.%d\",\n", ZMQ_VERSION_MAJOR, ZMQ_VERSION_MINOR,
           ZMQ_VERSION_PATCH);
    print_stats("relay_roundtrip", rtt, batches, 0);
    print_stats("relay_switches_per_roundtrip", sw, batches, 0);
    print_stats("relay_cpu_per_roundtrip", cpu, batches, 0);
    print_stats("relay_msgs_per_s", rate, batches, 0);
    print_stats("relay_big_gbps", big, batches, 0);
    print_stats("memcpy_gbps", mc, batches, 0);
    print_stats("first_touch_gbps", ft, batches, 1);
    printf("}\n");
    fflush(stdout);

    kill(worker_pid, SIGKILL);
    kill(relay_pid, SIGKILL);
    waitpid(worker_pid, NULL, 0);
    waitpid(relay_pid, NULL, 0);
    int linger = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    free(payload);
    return 0;
}
