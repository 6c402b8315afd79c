/* The load generator: sends UDP datagrams to an echo server with a window of
 * datagrams in flight, counts the echoes that come back, and reports the cost per
 * echo. The same generator drives every server compared in one run.
 *
 *   udp-load ADDRESS PORT PAYLOAD_BYTES ECHOES WINDOW
 * prints: echoes=N lost=L seconds=S ns_per_echo=X
 */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc != 6) {
        fprintf(stderr, "usage: %s ADDRESS PORT PAYLOAD_BYTES ECHOES WINDOW\n", argv[0]);
        return 2;
    }
    struct sockaddr_in server = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &server.sin_addr) != 1) return 2;
    size_t size = (size_t)atoi(argv[3]);
    long target = atol(argv[4]);
    long window = atol(argv[5]);
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&server, sizeof server) != 0) {
        perror("socket/connect");
        return 1;
    }
    int buffer = 4 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buffer, sizeof buffer);
    char *payload = calloc(1, size > 0 ? size : 1);
    char reply[65536];
    long sent = 0, received = 0, lost = 0;
    double start = now();
    while (sent < window && sent < target) {
        if (send(fd, payload, size, 0) >= 0) sent++;
    }
    while (received + lost < target) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int ready = poll(&p, 1, 200);
        if (ready == 0 && received == 0 && now() - start > 2.0) {
            fprintf(stderr, "udp-load: no echo in 2 s: is the server there?\n");
            break;
        }
        if (ready == 0) {
            /* Whatever is still in flight after 200 ms is lost: refill the window. */
            long inflight = sent - received - lost;
            lost += inflight;
            for (long i = 0; i < inflight && sent < target; i++)
                if (send(fd, payload, size, 0) >= 0) sent++;
            if (sent >= target && received + lost >= target) break;
            continue;
        }
        while (recv(fd, reply, sizeof reply, MSG_DONTWAIT) >= 0) {
            received++;
            if (sent < target && send(fd, payload, size, 0) >= 0) sent++;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != ECONNREFUSED) {
            perror("recv");
            return 1;
        }
    }
    double seconds = now() - start;
    printf("echoes=%ld lost=%ld seconds=%.3f ns_per_echo=%.1f\n", received, lost, seconds,
           received > 0 ? seconds * 1e9 / (double)received : 0.0);
    return 0;
}
