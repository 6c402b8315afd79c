// netback-sim: plays dom0 for one Xen virtual network interface, without Xen.
//
// It is xenstored (a small tree with read/write/watch, served on a unix socket), the
// toolstack (it writes the vif's frontend and backend nodes) and netback (the backend
// side of the handshake, then the TX and RX rings bridged to a TAP device, or reflected
// back). Grants are pages of a memfd the frontend maps too; event channels are eventfd
// pairs passed over the socket. The rings are driven only through Xen's own io/ring.h
// and io/netif.h macros, so the Swift frontend is tested against code that is not ours.
// xen/README.md describes the protocol.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <linux/virtio_net.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

// io/ring.h is written against barriers its includer defines (its xen_mb() and friends
// are mb() and friends at this interface version).
#define mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/io/netif.h>
#include <xen/io/xenbus.h>
#include <xen/io/ring.h>

// xenstored, grants, the event channel and the socket: shared with blkback-sim.
#include "../sim-common/sim-common.h"

#define MAX_SLOTS 18  // XEN_NETBK_LEGACY_SLOTS_MAX: a backend accepts this many per packet

enum misbehaviour { BEHAVE, RESPONSES_BEYOND_REQUESTS, UNKNOWN_ID, LENGTH_BEYOND_PAGE };

static struct {
    const char *tap_name;
    int reflect;
    unsigned vif;
    const char *mac;
    enum misbehaviour misbehave;
    long close_after;  // TX packets before the backend closes mid-stream; -1: never
    long vanish_after;  // TX packets before the vif is detached and attached again; -1: never
    unsigned rx_slot_size;  // the most bytes per RX slot with feature-sg (PAGE: netback's)
    int no_offloads;  // offer neither feature-sg nor feature-gso-tcpv4
} options = {.vif = 0, .mac = "00:16:3e:00:00:01", .close_after = -1, .vanish_after = -1,
             .rx_slot_size = PAGE};

static struct {
    int connected, closed_mid_stream;
    // Set once --misbehave responses-beyond-requests has pushed its extra responses:
    // the TX ring is then broken on purpose, and the frontend must be the one to
    // notice. Checking the ring again would blame the frontend for the backend's own
    // jump (req_prod now behind rsp_prod_pvt) and close first, racing the frontend.
    int broke_tx_ring;
    netif_tx_back_ring_t tx;
    netif_rx_back_ring_t rx;
    long tx_packets, rx_packets, rx_drops, tx_errors;
} backend;

// What the frontend asked for (read when it connects) and what the offloads did.
static struct {
    int sg, no_csum, gso_tcpv4;
    int vanishing;  // the vif is being detached: when the frontend is Closed, remove it
    struct timespec remove_at;  // when the toolstack removes the directories (0: not planned)
    struct timespec recreate_at;  // when to attach it again (tv_sec 0: not planned)
    long detach_writes;  // the frontend went Initialising while online was 0
    long tx_gso, tx_csum_blank, rx_gso, rx_multislot, rx_csum_blank, segment_drops;
} offload;

static char backend_path[128];
static int tap_fd = -1;

static void set_backend_state(int state) {
    say("backend state %d", state);
    node_write(backend_path, "state", "%d", state);
}

static void offload_offer_features(void);
static void offload_read_frontend_features(void);
static void offload_vanish_if_planned(void);
static void offload_check_detach_write(int state);

// What the toolstack writes before the frontend starts, and netback's probe.
static void toolstack_create_vif(void) {
    store_remove(sim_frontend_path);
    store_remove(backend_path);
    node_write(sim_frontend_path, "backend", "%s", backend_path);
    node_write(sim_frontend_path, "backend-id", "0");
    node_write(sim_frontend_path, "handle", "%u", options.vif);
    node_write(sim_frontend_path, "mac", "%s", options.mac);
    node_write(sim_frontend_path, "state", "1");
    node_write(backend_path, "frontend", "%s", sim_frontend_path);
    node_write(backend_path, "frontend-id", "%u", sim.frontend_domid);
    node_write(backend_path, "online", "1");
    node_write(backend_path, "handle", "%u", options.vif);
    node_write(backend_path, "mac", "%s", options.mac);
    node_write(backend_path, "type", "vif");
    node_write(backend_path, "state", "1");
    // netback_probe: the features, then InitWait.
    offload_offer_features();
    node_write(backend_path, "feature-rx-copy", "1");
    node_write(backend_path, "feature-rx-flip", "0");
    set_backend_state(XenbusStateInitWait);
}

