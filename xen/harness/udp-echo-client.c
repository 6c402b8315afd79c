/* A UDP echo client for the harness: sends COUNT datagrams of SIZE bytes to
 * HOST:PORT one at a time, waits up to TIMEOUT_MS for each echo, checks that the
 * echo carries the same bytes, and prints how many came back with the round-trip
 * times. Exit status 0 only when every datagram came back intact.
 * Built with gcc -static so that it runs in the guest's initramfs as is.
 *   udp-echo-client HOST PORT [COUNT [SIZE [TIMEOUT_MS]]]
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

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST PORT [COUNT [SIZE [TIMEOUT_MS]]]\n", argv[0]);
        return 2;
    }
    int count = argc > 3 ? atoi(argv[3]) : 10;
    int size = argc > 4 ? atoi(argv[4]) : 64;
    int timeout = argc > 5 ? atoi(argv[5]) : 1000;
    if (count < 1 || size < 8 || size > 65000 || timeout < 1) {
        fprintf(stderr, "udp-echo-client: bad COUNT, SIZE or TIMEOUT_MS\n");
        return 2;
    }
    struct sockaddr_in peer = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(argv[2]))};
    if (inet_pton(AF_INET, argv[1], &peer.sin_addr) != 1) {
        fprintf(stderr, "udp-echo-client: bad address %s\n", argv[1]);
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&peer, sizeof peer) != 0) {
        perror("udp-echo-client: socket");
        return 1;
    }
    unsigned char *out = malloc((size_t)size), *in = malloc((size_t)size + 1);
    if (!out || !in) return 1;
    int good = 0;
    double min = 0, max = 0, sum = 0;
    for (int i = 0; i < count; i++) {
        for (int j = 0; j < size; j++) out[j] = (unsigned char)(i * 31 + j);
        memcpy(out, &i, sizeof i);
        double start = now_ms();
        if (send(fd, out, (size_t)size, 0) != size) {
            fprintf(stderr, "udp-echo-client: send: %s\n", strerror(errno));
            continue;
        }
        for (;;) {
            int left = timeout - (int)(now_ms() - start);
            struct pollfd p = {.fd = fd, .events = POLLIN};
            if (left <= 0 || poll(&p, 1, left) <= 0) {
                fprintf(stderr, "udp-echo-client: datagram %d: no echo within %d ms\n", i, timeout);
                break;
            }
            ssize_t n = recv(fd, in, (size_t)size + 1, 0);
            if (n < 0) {
                fprintf(stderr, "udp-echo-client: recv: %s\n", strerror(errno));
                break;
            }
            if (n == size && memcmp(in, out, (size_t)size) == 0) {
                double rtt = now_ms() - start;
                if (good == 0 || rtt < min) min = rtt;
                if (rtt > max) max = rtt;
                sum += rtt;
                good++;
                break;
            }
            /* a late echo of an earlier datagram: keep waiting for this one */
        }
    }
    printf("udp-echo-client: %d/%d datagrams of %d bytes echoed", good, count, size);
    if (good > 0) printf(", rtt min/avg/max = %.3f/%.3f/%.3f ms", min, sum / good, max);
    printf("\n");
    return good == count ? 0 : 1;
}
