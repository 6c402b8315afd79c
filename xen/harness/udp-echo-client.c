/* A UDP echo client for the harness: sends COUNT datagrams of SIZE bytes to
 * HOST:PORT one at a time, waits up to TIMEOUT_MS for each echo, checks that the
 * echo carries the same bytes, and prints how many came back with the round-trip
 * times. Exit status 0 only when every datagram came back intact.
 * Built with gcc -static so that it runs in the guest's initramfs as is.
 *   udp-echo-client HOST PORT [COUNT [SIZE [TIMEOUT_MS]]]
 *
 * The rate mode keeps WINDOW datagrams in flight for SECONDS and prints the echoes
 * per second ("rate N echoes/s"), the figure the harness compares between two
 * frontends on the same boot. A datagram not echoed within a second is counted lost
 * and replaced. Exit status 0 when at least one echo came back.
 *   udp-echo-client HOST PORT --rate SECONDS [WINDOW [SIZE]]
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

/* Every datagram carries its sequence number in its first four bytes, then a pattern
 * derived from it; an echo counts only if all its bytes match. */
static void fill(unsigned char *out, int size, unsigned seq) {
    for (int j = 0; j < size; j++) out[j] = (unsigned char)(seq * 31u + (unsigned)j);
    memcpy(out, &seq, sizeof seq);
}

static int rate(int fd, double seconds, int window, int size) {
    enum { MAX_WINDOW = 1024, LOSS_MS = 1000 };
    if (window < 1 || window > MAX_WINDOW || seconds <= 0 || seconds > 600) {
        fprintf(stderr, "udp-echo-client: bad SECONDS or WINDOW (1...%d)\n", MAX_WINDOW);
        return 2;
    }
    unsigned char *out = malloc((size_t)size), *in = malloc((size_t)size + 1);
    unsigned *slot_seq = calloc((size_t)window, sizeof *slot_seq);
    double *slot_sent = calloc((size_t)window, sizeof *slot_sent);
    if (!out || !in || !slot_seq || !slot_sent) return 1;
    unsigned next = 1;
    long sent = 0, echoed = 0, lost = 0, bad = 0;
    double start = now_ms(), end = start + seconds * 1e3;
    /* slot i holds the datagram in flight with sequence slot_seq[i] (0: empty) */
    for (;;) {
        double now = now_ms();
        if (now >= end) break;
        for (int i = 0; i < window; i++) {
            if (slot_seq[i] != 0 && now - slot_sent[i] > LOSS_MS) {
                slot_seq[i] = 0;
                lost++;
            }
            if (slot_seq[i] == 0) {
                fill(out, size, next);
                if (send(fd, out, (size_t)size, 0) != size) continue;
                slot_seq[i] = next++;
                slot_sent[i] = now;
                sent++;
            }
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 10) <= 0) continue;
        for (;;) {
            ssize_t n = recv(fd, in, (size_t)size + 1, MSG_DONTWAIT);
            if (n < 0) break;
            unsigned seq;
            if (n != size) {
                bad++;
                continue;
            }
            memcpy(&seq, in, sizeof seq);
            int found = -1;
            for (int i = 0; i < window; i++)
                if (slot_seq[i] == seq && seq != 0) found = i;
            if (found < 0) continue; /* late: already counted lost */
            fill(out, size, seq);
            if (memcmp(in, out, (size_t)size) != 0) {
                bad++;
                continue;
            }
            slot_seq[found] = 0;
            echoed++;
        }
    }
    double elapsed = (now_ms() - start) / 1e3;
    printf("udp-echo-client: rate %.0f echoes/s (window %d, %d bytes, %.1f s: sent %ld, echoed %ld, "
           "lost %ld, bad %ld)\n",
           (double)echoed / elapsed, window, size, elapsed, sent, echoed, lost, bad);
    return echoed > 0 ? 0 : 1;
}

int main(int argc, char **argv) {
    int rate_mode = argc > 4 && strcmp(argv[3], "--rate") == 0;
    if (argc < 3) {
        fprintf(stderr, "usage: %s HOST PORT [COUNT [SIZE [TIMEOUT_MS]]]\n"
                        "       %s HOST PORT --rate SECONDS [WINDOW [SIZE]]\n",
                argv[0], argv[0]);
        return 2;
    }
    int count = rate_mode ? 1 : argc > 3 ? atoi(argv[3]) : 10;
    int size = rate_mode ? (argc > 6 ? atoi(argv[6]) : 64) : argc > 4 ? atoi(argv[4]) : 64;
    int timeout = rate_mode ? 1 : argc > 5 ? atoi(argv[5]) : 1000;
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
    if (rate_mode) return rate(fd, atof(argv[4]), argc > 5 ? atoi(argv[5]) : 32, size);
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