// ---------------------------------------------------------------------------------
// The backend: connect, the rings, disconnect.

static void disconnect(void) {
    backend.connected = 0;
}

static void fail(const char *message) {
    fprintf(stderr, "netback-sim: frontend error: %s\n", message);
    node_write(backend_path, "error", "%s", message);
    disconnect();
    set_backend_state(XenbusStateClosing);
}

static void connect_rings(void) {
    unsigned long tx_ref, rx_ref, port, rx_copy, rx_notify;
    if (read_unsigned(sim_frontend_path, "tx-ring-ref", &tx_ref) ||
        read_unsigned(sim_frontend_path, "rx-ring-ref", &rx_ref) ||
        read_unsigned(sim_frontend_path, "event-channel", &port)) {
        fail("reading tx-ring-ref, rx-ring-ref, event-channel");
        return;
    }
    if (read_unsigned(sim_frontend_path, "request-rx-copy", &rx_copy) || rx_copy != 1) {
        fail("the frontend does not request rx-copy");
        return;
    }
    if (read_unsigned(sim_frontend_path, "feature-rx-notify", &rx_notify) || rx_notify != 1) {
        fail("feature-rx-notify is required");
        return;
    }
    void *tx_page = granted_page((uint32_t)tx_ref, 1), *rx_page = granted_page((uint32_t)rx_ref, 1);
    if (!tx_page || !rx_page) {
        fail("mapping the ring grants");
        return;
    }
    if (port == 0 || port != sim_client.port) {
        fail("binding the event channel");
        return;
    }
    offload_read_frontend_features();
    BACK_RING_INIT(&backend.tx, (netif_tx_sring_t *)tx_page, PAGE);
    BACK_RING_INIT(&backend.rx, (netif_rx_sring_t *)rx_page, PAGE);
    backend.connected = 1;
    say("connected: tx %lu rx %lu port %lu", tx_ref, rx_ref, port);
    set_backend_state(XenbusStateConnected);
}

// The frontend's state node changed (netback's frontend_changed).
void device_frontend_changed(void) {
    const char *text = node_read(sim_frontend_path, "state");
    const char *mine = node_read(backend_path, "state");
    int state = text ? atoi(text) : XenbusStateUnknown;
    int backend_state = mine ? atoi(mine) : XenbusStateUnknown;
    offload_check_detach_write(state);
    say("frontend state %d", state);
    switch (state) {
    case XenbusStateInitialised:
    case XenbusStateConnected:
        if (backend_state == XenbusStateInitWait && !backend.connected) connect_rings();
        break;
    case XenbusStateClosing:
        disconnect();
        set_backend_state(XenbusStateClosing);
        break;
    case XenbusStateClosed:
        disconnect();
        set_backend_state(XenbusStateClosed);
        offload_vanish_if_planned();
        break;
    case XenbusStateInitialising:
        if (backend_state == XenbusStateClosed) set_backend_state(XenbusStateInitWait);
        break;
    default:
        break;
    }
}

// ---------------------------------------------------------------------------------
// Offloads (scatter-gather, checksums, GSO): netback's side of each, on io/netif.h's
// structs and flags. Kept apart from the rest so the ring core stays as it was.

static void offload_offer_features(void) {
    node_write(backend_path, "feature-sg", options.no_offloads ? "0" : "1");
    node_write(backend_path, "feature-gso-tcpv4", options.no_offloads ? "0" : "1");
}

