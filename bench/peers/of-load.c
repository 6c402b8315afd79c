// of-load: a cbench-like OpenFlow 1.0 load generator (our own code, after cbench's
// protocol as bench/README.md and ../shared/notes/peers.md describe it).
//
// N emulated switches connect to the controller, send HELLO, answer FEATURES_REQUEST
// (4 ports, dpid = 1 + i), GET_CONFIG_REQUEST, ECHO_REQUEST, BARRIER_REQUEST and DESC
// stats, and VENDOR with BAD_VENDOR. Each first sends one gratuitous-ARP PACKET_IN
// (buffer -1, in_port 2, from 80:00:00:00:00:<i+1>) so that a learning switch knows the
// destination, then PACKET_INs of a 64-byte IPv4/UDP frame (reason NO_MATCH, in_port 1,
// to 80:00:00:00:00:<i+1>, buffer_id cycling 1..99999, source MAC cycling through
// MACS values). Latency mode: one PACKET_IN outstanding per switch (the next goes when
// a FLOW_MOD or PACKET_OUT comes back); throughput mode: as many as the socket takes.
// It counts every FLOW_MOD and every PACKET_OUT (as cbench does: a controller that
// answers with both scores twice) and prints responses per second.
//
//   of-load HOST PORT SWITCHES SECONDS latency|throughput [MACS]
//
// Output: one line "responses=N seconds=S rate=R flowmods=F packetouts=P switches=K".
// OF_LOAD_SPIN=1: poll without sleeping (epoll_wait with no timeout), so that in latency
// mode the generator's own wake-up is not part of every round trip it measures.

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

enum { HELLO = 0, ERROR = 1, ECHO_REQ = 2, ECHO_REP = 3, VENDOR = 4, FEAT_REQ = 5, FEAT_REP = 6,
       GETCFG_REQ = 7, GETCFG_REP = 8, PACKET_IN = 10, PACKET_OUT = 13, FLOW_MOD = 14,
       STATS_REQ = 16, STATS_REP = 17, BARRIER_REQ = 18, BARRIER_REP = 19 };

struct sw {
    int fd;
    int index;
    int ready;            // features answered: probes may go
    int outstanding;      // latency mode: a probe waits for its answer
    uint32_t buffer;
    uint32_t mac;
    uint8_t in[1 << 16];
    size_t inlen;
    uint8_t out[1 << 16];
    size_t outlen;
};

static int throughput;
static int macs = 100000;
static long long flowmods, packetouts;
static int measuring;

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void put16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }
static void put32(uint8_t *p, uint32_t v) { p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v; }
static uint16_t get16(const uint8_t *p) { return p[0] << 8 | p[1]; }
static uint32_t get32(const uint8_t *p) { return (uint32_t)p[0] << 24 | p[1] << 16 | p[2] << 8 | p[3]; }

static uint8_t *reserve(struct sw *s, size_t n) {
    if (s->outlen + n > sizeof s->out) return NULL;
    uint8_t *p = s->out + s->outlen;
    s->outlen += n;
    memset(p, 0, n);
    return p;
}

static void header(uint8_t *p, uint8_t type, uint16_t length, uint32_t xid) {
    p[0] = 1; p[1] = type; put16(p + 2, length); put32(p + 4, xid);
}

static void flush(struct sw *s) {
    while (s->outlen > 0) {
        ssize_t n = send(s->fd, s->out, s->outlen, MSG_NOSIGNAL);
        if (n <= 0) return;
        memmove(s->out, s->out + n, s->outlen - n);
        s->outlen -= n;
    }
}

static void mac(uint8_t *p, uint32_t low) {
    p[0] = 0x80; p[1] = 0; p[2] = low >> 24; p[3] = low >> 16; p[4] = low >> 8; p[5] = low;
}

// A PACKET_IN of a 64-byte frame: 18 bytes of header + 64 = 82.
static int packet_in(struct sw *s, int arp) {
    uint8_t *p = reserve(s, 18 + 64);
    if (!p) return 0;
    header(p, PACKET_IN, 18 + 64, 0);
    put32(p + 8, arp ? 0xffffffff : s->buffer);
    put16(p + 12, 64);
    put16(p + 14, arp ? 2 : 1);
    p[16] = 0;  // OFPR_NO_MATCH
    uint8_t *f = p + 18;
    if (arp) {
        memset(f, 0xff, 6);                   // broadcast
        mac(f + 6, s->index + 1);             // the switch's "host"
        put16(f + 12, 0x0806);
        put16(f + 14, 1); put16(f + 16, 0x0800); f[18] = 6; f[19] = 4; put16(f + 20, 2);
        mac(f + 22, s->index + 1); put32(f + 28, 0x0a000000 | (s->index + 1));
        mac(f + 32, s->index + 1); put32(f + 38, 0x0a000000 | (s->index + 1));
    } else {
        mac(f, s->index + 1);                 // to the known host
        mac(f + 6, 0x100000 + s->mac);        // from a cycling source
        put16(f + 12, 0x0800);
        f[14] = 0x45; put16(f + 16, 50); f[22] = 64; f[23] = 17;
        put32(f + 26, 0xc0a80000 | (s->mac & 0xffff)); put32(f + 30, 0xc0a90000 | (s->index + 1));
        put16(f + 34, 1234); put16(f + 36, 5678); put16(f + 38, 30);
        s->buffer = s->buffer % 99999 + 1;
        s->mac = (s->mac + 1) % macs;
    }
    return 1;
}

