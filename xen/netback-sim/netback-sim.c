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
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
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
} options = {.vif = 0, .mac = "00:16:3e:00:00:01", .close_after = -1};

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

static char backend_path[128];
static int tap_fd = -1;

static void set_backend_state(int state) {
    say("backend state %d", state);
    node_write(backend_path, "state", "%d", state);
}

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
    node_write(backend_path, "feature-sg", "1");
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
        break;
    case XenbusStateInitialising:
        if (backend_state == XenbusStateClosed) set_backend_state(XenbusStateInitWait);
        break;
    default:
        break;
    }
}

// A frame from the TAP (or reflected) into the frontend's next posted buffer. Returns
// 0 when no buffer is posted.
static int deliver_to_frontend(const uint8_t *frame, size_t length) {
    netif_rx_back_ring_t *rx = &backend.rx;
    if (!backend.connected) return -1;
    if (RING_REQUEST_PROD_OVERFLOW(rx, rx->sring->req_prod)) {
        fail("rx req_prod overflow");
        return -1;
    }
    if (!RING_HAS_UNCONSUMED_REQUESTS(rx)) return 0;
    netif_rx_request_t request;
    RING_COPY_REQUEST(rx, rx->req_cons, &request);
    rx->req_cons++;
    netif_rx_response_t *response = RING_GET_RESPONSE(rx, rx->rsp_prod_pvt);
    uint8_t *page = granted_page(request.gref, 1);
    response->id = request.id;
    response->offset = 0;
    response->flags = 0;
    if (!page || length > PAGE) {
        response->status = NETIF_RSP_ERROR;
        backend.rx_drops++;
    } else {
        memcpy(page, frame, length);
        response->status = (int16_t)length;
        if (options.misbehave == LENGTH_BEYOND_PAGE) response->offset = PAGE - 60;
        backend.rx_packets++;
    }
    rx->rsp_prod_pvt++;
    int notify;
    RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(rx, notify);
    if (notify) notify_frontend();
    return 1;
}

void device_disconnect(void) { disconnect(); }

// The client left: the toolstack recreates the vif for the next one.
void device_session_ended(void) {
    say("frontend gone (tx %ld rx %ld rx-drops %ld tx-errors %ld)", backend.tx_packets,
        backend.rx_packets, backend.rx_drops, backend.tx_errors);
    backend.closed_mid_stream = 0;
    backend.broke_tx_ring = 0;
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
        // The slots of one packet: the first, then while more_data.
        netif_tx_request_t slots[MAX_SLOTS];
        unsigned count = 0;
        int complete = 0;
        while (count < available && count < MAX_SLOTS) {
            RING_COPY_REQUEST(tx, tx->req_cons + count, &slots[count]);
            count++;
            if (!(slots[count - 1].flags & NETTXF_more_data)) {
                complete = 1;
                break;
            }
        }
        if (!complete) {
            if (count >= MAX_SLOTS) {
                fail("a packet of more than 18 slots");
                return;
            }
            return;  // the rest of the packet is not pushed yet
        }
        tx->req_cons += count;
        // The first slot's size is the whole packet's; its own bytes are what the
        // others leave.
        size_t total = slots[0].size, rest = 0, offset = 0;
        for (unsigned i = 1; i < count; i++) rest += slots[i].size;
        int16_t status = NETIF_RSP_OKAY;
        if (rest > total || (slots[0].flags & NETTXF_extra_info)) status = NETIF_RSP_ERROR;
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
        if (status == NETIF_RSP_OKAY) {
            backend.tx_packets++;
            if (options.reflect) {
                if (deliver_to_frontend(frame, total) == 0) backend.rx_drops++;
            } else if (tap_fd >= 0 && write(tap_fd, frame, total) < 0) {
                say("tap write: %s", strerror(errno));
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
    static uint8_t frame[65536];
    for (int batch = 0; batch < 64 && receive_space(); batch++) {
        ssize_t length = read(tap_fd, frame, sizeof frame);
        if (length <= 0) return;
        if (deliver_to_frontend(frame, (size_t)length) <= 0) backend.rx_drops++;
    }
}

// ---------------------------------------------------------------------------------
// The socket: the client session and its requests.

static int open_tap(const char *name) {
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) die("/dev/net/tun");
    struct ifreq request;
    memset(&request, 0, sizeof request);
    request.ifr_flags = IFF_TAP | IFF_NO_PI;
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
            "         [--misbehave responses-beyond-requests|unknown-id|length-beyond-page]\n");
    exit(2);
}

int main(int argc, char **argv) {
    sim.name = "netback-sim";
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--reflect")) options.reflect = 1;
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
        if (poll(fds, (nfds_t)n, 1000) < 0) {
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
    unlink(sim.socket_path);
    return 0;
}