// Where the TCP/UDP checksum of an Ethernet frame lies (IPv4, one optional 802.1Q tag),
// as skb_checksum_setup finds it. Returns 0 and fills start/field, or -1.
static int offload_locate_checksum(const uint8_t *frame, size_t length, size_t *start,
                                   size_t *field, size_t *end, int *udp) {
    size_t ip = 14;
    if (length < ip + 20) return -1;
    unsigned type = (unsigned)frame[12] << 8 | frame[13];
    if (type == 0x8100) {
        ip += 4;
        if (length < ip + 20) return -1;
        type = (unsigned)frame[16] << 8 | frame[17];
    }
    if (type != 0x0800 || frame[ip] >> 4 != 4) return -1;
    size_t header = (size_t)(frame[ip] & 15) * 4;
    size_t total = (size_t)frame[ip + 2] << 8 | frame[ip + 3];
    if (header < 20 || total < header || ip + total > length) return -1;
    *start = ip + header;
    *end = ip + total;
    if (frame[ip + 9] == 6) {
        *field = *start + 16;
        *udp = 0;
    } else if (frame[ip + 9] == 17) {
        *field = *start + 6;
        *udp = 1;
    } else {
        return -1;
    }
    return *field + 2 <= *end ? 0 : -1;
}

// Finishes a partial checksum (the field holds the pseudo-header sum), as a NIC would.
static void offload_finish_checksum(uint8_t *frame, size_t length) {
    size_t start, field, end;
    int udp;
    if (offload_locate_checksum(frame, length, &start, &field, &end, &udp)) return;
    uint32_t sum = 0;
    for (size_t i = start; i < end; i += 2)
        sum += (uint32_t)frame[i] << 8 | (i + 1 < end ? frame[i + 1] : 0);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    uint16_t value = (uint16_t)~sum;
    if (value == 0 && udp) value = 0xffff;
    frame[field] = (uint8_t)(value >> 8);
    frame[field + 1] = (uint8_t)value;
}

static void offload_read_frontend_features(void) {
    unsigned long value;
    offload.sg = !read_unsigned(sim_frontend_path, "feature-sg", &value) && value == 1;
    offload.no_csum = !read_unsigned(sim_frontend_path, "feature-no-csum-offload", &value) && value == 1;
    offload.gso_tcpv4 = !read_unsigned(sim_frontend_path, "feature-gso-tcpv4", &value) && value == 1;
    if (options.no_offloads) offload.sg = offload.gso_tcpv4 = 0;
    say("frontend features: sg %d no-csum-offload %d gso-tcpv4 %d", offload.sg, offload.no_csum,
        offload.gso_tcpv4);
    if (tap_fd >= 0) {
        // What the kernel may hand us: partial checksums unless the frontend refuses
        // them, large TCP segments when it takes GSO (TSO4 only with TSO6, its ABI).
        unsigned flags = offload.no_csum ? 0 : TUN_F_CSUM;
        if (offload.gso_tcpv4 && !offload.no_csum) flags |= TUN_F_TSO4 | TUN_F_TSO6;
        if (ioctl(tap_fd, TUNSETOFFLOAD, flags) < 0) say("TUNSETOFFLOAD: %s", strerror(errno));
    }
}

// The extras after a TX packet's first slot, from req_cons + at: returns how many
// slots they took (0 or more), -1 when not all are pushed yet, -2 when invalid.
static int offload_take_tx_extras(netif_tx_back_ring_t *tx, RING_IDX at, unsigned available,
                                  uint16_t *gso_size) {
    int taken = 0;
    for (;;) {
        if ((unsigned)taken + at - tx->req_cons >= available) return -1;
        netif_tx_request_t slot;
        netif_extra_info_t extra;
        RING_COPY_REQUEST(tx, at + (RING_IDX)taken, &slot);
        memcpy(&extra, &slot, sizeof extra);
        taken++;
        if (extra.type == XEN_NETIF_EXTRA_TYPE_NONE || extra.type >= XEN_NETIF_EXTRA_TYPE_MAX)
            return -2;
        if (extra.type == XEN_NETIF_EXTRA_TYPE_GSO) {
            // netback: only the kinds it offered, and a size.
            if (options.no_offloads || extra.u.gso.type != XEN_NETIF_GSO_TYPE_TCPV4 ||
                extra.u.gso.size == 0)
                return -2;
            *gso_size = extra.u.gso.size;
        }
        if (!(extra.flags & XEN_NETIF_EXTRA_FLAG_MORE)) return taken;
        if (taken > 4) return -2;
    }
}

