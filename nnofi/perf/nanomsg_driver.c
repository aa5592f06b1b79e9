/* nanomsg's own numbers for `make bench`: REQ/REP round trips and PUSH/PULL
 * throughput with Debian's libnanomsg, measured the way nnofi/perf measures
 * the Python libraries (nnofi/perf/measure.py), so the rows compare.
 *
 *   nanomsg_driver MODE URL CTL_URL SIZE REPEATS SECONDS WARMUP MAX_MSGS
 *
 * MODE rep | pull: bind URL (pull: and CTL_URL, a PAIR for the acks), print
 *   "ready" once bound, then serve until killed (or idle for the timeout).
 * MODE req | push: connect, measure, print one JSON object on stdout.
 * Latency: WARMUP round trips, then REPEATS repeats of up to SECONDS/REPEATS
 *   each; the median of the repeats' mean round trips.
 * Throughput: WARMUP messages and a mark the receiver acks, then REPEATS
 *   phases of up to SECONDS/REPEATS (and MAX_MSGS), each ended by a mark;
 *   a phase is timed from its first send to the receiver's ack of its mark.
 * Payloads are SIZE bytes of 'x'; the mark is "!mark" (as in measure.py).
 * Build: cc -O2 -o nanomsg_driver nanomsg_driver.c -lnanomsg */
#define _POSIX_C_SOURCE 200809L
#include <nanomsg/nn.h>
#include <nanomsg/pair.h>
#include <nanomsg/pipeline.h>
#include <nanomsg/reqrep.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define TIMEOUT_MS 5000
#define MAX_REPEATS 64
#define MAX_ROUNDS 5000 /* latency: round trips per repeat at most (as ROUNDS in measure.py) */
static const char MARK[] = "!mark";
#define MARK_LEN (sizeof MARK - 1)

static void die(const char *what)
{
    fprintf(stderr, "nanomsg_driver: %s: %s\n", what, nn_strerror(nn_errno()));
    exit(1);
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static int open_socket(int domain_protocol, const char *url, int bind)
{
    int s = nn_socket(AF_SP, domain_protocol);
    int timeout = TIMEOUT_MS, unlimited = -1;
    if (s < 0)
        die("nn_socket");
    /* nanomsg refuses messages over 1 MiB by default; the others take any size */
    if (nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVMAXSIZE, &unlimited, sizeof unlimited) < 0 ||
        nn_setsockopt(s, NN_SOL_SOCKET, NN_RCVTIMEO, &timeout, sizeof timeout) < 0 ||
        nn_setsockopt(s, NN_SOL_SOCKET, NN_SNDTIMEO, &timeout, sizeof timeout) < 0)
        die("nn_setsockopt");
    if ((bind ? nn_bind(s, url) : nn_connect(s, url)) < 0)
        die(bind ? "nn_bind" : "nn_connect");
    return s;
}

static void send_all(int s, const void *buf, size_t len)
{
    if (nn_send(s, buf, len, 0) != (int)len)
        die("nn_send");
}

/* Receives one message into a buffer nanomsg allocates (no size limit);
 * the caller frees it with nn_freemsg. */
static int recv_msg(int s, void **msg)
{
    int n = nn_recv(s, msg, NN_MSG, 0);
    if (n < 0)
        die("nn_recv");
    return n;
}

static int is_mark(const void *msg, int n)
{
    return n == (int)MARK_LEN && memcmp(msg, MARK, MARK_LEN) == 0;
}

static int by_value(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *values, int n)
{
    double sorted[MAX_REPEATS];
    memcpy(sorted, values, n * sizeof *values);
    qsort(sorted, n, sizeof *sorted, by_value);
    return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

static void print_list(const char *name, double *values, int n)
{
    printf("\"%s\": [", name);
    for (int i = 0; i < n; i++)
        printf("%s%.3f", i ? ", " : "", values[i]);
    printf("]");
}

/* REP: send every request back (the received buffer itself: zero-copy). */
static void serve_echo(const char *url)
{
    int s = open_socket(NN_REP, url, 1);
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        void *msg;
        recv_msg(s, &msg);
        if (nn_send(s, &msg, NN_MSG, 0) < 0)
            die("nn_send");
    }
}

static void measure_latency(const char *url, const char *payload, size_t size, int repeats, double seconds,
                            long warmup)
{
    int s = open_socket(NN_REQ, url, 0);
    double means[MAX_REPEATS];
    int64_t budget = (int64_t)(seconds / repeats * 1e9);
    for (long i = 0; i < warmup; i++) {
        void *reply;
        send_all(s, payload, size);
        if ((size_t)recv_msg(s, &reply) != size) {
            fprintf(stderr, "nanomsg_driver: the echo came back with a different size\n");
            exit(1);
        }
        nn_freemsg(reply);
    }
    for (int r = 0; r < repeats; r++) {
        long n = 0;
        int64_t t0 = now_ns(), stop = t0 + budget;
        do {
            void *reply;
            send_all(s, payload, size);
            recv_msg(s, &reply);
            nn_freemsg(reply);
            n++;
        } while (n < MAX_ROUNDS && now_ns() < stop);
        means[r] = (double)(now_ns() - t0) / n / 1000;
    }
    printf("{\"latency_us\": %.3f, ", median(means, repeats));
    print_list("latency_repeats_us", means, repeats);
    printf("}\n");
    nn_close(s);
}

