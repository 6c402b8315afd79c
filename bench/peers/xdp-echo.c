/* The AF_XDP floor: the least a program can do to echo UDP through an XDP socket —
 * take a frame from the receive ring, swap its addresses in place, put the same frame
 * on the transmit ring, return sent frames to the fill ring — with no stack. It uses
 * the same C shim as `oasis --backend xdp` (CShims/CXdp), so socket, program and rings
 * are set up identically, and kicks the kernel once per batch as the Oasis device does.
 *   xdp-echo IFNAME            (owns queue 0 of IFNAME; runs until SIGTERM) */
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include "cxdp.h"
#include "swap.h"

static volatile sig_atomic_t stopping;
static void on_signal(int signal) { (void)signal; stopping = 1; }

enum { FRAMES = 4096, RING = 2048, BATCH = 64 };

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    oasis_xdp_socket s;
    int status = oasis_xdp_open(&s, argv[1], 0, FRAMES, RING, 0);
    if (status < 0) {
        fprintf(stderr, "xdp-echo: %s\n", strerror(-status));
        return 1;
    }
    signal(SIGTERM, on_signal);
    /* Half the frames wait in the fill ring; the rest are spare. */
    uint32_t n = oasis_xdp_ring_free(&s.fill, RING);
    for (uint32_t i = 0; i < n; i++)
        *oasis_xdp_address_at(&s.fill, s.fill.cached_producer + i) =
            (uint64_t)i * OASIS_XDP_FRAME_SIZE;
    oasis_xdp_ring_submit(&s.fill, n);
    printf("xdp-echo: ready\n");
    fflush(stdout);
    unsigned long echoed = 0;
    struct pollfd p = {.fd = s.fd, .events = POLLIN};
    while (!stopping) {
        /* Sent frames go back to the fill ring. */
        uint32_t done = oasis_xdp_ring_peek(&s.completion, RING);
        if (done) {
            uint32_t room = oasis_xdp_ring_free(&s.fill, done);
            for (uint32_t i = 0; i < room; i++)
                *oasis_xdp_address_at(&s.fill, s.fill.cached_producer + i) =
                    *oasis_xdp_address_at(&s.completion, s.completion.cached_consumer + i) &
                    ~(uint64_t)(OASIS_XDP_FRAME_SIZE - 1);
            oasis_xdp_ring_submit(&s.fill, room);
            oasis_xdp_ring_release(&s.completion, room);
            /* As the Oasis device does: wake the driver only after giving it frames. */
            if (room && oasis_xdp_needs_wakeup(&s.fill)) oasis_xdp_wake_fill(&s);
        }
        uint32_t ready = oasis_xdp_ring_peek(&s.rx, BATCH);
        if (ready == 0) {
            poll(&p, 1, 100);
            continue;
        }
        uint32_t room = oasis_xdp_ring_free(&s.tx, ready);
        uint32_t sent = 0;
        for (uint32_t i = 0; i < room; i++) {
            oasis_xdp_descriptor d = *oasis_xdp_descriptor_at(&s.rx, s.rx.cached_consumer + i);
            uint8_t *frame = (uint8_t *)s.umem + d.address;
            if (swap_echo(frame, d.length)) {
                *oasis_xdp_descriptor_at(&s.tx, s.tx.cached_producer + sent) = d;
                sent++;
            } else {
                /* Not an echo: the frame goes straight back to the fill ring. */
                if (oasis_xdp_ring_free(&s.fill, 1)) {
                    *oasis_xdp_address_at(&s.fill, s.fill.cached_producer) =
                        d.address & ~(uint64_t)(OASIS_XDP_FRAME_SIZE - 1);
                    oasis_xdp_ring_submit(&s.fill, 1);
                }
            }
        }
        oasis_xdp_ring_submit(&s.tx, sent);
        oasis_xdp_ring_release(&s.rx, room);
        echoed += sent;
        for (int kicks = 0; kicks < 256 && oasis_xdp_ring_unsent(&s.tx) > 0; kicks++)
            if (oasis_xdp_kick(&s) < 0) break;
    }
    fprintf(stderr, "xdp-echo: echoed %lu\n", echoed);
    oasis_xdp_close(&s, 1);
    return 0;
}