// A frame (with what its sender left: a blank checksum, a GSO size) into the frontend's
// posted pages, over several slots with feature-sg (at most rx_slot_size bytes each),
// the GSO extra after the first when the frontend asked for feature-gso-tcpv4.
// Returns 1 when placed, 0 when too few requests are posted, -1 when dropped.
static int offload_deliver(uint8_t *frame, size_t length, int csum_blank, uint16_t gso_size) {
    netif_rx_back_ring_t *rx = &backend.rx;
    if (!backend.connected) return -1;
    if (gso_size && !offload.gso_tcpv4) {
        // netback segments in software for such a frontend; the simulator does not.
        offload.segment_drops++;
        return -1;
    }
    if (csum_blank && offload.no_csum) {
        offload_finish_checksum(frame, length);
        csum_blank = 0;
    }
    if (RING_REQUEST_PROD_OVERFLOW(rx, rx->sring->req_prod)) {
        fail("rx req_prod overflow");
        return -1;
    }
    size_t slot_size = offload.sg ? options.rx_slot_size : PAGE;
    size_t data_slots = length == 0 ? 1 : (length + slot_size - 1) / slot_size;
    if (!offload.sg && length > PAGE) return -1;
    unsigned needed = (unsigned)data_slots + (gso_size ? 1 : 0);
    if (RING_HAS_UNCONSUMED_REQUESTS(rx) < needed) return 0;
    size_t done = 0;
    for (size_t i = 0; i < data_slots; i++) {
        netif_rx_request_t request;
        RING_COPY_REQUEST(rx, rx->req_cons, &request);
        rx->req_cons++;
        netif_rx_response_t *response = RING_GET_RESPONSE(rx, rx->rsp_prod_pvt);
        uint8_t *page = granted_page(request.gref, 1);
        size_t chunk = length - done < slot_size ? length - done : slot_size;
        response->id = request.id;
        response->offset = 0;
        response->flags = 0;
        if (i == 0) {
            if (csum_blank) response->flags |= NETRXF_csum_blank | NETRXF_data_validated;
            if (gso_size) response->flags |= NETRXF_extra_info;
        }
        if (i + 1 < data_slots) response->flags |= NETRXF_more_data;
        if (!page) {
            response->status = NETIF_RSP_ERROR;
            backend.rx_drops++;
        } else {
            memcpy(page, frame + done, chunk);
            response->status = (int16_t)chunk;
            if (options.misbehave == LENGTH_BEYOND_PAGE) response->offset = PAGE - 60;
        }
        rx->rsp_prod_pvt++;
        done += chunk;
        if (i == 0 && gso_size) {
            // The extra takes the next request's slot; that request's page is unused.
            rx->req_cons++;
            netif_extra_info_t *extra = (netif_extra_info_t *)RING_GET_RESPONSE(rx, rx->rsp_prod_pvt);
            memset(extra, 0, sizeof *extra);
            extra->type = XEN_NETIF_EXTRA_TYPE_GSO;
            extra->u.gso.size = gso_size;
            extra->u.gso.type = XEN_NETIF_GSO_TYPE_TCPV4;
            rx->rsp_prod_pvt++;
        }
    }
    backend.rx_packets++;
    if (data_slots > 1) offload.rx_multislot++;
    if (gso_size) offload.rx_gso++;
    if (csum_blank) offload.rx_csum_blank++;
    int notify;
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(rx, notify);
    if (notify) notify_frontend();
    return 1;
}

