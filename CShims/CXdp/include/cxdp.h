// CXdp: an AF_XDP socket on one queue of a Linux interface, with the XDP program
// that steers that queue's frames to it — what Swift cannot do directly: the bpf(2)
// and setsockopt calls with kernel structures, mmap of the four rings, and the
// acquire/release loads and stores the rings need. Nothing else: which frames go
// where and what they mean is the Swift device's business (OasisDevices/XdpDevice).
//
// The UMEM is `frame_count` frames of OASIS_XDP_FRAME_SIZE bytes (one page each, so
// a frame is a Buffer of the Swift side). The fill and completion rings belong to
// the UMEM, the receive and transmit rings to the socket. Rings are single-producer,
// single-consumer: the producer writes entries, then publishes its index with a
// release store; the consumer reads the index with an acquire load.
//
// Functions return 0 (or a descriptor) on success and -errno on failure.
#ifndef OASIS_CXDP_H
#define OASIS_CXDP_H

#include <stdint.h>
#include <stddef.h>

/// One UMEM frame: a page.
#define OASIS_XDP_FRAME_SIZE 4096u

/// One ring, as mapped: the indexes the kernel and we share, and cached copies.
typedef struct {
    uint32_t *producer;
    uint32_t *consumer;
    uint32_t *flags;
    void *entries;
    uint32_t size;  // a power of two
    uint32_t mask;
    /// Producer rings (fill, tx): our producer index, and the consumer index we saw.
    /// Consumer rings (rx, completion): our consumer index, and the producer we saw.
    uint32_t cached_producer;
    uint32_t cached_consumer;
    void *map;
    size_t map_size;
} oasis_xdp_ring;

/// One AF_XDP socket with its UMEM, its XSKMAP, its program and the link that
/// attaches the program to the interface.
typedef struct {
    int fd;
    int map_fd;
    int program_fd;
    int link_fd;
    /// An AF_INET socket in the interface's namespace, for the interface ioctls.
    int control_fd;
    int ifindex;
    uint32_t queue;
    /// 1 when the program runs in the driver (native XDP), 0 in generic (skb) mode.
    int native;
    /// 1 when the socket copies frames (XDP_COPY), 0 for zero-copy.
    int copy;
    void *umem;
    size_t umem_size;
    uint32_t frame_count;
    oasis_xdp_ring fill, completion, rx, tx;
} oasis_xdp_socket;

/// A frame in a receive or transmit ring (struct xdp_desc).
typedef struct {
    uint64_t address;
    uint32_t length;
    uint32_t options;
} oasis_xdp_descriptor;

/// The socket's drop counters (struct xdp_statistics).
typedef struct {
    uint64_t rx_dropped;
    uint64_t rx_invalid_descs;
    uint64_t tx_invalid_descs;
    uint64_t rx_ring_full;
    uint64_t rx_fill_ring_empty_descs;
    uint64_t tx_ring_empty_descs;
} oasis_xdp_statistics;

/// Flags for oasis_xdp_open.
enum {
    /// Attach the program in generic (skb) mode even when the driver has native XDP.
    OASIS_XDP_GENERIC = 1 << 0,
    /// Fail rather than fall back to copy mode when zero-copy is unavailable.
    OASIS_XDP_ZEROCOPY_ONLY = 1 << 1,
};

/// Opens an AF_XDP socket on queue `queue` of interface `ifname` in the caller's
/// network namespace: `frame_count` page frames of UMEM (page-aligned, zeroed), rings
/// of `ring_size` entries (a power of two), bound with need-wakeup, zero-copy when the
/// driver offers it and copy mode otherwise; then an XSKMAP holding the socket and an
/// XDP program that redirects every frame received on that queue to it (frames of
/// other queues pass to the kernel), attached through a BPF link (so it goes away
/// when the link's descriptor is closed, or the process exits). Native XDP first,
/// generic when the driver has none. Needs CAP_NET_ADMIN and CAP_BPF (root).
/// -EBUSY when the interface already has an XDP program or the queue a socket; the
/// kernel frees a closed socket's queue a moment after the close, so a busy queue is
/// retried for up to a second first. On failure nothing is left open. Nothing is
/// placed in the fill ring.
int oasis_xdp_open(oasis_xdp_socket *socket, const char *ifname, uint32_t queue,
                   uint32_t frame_count, uint32_t ring_size, int flags);

/// oasis_xdp_open with room in the XSKMAP for `queue_count` queues (more than `queue`,
/// at most 1024), so that sockets on the interface's other queues can join the same
/// program through oasis_xdp_open_joining: one program per interface, one socket per
/// queue, the program steering each frame by the queue it arrived on.
int oasis_xdp_open_queues(oasis_xdp_socket *socket, const char *ifname, uint32_t queue,
                          uint32_t queue_count, uint32_t frame_count, uint32_t ring_size,
                          int flags);