static void features(struct sw *s, uint32_t xid) {
    uint8_t *p = reserve(s, 32 + 4 * 48);
    if (!p) return;
    header(p, FEAT_REP, 32 + 4 * 48, xid);
    put32(p + 8, 0); put32(p + 12, 1 + s->index);  // datapath id
    put32(p + 16, 256); p[20] = 1;                  // buffers, tables
    put32(p + 24, 0x87); put32(p + 28, 0xfff);
    for (int i = 0; i < 4; i++) {
        uint8_t *port = p + 32 + i * 48;
        put16(port, i + 1);
        mac(port + 2, 0x200000 + s->index * 8 + i);
        snprintf((char *)port + 8, 16, "s%d-eth%d", (s->index + 1) % 10000, i + 1);
    }
}

static void handle(struct sw *s, const uint8_t *m, uint16_t length) {
    uint8_t type = m[1];
    uint32_t xid = get32(m + 4);
    uint8_t *p;
    switch (type) {
    case FEAT_REQ:
        features(s, xid);
        if (!s->ready) {
            s->ready = 1;
            packet_in(s, 1);  // the gratuitous ARP
        }
        break;
    case GETCFG_REQ:
        if ((p = reserve(s, 12))) { header(p, GETCFG_REP, 12, xid); put16(p + 10, 128); }
        break;
    case ECHO_REQ:
        if ((p = reserve(s, length))) { memcpy(p, m, length); p[1] = ECHO_REP; }
        break;
    case BARRIER_REQ:
        if ((p = reserve(s, 8))) header(p, BARRIER_REP, 8, xid);
        break;
    case STATS_REQ:
        if (length >= 10 && get16(m + 8) == 0 && (p = reserve(s, 12 + 1056))) {
            header(p, STATS_REP, 12 + 1056, xid);
            strcpy((char *)p + 12, "oasis of-load");
        }
        break;
    case VENDOR:
        if ((p = reserve(s, 12 + 64))) {
            header(p, ERROR, 12 + (length < 64 ? length : 64), xid);
            put16(p + 8, 1); put16(p + 10, 3);  // BAD_REQUEST/BAD_VENDOR
            memcpy(p + 12, m, length < 64 ? length : 64);
            s->outlen -= 64 - (length < 64 ? length : 64);
        }
        break;
    case FLOW_MOD:
    case PACKET_OUT:
        if (measuring) {
            if (type == FLOW_MOD) flowmods++; else packetouts++;
        }
        s->outstanding = 0;
        break;
    default:
        break;
    }
}

static void offer(struct sw *s) {
    if (!s->ready) return;
    if (throughput) {
        while (s->outlen + 82 <= sizeof s->out / 2 && packet_in(s, 0)) {}
    } else if (!s->outstanding) {
        if (packet_in(s, 0)) s->outstanding = 1;
    }
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: of-load HOST PORT SWITCHES SECONDS latency|throughput [MACS]\n");
        return 2;
    }
    int count = atoi(argv[3]);
    double seconds = atof(argv[4]);
    const char *spin_env = getenv("OF_LOAD_SPIN");
    int spin = spin_env && strcmp(spin_env, "1") == 0;
    throughput = strcmp(argv[5], "throughput") == 0;
    if (argc > 6) macs = atoi(argv[6]);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(atoi(argv[2]))};
    inet_pton(AF_INET, argv[1], &address.sin_addr);
    int ep = epoll_create1(0);
    struct sw *sws = calloc(count, sizeof *sws);
    for (int i = 0; i < count; i++) {
        struct sw *s = &sws[i];
        s->index = i;
        s->buffer = 1;
        s->fd = socket(AF_INET, SOCK_STREAM, 0);
        if (connect(s->fd, (struct sockaddr *)&address, sizeof address) != 0) {
            perror("connect");
            return 1;
        }
        int one = 1;
        setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        fcntl(s->fd, F_SETFL, O_NONBLOCK);
        uint8_t *p = reserve(s, 8);
        header(p, HELLO, 8, 1);
        flush(s);
        struct epoll_event event = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.ptr = s};
        epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &event);
    }
    double start = now(), warm = start + 1.0, end = warm + seconds;
    int joined = 0;
    struct epoll_event events[64];
    while (now() < end) {
        if (!measuring && now() >= warm) {
            measuring = 1;
            flowmods = packetouts = 0;
        }
        int n = epoll_wait(ep, events, 64, spin ? 0 : 10);
        for (int e = 0; e < n; e++) {
            struct sw *s = events[e].data.ptr;
            for (;;) {
                ssize_t got = recv(s->fd, s->in + s->inlen, sizeof s->in - s->inlen, 0);
                if (got == 0) {
                    fprintf(stderr, "switch %d: the controller closed the connection\n", s->index);
                    return 1;
                }
                if (got < 0) break;
                s->inlen += got;
                size_t at = 0;
                while (s->inlen - at >= 8) {
                    uint16_t length = get16(s->in + at + 2);
                    if (length < 8) { fprintf(stderr, "bad length\n"); return 1; }
                    if (s->inlen - at < length) break;
                    handle(s, s->in + at, length);
                    at += length;
                }
                memmove(s->in, s->in + at, s->inlen - at);
                s->inlen -= at;
            }
        }
        joined = 0;
        for (int i = 0; i < count; i++) {
            joined += sws[i].ready;
            offer(&sws[i]);
            flush(&sws[i]);
        }
    }
    double elapsed = now() - warm;
    long long responses = flowmods + packetouts;
    printf("responses=%lld seconds=%.2f rate=%.0f flowmods=%lld packetouts=%lld switches=%d\n",
           responses, elapsed, responses / elapsed, flowmods, packetouts, joined);
    return 0;
}