// A transmitted frame to the TAP: a virtio-net header says what the kernel must finish
// (a checksum, a segmentation), as netback hands an skb to the bridge.
static void offload_write_tap(uint8_t *frame, size_t length, int csum_blank, uint16_t gso_size) {
    struct virtio_net_hdr header;
    memset(&header, 0, sizeof header);
    size_t start, field, end;
    int udp;
    if ((csum_blank || gso_size) &&
        !offload_locate_checksum(frame, length, &start, &field, &end, &udp)) {
        header.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
        header.csum_start = (uint16_t)start;
        header.csum_offset = (uint16_t)(field - start);
        if (gso_size && !udp) {
            header.gso_type = VIRTIO_NET_HDR_GSO_TCPV4;
            header.gso_size = gso_size;
            header.hdr_len = (uint16_t)(start + (size_t)(frame[start + 12] >> 4) * 4);
        }
    }
    struct iovec parts[2] = {{.iov_base = &header, .iov_len = sizeof header},
                             {.iov_base = frame, .iov_len = length}};
    if (writev(tap_fd, parts, 2) < 0) say("tap write: %s", strerror(errno));
}

// A frame read from the TAP behind its virtio-net header, to the frontend.
static int offload_from_tap(uint8_t *buffer, size_t length) {
    struct virtio_net_hdr header;
    if (length < sizeof header) return -1;
    memcpy(&header, buffer, sizeof header);
    uint8_t *frame = buffer + sizeof header;
    length -= sizeof header;
    uint16_t gso_size = 0;
    if (header.gso_type != VIRTIO_NET_HDR_GSO_NONE) {
        if ((header.gso_type & ~VIRTIO_NET_HDR_GSO_ECN) != VIRTIO_NET_HDR_GSO_TCPV4) {
            offload.segment_drops++;
            return -1;
        }
        gso_size = header.gso_size;
    }
    return offload_deliver(frame, length, header.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM, gso_size);
}

// Detach and attach, as xl network-detach/attach do: once the frontend is Closed,
// both directories go; a moment later the toolstack writes them again.
static void offload_later(struct timespec *when, long milliseconds) {
    clock_gettime(CLOCK_MONOTONIC, when);
    when->tv_nsec += milliseconds * 1000000L;
    while (when->tv_nsec >= 1000000000L) {
        when->tv_sec++;
        when->tv_nsec -= 1000000000L;
    }
}

static int offload_due(const struct timespec *when) {
    if (when->tv_sec == 0) return 0;
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return now.tv_sec > when->tv_sec || (now.tv_sec == when->tv_sec && now.tv_nsec >= when->tv_nsec);
}

// The backend is Closed during a detach: libxl removes both directories a moment
// later (the frontend sees Closed with online 0 first), and attaches again after.
static void offload_vanish_if_planned(void) {
    if (!offload.vanishing) return;
    offload.vanishing = 0;
    offload_later(&offload.remove_at, 100);
}

// A frontend that goes Initialising while the vif is being detached would leave a
// stray node once the toolstack removes its directory.
static void offload_check_detach_write(int state) {
    const char *online = node_read(backend_path, "online");
    if (state == XenbusStateInitialising && online && !strcmp(online, "0")) {
        offload.detach_writes++;
        say("the frontend went Initialising during a detach");
    }
}

static void toolstack_create_vif(void);

static void offload_recreate_if_due(void) {
    if (offload_due(&offload.remove_at)) {
        offload.remove_at.tv_sec = 0;
        say("vif removed (detach); attached again in 300 ms");
        store_remove(sim_frontend_path);
        store_remove(backend_path);
        offload_later(&offload.recreate_at, 300);
    }
    if (!offload_due(&offload.recreate_at)) return;
    offload.recreate_at.tv_sec = 0;
    say("vif attached again");
    toolstack_create_vif();
}

void device_disconnect(void) { disconnect(); }

