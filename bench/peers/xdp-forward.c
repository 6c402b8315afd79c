/* The forwarding bench's C floor: the least a program does to move frames from one
 * AF_XDP socket to another — take a frame from IN's receive ring, copy it into a free
 * frame of OUT's UMEM, put that on OUT's transmit ring, give IN's frame back to its
 * fill ring, recycle OUT's frames from its completion ring — with no lookup. Each
 * socket has its own UMEM (as each port of `oasis openflow switch` does), both set up
 * by the same C shim as the switch's AF_XDP ports (CShims/CXdp); the kernel is kicked
 * once per batch.
 *   xdp-forward IN OUT         (owns queue 0 of both; runs until SIGTERM) */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "cxdp.h"

static volatile sig_atomic_t stopping;
static void on_signal(int signal) { (void)signal; stopping = 1; }

enum { FRAMES = 4096, RING = 2048, BATCH = 64 };

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    oasis_xdp_socket in, out;
    int status = oasis_xdp_open(&in, argv[1], 0, FRAMES, RING, 0);
    if (status < 0) { fprintf(stderr, "xdp-forward: %s: %s\n", argv[1], strerror(-status)); return 1; }
    status = oasis_xdp_open(&out, argv[2], 0, FRAMES, RING, 0);
    if (status < 0) { fprintf(stderr, "xdp-forward: %s: %s\n", argv[2], strerror(-status)); return 1; }
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    /* IN: the first RING frames wait in the fill ring. OUT: a stack of free frames. */
    uint32_t n = oasis_xdp_ring_free(&in.fill, RING);
    for (uint32_t i = 0; i < n; i++)
        *oasis_xdp_address_at(&in.fill, in.fill.cached_producer + i) = (uint64_t)i * OASIS_XDP_FRAME_SIZE;
    oasis_xdp_ring_submit(&in.fill, n);
    static uint64_t spare[FRAMES];
    uint32_t spares = 0;
    for (uint32_t i = 0; i < FRAMES; i++) spare[spares++] = (uint64_t)i * OASIS_XDP_FRAME_SIZE;
    printf("xdp-forward: ready\n");
    fflush(stdout);
    unsigned long forwarded = 0, dropped = 0;
    struct pollfd p = {.fd = in.fd, .events = POLLIN};
    while (!stopping) {
        uint32_t done = oasis_xdp_ring_peek(&out.completion, RING);
        for (uint32_t i = 0; i < done; i++)
            spare[spares++] = *oasis_xdp_address_at(&out.completion, out.completion.cached_consumer + i) &
                              ~(uint64_t)(OASIS_XDP_FRAME_SIZE - 1);
        oasis_xdp_ring_release(&out.completion, done);
        uint32_t ready = oasis_xdp_ring_peek(&in.rx, BATCH);
        if (ready == 0) {
            if (oasis_xdp_needs_wakeup(&in.fill)) oasis_xdp_wake_fill(&in);
            poll(&p, 1, 100);
            continue;
        }
        uint32_t room = oasis_xdp_ring_free(&out.tx, ready);
        uint32_t refill = oasis_xdp_ring_free(&in.fill, ready); /* always room: as many out as in */
        uint32_t sent = 0;
        for (uint32_t i = 0; i < ready; i++) {
            oasis_xdp_descriptor d = *oasis_xdp_descriptor_at(&in.rx, in.rx.cached_consumer + i);
            if (sent < room && spares > 0) {
                uint64_t frame = spare[--spares];
                memcpy((uint8_t *)out.umem + frame, (uint8_t *)in.umem + d.address, d.length);
                *oasis_xdp_descriptor_at(&out.tx, out.tx.cached_producer + sent) =
                    (oasis_xdp_descriptor){.address = frame, .length = d.length};
                sent++;
            } else {
                dropped++;
            }
            if (i < refill)
                *oasis_xdp_address_at(&in.fill, in.fill.cached_producer + i) =
                    d.address & ~(uint64_t)(OASIS_XDP_FRAME_SIZE - 1);
        }
        oasis_xdp_ring_submit(&out.tx, sent);
        oasis_xdp_ring_release(&in.rx, ready);
        oasis_xdp_ring_submit(&in.fill, refill < ready ? refill : ready);
        if (oasis_xdp_needs_wakeup(&in.fill)) oasis_xdp_wake_fill(&in);
        forwarded += sent;
        /* Copy mode sends at most 32 frames per kick: kick until the ring is empty. */
        for (int kicks = 0; kicks < 256 && oasis_xdp_ring_unsent(&out.tx) > 0; kicks++)
            if (oasis_xdp_kick(&out) < 0) break;
    }
    fprintf(stderr, "xdp-forward: forwarded %lu, dropped %lu\n", forwarded, dropped);
    oasis_xdp_close(&out, 1);
    oasis_xdp_close(&in, 1);
    return 0;
}