/// Opens an AF_XDP socket on queue `queue` of `owner`'s interface, with its own UMEM
/// and rings as oasis_xdp_open makes them, and places it in `owner`'s XSKMAP (a
/// duplicate of its descriptor) instead of loading a program: `owner`'s program then
/// steers that queue's frames here. No link is held: closing it takes the socket out
/// of the map only. -E2BIG when the owner's map has no room for `queue`, -EBUSY when
/// the queue has a socket already. `owner` is only read, during the call.
int oasis_xdp_open_joining(oasis_xdp_socket *socket, const oasis_xdp_socket *owner,
                           uint32_t queue, uint32_t frame_count, uint32_t ring_size,
                           int flags);

/// The interface's receive queues (ETHTOOL_GCHANNELS: its receive-only channels plus
/// its combined ones; at least 1), or -errno (-EOPNOTSUPP for a driver that does not
/// say: take it as one queue).
int oasis_xdp_queue_count(const char *ifname);

/// Detaches the program and closes the socket and maps; unmaps the UMEM only when
/// `unmap_umem` (the caller may still have views of frames). Safe to call once.
void oasis_xdp_close(oasis_xdp_socket *socket, int unmap_umem);

/// Unmaps the UMEM left mapped by oasis_xdp_close(socket, 0).
void oasis_xdp_unmap_umem(oasis_xdp_socket *socket);

/// Tells the kernel there is work in the tx ring (sendto with MSG_DONTWAIT).
/// EAGAIN/EBUSY/ENOBUFS (kernel busy, try later) return 0.
int oasis_xdp_kick(oasis_xdp_socket *socket);

/// Wakes the driver to take buffers from the fill ring (recvfrom, MSG_DONTWAIT).
int oasis_xdp_wake_fill(oasis_xdp_socket *socket);

/// getsockopt(XDP_STATISTICS).
int oasis_xdp_get_statistics(oasis_xdp_socket *socket, oasis_xdp_statistics *statistics);

/// The interface's MAC address and MTU (SIOCGIFHWADDR, SIOCGIFMTU), and whether it is
/// up, in the calling thread's network namespace.
int oasis_xdp_interface_info(const char *ifname, uint8_t mac[6], int *mtu, int *up);

/// Whether the socket's interface is up (1), down (0), or -errno.
int oasis_xdp_link_up(oasis_xdp_socket *socket);

// MARK: rings

/// Consumer rings (rx, completion): how many entries are ready, at most `wanted`.
static inline uint32_t oasis_xdp_ring_peek(oasis_xdp_ring *ring, uint32_t wanted) {
    uint32_t ready = ring->cached_producer - ring->cached_consumer;
    if (ready == 0) {
        ring->cached_producer = __atomic_load_n(ring->producer, __ATOMIC_ACQUIRE);
        ready = ring->cached_producer - ring->cached_consumer;
    }
    return ready < wanted ? ready : wanted;
}

/// Consumer rings: gives `count` peeked entries back to the kernel.
static inline void oasis_xdp_ring_release(oasis_xdp_ring *ring, uint32_t count) {
    ring->cached_consumer += count;
    __atomic_store_n(ring->consumer, ring->cached_consumer, __ATOMIC_RELEASE);
}

/// Producer rings (fill, tx): how many entries may be written, at most `wanted`.
static inline uint32_t oasis_xdp_ring_free(oasis_xdp_ring *ring, uint32_t wanted) {
    uint32_t free = ring->size - (ring->cached_producer - ring->cached_consumer);
    if (free < wanted) {
        ring->cached_consumer = __atomic_load_n(ring->consumer, __ATOMIC_ACQUIRE);
        free = ring->size - (ring->cached_producer - ring->cached_consumer);
    }
    return free < wanted ? free : wanted;
}

/// Producer rings: publishes `count` written entries.
static inline void oasis_xdp_ring_submit(oasis_xdp_ring *ring, uint32_t count) {
    ring->cached_producer += count;
    __atomic_store_n(ring->producer, ring->cached_producer, __ATOMIC_RELEASE);
}

/// Entry `index` (counted from the cached consumer for consumer rings, from the
/// cached producer for producer rings) of a fill or completion ring: a UMEM address.
static inline uint64_t *oasis_xdp_address_at(oasis_xdp_ring *ring, uint32_t position) {
    return (uint64_t *)ring->entries + (position & ring->mask);
}

/// Entry of an rx or tx ring.
static inline oasis_xdp_descriptor *oasis_xdp_descriptor_at(oasis_xdp_ring *ring,
                                                             uint32_t position) {
    return (oasis_xdp_descriptor *)ring->entries + (position & ring->mask);
}

/// Producer rings: entries submitted that the kernel has not taken yet.
static inline uint32_t oasis_xdp_ring_unsent(oasis_xdp_ring *ring) {
    return ring->cached_producer - __atomic_load_n(ring->consumer, __ATOMIC_ACQUIRE);
}

/// Whether the kernel asked to be woken for this (fill or tx) ring.
static inline int oasis_xdp_needs_wakeup(oasis_xdp_ring *ring) {
    return (__atomic_load_n(ring->flags, __ATOMIC_RELAXED) & 1u) != 0;
}

#endif
