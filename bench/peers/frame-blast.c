/* The forwarding bench's generator: one 64-byte Ethernet frame (60 bytes on the wire
 * before the FCS: IPv4, UDP, 18 bytes of payload, complete IP checksum, UDP checksum 0)
 * sent again and again on a raw AF_PACKET socket with PACKET_QDISC_BYPASS, in batches
 * of 64 through sendmmsg, for SECONDS or until COUNT frames are out, whichever comes
 * first (COUNT 0: no limit). Prints what it sent and the rate.
 *   frame-blast IFNAME SRC_MAC DST_MAC SRC_IP DST_IP SECONDS [COUNT [SOURCES [RATE]]]
 * With SOURCES > 0, frame n comes from SRC_MAC with its last three bytes replaced by
 * n mod SOURCES + 1: that many new flows, for the flow-setup bench. With RATE > 0,
 * frames go out at about RATE a second (in batches of at most 16), not flat out.
 * Pin it with taskset; it runs flat out. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { FRAME = 60, BATCH = 64 };

static int parse_mac(const char *text, uint8_t mac[6]) {
    return sscanf(text, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &mac[0], &mac[1], &mac[2], &mac[3],
                  &mac[4], &mac[5]) == 6;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
    if (argc < 7) {
        fprintf(stderr, "usage: frame-blast IFNAME SRC_MAC DST_MAC SRC_IP DST_IP SECONDS [COUNT]\n");
        return 2;
    }
    uint8_t frame[FRAME] = {0};
    struct in_addr source, destination;
    if (!parse_mac(argv[3], frame) || !parse_mac(argv[2], frame + 6) ||
        inet_pton(AF_INET, argv[4], &source) != 1 || inet_pton(AF_INET, argv[5], &destination) != 1) {
        fprintf(stderr, "frame-blast: bad address\n");
        return 2;
    }
    double seconds = atof(argv[6]);
    unsigned long limit = argc > 7 ? strtoul(argv[7], NULL, 10) : 0;
    unsigned long sources = argc > 8 ? strtoul(argv[8], NULL, 10) : 0;
    double rate = argc > 9 ? atof(argv[9]) : 0;
    frame[12] = 0x08; /* IPv4 */
    uint8_t *ip = frame + 14;
    ip[0] = 0x45;
    ip[2] = 0;
    ip[3] = FRAME - 14; /* total length 46 */
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, &source, 4);
    memcpy(ip + 16, &destination, 4);
    uint32_t sum = 0;
    for (int i = 0; i < 20; i += 2) sum += (uint32_t)(ip[i] << 8 | ip[i + 1]);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    ip[10] = (uint8_t)(~sum >> 8);
    ip[11] = (uint8_t)~sum;
    uint8_t *udp = ip + 20;
    udp[0] = 0x30; udp[1] = 0x39; /* 12345 */
    udp[2] = 0x00; udp[3] = 0x09; /* discard */
    udp[5] = FRAME - 14 - 20;     /* length 26; checksum 0 (none) */

    int fd = socket(AF_PACKET, SOCK_RAW, 0);
    if (fd < 0) { perror("frame-blast: socket"); return 1; }
    int one = 1;
    if (setsockopt(fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one) < 0)
        perror("frame-blast: PACKET_QDISC_BYPASS (sending through the qdisc)");
    struct sockaddr_ll address = {.sll_family = AF_PACKET, .sll_ifindex = (int)if_nametoindex(argv[1])};
    if (address.sll_ifindex == 0) { perror("frame-blast: interface"); return 1; }
    if (bind(fd, (struct sockaddr *)&address, sizeof address) < 0) { perror("frame-blast: bind"); return 1; }

    static uint8_t frames[BATCH][FRAME];
    struct iovec iov[BATCH];
    struct mmsghdr messages[BATCH];
    memset(messages, 0, sizeof messages);
    for (int i = 0; i < BATCH; i++) {
        memcpy(frames[i], frame, FRAME);
        iov[i].iov_base = sources ? frames[i] : frame;
        iov[i].iov_len = FRAME;
        messages[i].msg_hdr.msg_iov = &iov[i];
        messages[i].msg_hdr.msg_iovlen = 1;
    }
    unsigned long sent = 0, refused = 0;
    double start = now(), end = start + seconds, t = start;
    while (t < end && (limit == 0 || sent < limit)) {
        unsigned batch = BATCH;
        if (rate > 0) {
            /* Due by now: (t - start) * rate frames; wait for the next one otherwise. */
            double due = (t - start) * rate - (double)sent;
            if (due < 1) {
                struct timespec pause = {0, 200000};
                nanosleep(&pause, NULL);
                t = now();
                continue;
            }
            batch = due < 16 ? (unsigned)due : 16;
        }
        if (limit && limit - sent < batch) batch = (unsigned)(limit - sent);
        for (unsigned i = 0; sources && i < batch; i++) {
            unsigned long source = (sent + i) % sources + 1;
            frames[i][9] = (uint8_t)(source >> 16);
            frames[i][10] = (uint8_t)(source >> 8);
            frames[i][11] = (uint8_t)source;
        }
        int n = sendmmsg(fd, messages, batch, 0);
        if (n < 0) {
            if (errno != ENOBUFS && errno != EAGAIN && errno != EINTR) { perror("frame-blast: sendmmsg"); return 1; }
            refused++;
        } else {
            sent += (unsigned long)n;
        }
        t = now();
    }
    double elapsed = now() - start;
    printf("sent=%lu seconds=%.3f fps=%.0f refused_batches=%lu\n", sent, elapsed, sent / elapsed, refused);
    close(fd);
    return 0;
}