// The client left: the toolstack recreates the vif for the next one.
void device_session_ended(void) {
    say("frontend gone (tx %ld rx %ld rx-drops %ld tx-errors %ld)", backend.tx_packets,
        backend.rx_packets, backend.rx_drops, backend.tx_errors);
    backend.closed_mid_stream = 0;
    backend.broke_tx_ring = 0;
    offload.vanishing = 0;
    offload.remove_at.tv_sec = offload.recreate_at.tv_sec = 0;
    toolstack_create_vif();
}

static void close_mid_stream(void) {
    say("closing mid-stream after %ld packets", backend.tx_packets);
    backend.closed_mid_stream = 1;
    disconnect();
    set_backend_state(XenbusStateClosing);
}

// Every complete packet on the TX ring, to the TAP (or back to RX).
static void process_transmit(void) {
    netif_tx_back_ring_t *tx = &backend.tx;
    static uint8_t frame[65536];
    int work = !backend.broke_tx_ring;
    while (backend.connected && work) {
        if (RING_REQUEST_PROD_OVERFLOW(tx, tx->sring->req_prod)) {
            fail("tx req_prod overflow");
            return;
        }
        unsigned available = RING_HAS_UNCONSUMED_REQUESTS(tx);
        if (!available) {
            RING_FINAL_CHECK_FOR_REQUESTS(tx, work);
            continue;
        }
        // The slots of one packet: the first, its extras, then while more_data.
        netif_tx_request_t slots[MAX_SLOTS];
        unsigned count = 0;
        int complete = 0, extras = 0;
        uint16_t gso_size = 0;
        RING_COPY_REQUEST(tx, tx->req_cons, &slots[0]);
        count = 1;
        if (slots[0].flags & NETTXF_extra_info) {
            extras = offload_take_tx_extras(tx, tx->req_cons + 1, available, &gso_size);
            if (extras == -1) return;  // not all pushed yet
            if (extras == -2) {
                fail("a bad extra-info slot");
                return;
            }
        }
        unsigned taken = 1 + (unsigned)extras;
        complete = !(slots[0].flags & NETTXF_more_data);
        while (!complete && taken < available && count < MAX_SLOTS) {
            RING_COPY_REQUEST(tx, tx->req_cons + taken, &slots[count]);
            count++;
            taken++;
            if (!(slots[count - 1].flags & NETTXF_more_data)) complete = 1;
        }
        if (!complete) {
            if (count >= MAX_SLOTS) {
                fail("a packet of more than 18 slots");
                return;
            }
            return;  // the rest of the packet is not pushed yet
        }
        tx->req_cons += taken;
        // The first slot's size is the whole packet's; its own bytes are what the
        // others leave.
        size_t total = slots[0].size, rest = 0, offset = 0;
        for (unsigned i = 1; i < count; i++) rest += slots[i].size;
        int16_t status = NETIF_RSP_OKAY;
        if (rest > total || (count > 1 && options.no_offloads)) status = NETIF_RSP_ERROR;
        for (unsigned i = 0; i < count && status == NETIF_RSP_OKAY; i++) {
            size_t length = i == 0 ? total - rest : slots[i].size;
            const uint8_t *page = granted_page(slots[i].gref, 0);
            if (!page || slots[i].offset + length > PAGE) {
                status = NETIF_RSP_ERROR;
                break;
            }
            memcpy(frame + offset, page + slots[i].offset, length);
            offset += length;
        }
        int csum_blank = (slots[0].flags & NETTXF_csum_blank) != 0;
        if (status == NETIF_RSP_OKAY) {
            if (gso_size) offload.tx_gso++;
            if (csum_blank) offload.tx_csum_blank++;
        }
        if (status == NETIF_RSP_OKAY) {
            backend.tx_packets++;
            if (options.reflect) {
                if (offload_deliver(frame, total, csum_blank, gso_size) <= 0) backend.rx_drops++;
            } else if (tap_fd >= 0) {
                offload_write_tap(frame, total, csum_blank, gso_size);
            }
        } else {
            backend.tx_errors++;
        }
        for (unsigned i = 0; i < count; i++) {
            netif_tx_response_t *response = RING_GET_RESPONSE(tx, tx->rsp_prod_pvt);
            response->id = slots[i].id;
            response->status = status;
            if (options.misbehave == UNKNOWN_ID) response->id = slots[i].id ^ 0x4000;
            tx->rsp_prod_pvt++;
            // netback's make_tx_response: an extra's slot gets only a status.
            for (int e = 0; i == 0 && e < extras; e++)
                RING_GET_RESPONSE(tx, tx->rsp_prod_pvt++)->status = NETIF_RSP_NULL;
        }
        if (options.misbehave == RESPONSES_BEYOND_REQUESTS) tx->rsp_prod_pvt += 5;
        int notify;
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(tx, notify);
        if (notify) notify_frontend();
        if (options.misbehave == RESPONSES_BEYOND_REQUESTS) {
            backend.broke_tx_ring = 1;
            return;
        }
        if (options.close_after >= 0 && backend.tx_packets >= options.close_after) {
            options.close_after = -1;  // once: the frontend may connect again
            close_mid_stream();
            return;
        }
        if (options.vanish_after >= 0 && backend.tx_packets >= options.vanish_after) {
            options.vanish_after = -1;
            offload.vanishing = 1;
            node_write(backend_path, "online", "0");  // libxl's first step of a detach
            close_mid_stream();
            return;
        }
    }
}