/* PULL: count messages and bytes; at each mark, ack them on the PAIR. */
static void serve_sink(const char *url, const char *ctl_url)
{
    int s = open_socket(NN_PULL, url, 1), ctl = open_socket(NN_PAIR, ctl_url, 1);
    long long count = 0, bytes = 0;
    printf("ready\n");
    fflush(stdout);
    for (;;) {
        void *msg;
        int n = recv_msg(s, &msg);
        if (is_mark(msg, n)) {
            char ack[64];
            int len = snprintf(ack, sizeof ack, "%lld %lld", count, bytes);
            send_all(ctl, ack, len);
            count = bytes = 0;
        } else {
            count++;
            bytes += n;
        }
        nn_freemsg(msg);
    }
}

/* The receiver's count and bytes for the phase just marked. */
static void await_ack(int ctl, long long *count, long long *bytes)
{
    void *ack;
    int n = recv_msg(ctl, &ack);
    char text[64];
    snprintf(text, sizeof text, "%.*s", n, (char *)ack);
    nn_freemsg(ack);
    if (sscanf(text, "%lld %lld", count, bytes) != 2) {
        fprintf(stderr, "nanomsg_driver: unreadable ack %s\n", text);
        exit(1);
    }
}

static void measure_throughput(const char *url, const char *ctl_url, const char *payload, size_t size,
                               int repeats, double seconds, long warmup, long max_msgs)
{
    int s = open_socket(NN_PUSH, url, 0), ctl = open_socket(NN_PAIR, ctl_url, 0);
    double rates[MAX_REPEATS], elapsed_s = 0;
    long long count, bytes, total = 0;
    int64_t budget = (int64_t)(seconds / repeats * 1e9);
    for (long i = 0; i < warmup; i++)
        send_all(s, payload, size);
    send_all(s, MARK, MARK_LEN);
    await_ack(ctl, &count, &bytes);
    if (count != warmup) {
        fprintf(stderr, "nanomsg_driver: the receiver lost warm-up messages\n");
        exit(1);
    }
    for (int r = 0; r < repeats; r++) {
        long n = 0;
        int64_t t0 = now_ns(), stop = t0 + budget;
        do {
            send_all(s, payload, size);
            n++;
        } while (n < max_msgs && now_ns() < stop);
        send_all(s, MARK, MARK_LEN);
        await_ack(ctl, &count, &bytes);
        double elapsed = (double)(now_ns() - t0) / 1e9;
        if (count != n || bytes != (long long)n * (long long)size) {
            fprintf(stderr, "nanomsg_driver: sent %ld messages, the receiver counted %lld (%lld bytes)\n", n,
                    count, bytes);
            exit(1);
        }
        rates[r] = n / elapsed;
        total += n;
        elapsed_s += elapsed;
    }
    double rate = median(rates, repeats);
    printf("{\"msgs_per_s\": %.3f, \"MB_per_s\": %.3f, \"thr_msgs\": %lld, \"thr_seconds\": %.6f, ", rate,
           rate * size / 1e6, total, elapsed_s);
    print_list("thr_repeats_msgs_per_s", rates, repeats);
    printf("}\n");
    nn_close(ctl);
    nn_close(s);
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: %s rep|req|pull|push URL CTL_URL SIZE REPEATS SECONDS WARMUP MAX_MSGS\n", argv[0]);
        return 2;
    }
    const char *mode = argv[1], *url = argv[2], *ctl_url = argv[3];
    size_t size = strtoull(argv[4], NULL, 10);
    int repeats = atoi(argv[5]);
    double seconds = atof(argv[6]);
    long warmup = atol(argv[7]), max_msgs = atol(argv[8]);
    if (repeats < 1 || repeats > MAX_REPEATS || seconds <= 0 || max_msgs < 1) {
        fprintf(stderr, "nanomsg_driver: REPEATS must be 1..%d, SECONDS > 0, MAX_MSGS >= 1\n", MAX_REPEATS);
        return 2;
    }
    if (!strcmp(mode, "rep"))
        serve_echo(url);
    else if (!strcmp(mode, "pull"))
        serve_sink(url, ctl_url);
    char *payload = malloc(size ? size : 1);
    if (!payload) {
        fprintf(stderr, "nanomsg_driver: out of memory for a %zu-byte payload\n", size);
        return 1;
    }
    memset(payload, 'x', size);
    if (!strcmp(mode, "req"))
        measure_latency(url, payload, size, repeats, seconds, warmup);
    else if (!strcmp(mode, "push"))
        measure_throughput(url, ctl_url, payload, size, repeats, seconds, warmup, max_msgs);
    else {
        fprintf(stderr, "nanomsg_driver: unknown mode %s\n", mode);
        return 2;
    }
    free(payload);
    return 0;
}
