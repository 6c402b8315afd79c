/* The floor under a latency-mode OpenFlow figure: one message there and one back over
 * loopback TCP between two processes, both polling without sleeping (non-blocking
 * recv in a loop), the client on CPU 0 and the echo on CPU 1. Prints round trips per
 * second: no controller, however fast, answers one outstanding request faster than
 * this on the same machine.
 *   tcp-pingpong SECONDS [BYTES]   (BYTES: the request, 82 like cbench's PACKET_IN) */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static void pin(int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);
}

/* Reads exactly n bytes, polling. */
static int take(int fd, char *buffer, int n) {
    int got = 0;
    while (got < n) {
        ssize_t r = recv(fd, buffer + got, (size_t)(n - got), MSG_DONTWAIT);
        if (r > 0) got += (int)r;
        else if (r == 0) return -1;
        else if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
    }
    return 0;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 3;
    int bytes = argc > 2 ? atoi(argv[2]) : 82;
    if (bytes < 1 || bytes > 65536) bytes = 82;
    int listener = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t length = sizeof address;
    if (bind(listener, (struct sockaddr *)&address, sizeof address) < 0 || listen(listener, 1) < 0 ||
        getsockname(listener, (struct sockaddr *)&address, &length) < 0) {
        perror("tcp-pingpong: listen");
        return 1;
    }
    pid_t child = fork();
    if (child == 0) {
        pin(1);
        int fd = accept(listener, NULL, NULL);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        char *buffer = malloc((size_t)bytes);
        while (take(fd, buffer, bytes) == 0) {
            if (send(fd, buffer, (size_t)bytes, 0) != bytes) break;
        }
        _exit(0);
    }
    pin(0);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(fd, (struct sockaddr *)&address, sizeof address) < 0) {
        perror("tcp-pingpong: connect");
        kill(child, SIGKILL);
        return 1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char *buffer = calloc(1, (size_t)bytes);
    unsigned long trips = 0;
    double start = now(), end = start + seconds, warm = start + 0.5;
    double measured = 0;
    while (1) {
        if (send(fd, buffer, (size_t)bytes, 0) != bytes || take(fd, buffer, bytes) != 0) break;
        double t = now();
        if (t >= warm) {
            if (measured == 0) measured = t;
            trips++;
        }
        if (t >= end) break;
    }
    close(fd);
    waitpid(child, NULL, 0);
    double elapsed = now() - measured;
    printf("round_trips=%lu seconds=%.3f rate=%.0f rtt_us=%.2f\n", trips, elapsed, trips / elapsed,
           1e6 * elapsed / (double)trips);
    return 0;
}