// Whether a frame from the TAP could be placed now; arms req_event when not, so that
// the frontend's next RX post notifies us (feature-rx-notify).
static int receive_space(void) {
    if (!backend.connected) return 0;
    int work;
    RING_FINAL_CHECK_FOR_REQUESTS(&backend.rx, work);
    return work;
}

static void process_tap(void) {
    static uint8_t frame[65536 + sizeof(struct virtio_net_hdr)];
    for (int batch = 0; batch < 64 && receive_space(); batch++) {
        ssize_t length = read(tap_fd, frame, sizeof frame);
        if (length <= 0) return;
        if (offload_from_tap(frame, (size_t)length) <= 0) backend.rx_drops++;
    }
}

// ---------------------------------------------------------------------------------
// The socket: the client session and its requests.

static int open_tap(const char *name) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) die("/dev/net/tun");
    struct ifreq request;
    memset(&request, 0, sizeof request);
    request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;  // offloads: offload_write_tap
    snprintf(request.ifr_name, IFNAMSIZ, "%s", name);
    if (ioctl(fd, TUNSETIFF, &request) < 0) die("TUNSETIFF");
    int sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (sock < 0 || ioctl(sock, SIOCGIFFLAGS, &request) < 0) die("SIOCGIFFLAGS");
    request.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &request) < 0) die("SIOCSIFFLAGS");
    close(sock);
    return fd;
}

static void usage(void) {
    fprintf(stderr,
            "usage: netback-sim --socket PATH (--tap NAME | --reflect) [--domid N] [--vif N]\n"
            "         [--mac MAC] [--pages N] [--once] [--verbose] [--close-after N]\n"
            "         [--vanish-after N] [--rx-slot-size BYTES] [--no-offloads]\n"
            "         [--misbehave responses-beyond-requests|unknown-id|length-beyond-page]\n");
    exit(2);
}

int main(int argc, char **argv) {
    sim.name = "netback-sim";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--reflect")) options.reflect = 1;
        else if (!strcmp(a, "--no-offloads")) options.no_offloads = 1;
        else if (!strcmp(a, "--once")) sim.once = 1;
        else if (!strcmp(a, "--verbose")) sim.verbose = 1;
        else if (!value) usage();
        else if (!strcmp(a, "--socket")) sim.socket_path = argv[++i];
        else if (!strcmp(a, "--tap")) options.tap_name = argv[++i];
        else if (!strcmp(a, "--domid")) sim.frontend_domid = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--vif")) options.vif = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--mac")) options.mac = argv[++i];
        else if (!strcmp(a, "--pages")) sim.pages = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--close-after")) options.close_after = atol(argv[++i]);
        else if (!strcmp(a, "--vanish-after")) options.vanish_after = atol(argv[++i]);
        else if (!strcmp(a, "--rx-slot-size")) options.rx_slot_size = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--misbehave")) {
            const char *kind = argv[++i];
            if (!strcmp(kind, "responses-beyond-requests")) options.misbehave = RESPONSES_BEYOND_REQUESTS;
            else if (!strcmp(kind, "unknown-id")) options.misbehave = UNKNOWN_ID;
            else if (!strcmp(kind, "length-beyond-page")) options.misbehave = LENGTH_BEYOND_PAGE;
            else usage();
        } else usage();
    }
    if (!sim.socket_path || (!options.tap_name == !options.reflect)) usage();
    if (sim.pages < 8 || sim.pages > PAGE) usage();
    if (options.rx_slot_size < 64 || options.rx_slot_size > PAGE) usage();

    // A parent that blocks signals (a test runner's thread) hands the mask down: take
    // SIGINT and SIGTERM back, or stopping us would wait for the frontend to leave.
    sigset_t wanted;
    sigemptyset(&wanted);
    sigaddset(&wanted, SIGINT);
    sigaddset(&wanted, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &wanted, NULL);
    sim_install_signals();

    snprintf(sim_frontend_path, sizeof sim_frontend_path, "/local/domain/%u/device/vif/%u",
             sim.frontend_domid, options.vif);
    snprintf(backend_path, sizeof backend_path, "/local/domain/0/backend/vif/%u/%u",
             sim.frontend_domid, options.vif);
    if (options.tap_name) tap_fd = open_tap(options.tap_name);

    int listener = sim_listen();
    toolstack_create_vif();
    printf("netback-sim: ready on %s\n", sim.socket_path);
    fflush(stdout);

    while (!sim_stopping) {
        struct pollfd fds[4];
        int n = 0, listen_at = -1, control_at = -1, event_at = -1, tap_at = -1;
        if (sim_client.control < 0) {
            listen_at = n;
            fds[n++] = (struct pollfd){.fd = listener, .events = POLLIN};
        } else {
            control_at = n;
            fds[n++] = (struct pollfd){.fd = sim_client.control, .events = POLLIN};
        }
        if (sim_client.to_backend >= 0) {
            event_at = n;
            fds[n++] = (struct pollfd){.fd = sim_client.to_backend, .events = POLLIN};
        }
        // Read the TAP only while the frontend has buffers posted: flow control, as
        // netback's queue does it.
        if (tap_fd >= 0 && receive_space()) {
            tap_at = n;
            fds[n++] = (struct pollfd){.fd = tap_fd, .events = POLLIN};
        }
        offload_recreate_if_due();
        int soon = offload.recreate_at.tv_sec || offload.remove_at.tv_sec;
        if (poll(fds, (nfds_t)n, soon ? 20 : 1000) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (listen_at >= 0 && (fds[listen_at].revents & POLLIN)) {
            sim_accept(listener);
        }
        if (control_at >= 0 && fds[control_at].revents) sim_read_requests();
        if (event_at >= 0 && (fds[event_at].revents & POLLIN) && sim_client.to_backend >= 0) {
            uint64_t count;
            if (read(sim_client.to_backend, &count, 8) < 0) say("event read: %s", strerror(errno));
            process_transmit();
        }
        if (tap_at >= 0 && (fds[tap_at].revents & POLLIN)) process_tap();
    }
    fprintf(stderr, "netback-sim: tx %ld rx %ld rx-drops %ld tx-errors %ld\n",
            backend.tx_packets, backend.rx_packets, backend.rx_drops, backend.tx_errors);
    fprintf(stderr,
            "netback-sim: offloads: tx gso %ld csum-blank %ld; rx gso %ld multi-slot %ld "
            "csum-blank %ld; gso dropped %ld; detach-writes %ld\n",
            offload.tx_gso, offload.tx_csum_blank, offload.rx_gso, offload.rx_multislot,
            offload.rx_csum_blank, offload.segment_drops, offload.detach_writes);
    unlink(sim.socket_path);
    return 0;
}
