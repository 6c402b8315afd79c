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
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

// io/ring.h is written against barriers its includer defines (its xen_mb() and friends
// are mb() and friends at this interface version).
#define mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/io/netif.h>
#include <xen/io/xenbus.h>
#include <xen/io/ring.h>

#define PAGE 4096
#define MAX_NODES 256
#define MAX_WATCHES 32
#define MAX_SLOTS 18  // XEN_NETBK_LEGACY_SLOTS_MAX: a backend accepts this many per packet

enum misbehaviour { BEHAVE, RESPONSES_BEYOND_REQUESTS, UNKNOWN_ID, LENGTH_BEYOND_PAGE };

static struct {
    const char *socket_path;
    const char *tap_name;
    int reflect;
    unsigned frontend_domid, vif, pages;
    const char *mac;
    enum misbehaviour misbehave;
    long close_after;  // TX packets before the backend closes mid-stream; -1: never
    int once, verbose;
} options = {.frontend_domid = 1, .vif = 0, .pages = 2048, .mac = "00:16:3e:00:00:01",
             .close_after = -1};

static struct node {
    char *path, *value;
} nodes[MAX_NODES];
static struct watch {
    char *path, *token;
} watches[MAX_WATCHES];

static struct {
    int control, watch;  // our ends of the control and watch sockets; -1 when none
    char input[8192];
    size_t input_length;
    uint8_t *memory;  // page 0: the grant table
    int memory_fd;
    unsigned port;  // the one event channel; 0 when none
    int to_frontend, to_backend;
} client = {.control = -1, .watch = -1, .memory_fd = -1, .to_frontend = -1, .to_backend = -1};

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

static char frontend_path[128], backend_path[128];
static int tap_fd = -1;
static volatile sig_atomic_t stopping;

static void say(const char *format, ...) {
    if (!options.verbose) return;
    va_list arguments;
    va_start(arguments, format);
    fprintf(stderr, "netback-sim: ");
    vfprintf(stderr, format, arguments);
    fputc('\n', stderr);
    va_end(arguments);
}

static void die(const char *what) {
    fprintf(stderr, "netback-sim: %s: %s\n", what, strerror(errno));
    exit(1);
}

// ---------------------------------------------------------------------------------
// The store.

static void fire_watches(const char *path) {
    for (int i = 0; i < MAX_WATCHES; i++) {
        struct watch *w = &watches[i];
        if (!w->path || client.watch < 0) continue;
        size_t length = strlen(w->path);
        if (strncmp(path, w->path, length) != 0 || (path[length] != 0 && path[length] != '/'))
            continue;
        char line[512];
        int n = snprintf(line, sizeof line, "%s %s\n", path, w->token);
        if (n > 0 && n < (int)sizeof line) (void)send(client.watch, line, (size_t)n, MSG_NOSIGNAL);
    }
}

static const char *store_read(const char *path) {
    for (int i = 0; i < MAX_NODES; i++)
        if (nodes[i].path && strcmp(nodes[i].path, path) == 0) return nodes[i].value;
    return NULL;
}

static void frontend_changed(void);

static int store_write(const char *path, const char *value) {
    int free_slot = -1;
    for (int i = 0; i < MAX_NODES; i++) {
        if (nodes[i].path && strcmp(nodes[i].path, path) == 0) {
            free(nodes[i].value);
            nodes[i].value = strdup(value);
            free_slot = -2;
            break;
        }
        if (!nodes[i].path && free_slot == -1) free_slot = i;
    }
    if (free_slot == -1) return -1;
    if (free_slot >= 0) {
        nodes[free_slot].path = strdup(path);
        nodes[free_slot].value = strdup(value);
    }
    fire_watches(path);
    return 0;
}

static void store_remove(const char *path) {
    size_t length = strlen(path);
    for (int i = 0; i < MAX_NODES; i++) {
        if (!nodes[i].path) continue;
        if (strncmp(nodes[i].path, path, length) == 0 &&
            (nodes[i].path[length] == 0 || nodes[i].path[length] == '/')) {
            fire_watches(nodes[i].path);
            free(nodes[i].path);
            free(nodes[i].value);
            nodes[i].path = nodes[i].value = NULL;
        }
    }
}

static void node_write(const char *directory, const char *name, const char *format, ...) {
    char path[256], value[256];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(value, sizeof value, format, arguments);
    va_end(arguments);
    snprintf(path, sizeof path, "%s/%s", directory, name);
    store_write(path, value);
}

static const char *node_read(const char *directory, const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    return store_read(path);
}

static int read_unsigned(const char *directory, const char *name, unsigned long *value) {
    const char *text = node_read(directory, name);
    if (!text || !*text) return -1;
    char *end;
    errno = 0;
    *value = strtoul(text, &end, 10);
    return (*end || errno) ? -1 : 0;
}

static void set_backend_state(int state) {
    say("backend state %d", state);
    node_write(backend_path, "state", "%d", state);
}

// What the toolstack writes before the frontend starts, and netback's probe.
static void toolstack_create_vif(void) {
    store_remove(frontend_path);
    store_remove(backend_path);
    node_write(frontend_path, "backend", "%s", backend_path);
    node_write(frontend_path, "backend-id", "0");
    node_write(frontend_path, "handle", "%u", options.vif);
    node_write(frontend_path, "mac", "%s", options.mac);
    node_write(frontend_path, "state", "1");
    node_write(backend_path, "frontend", "%s", frontend_path);
    node_write(backend_path, "frontend-id", "%u", options.frontend_domid);
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
// Grants and event channels.

// The page `reference` names, if the frontend granted it (writable when asked).
static uint8_t *granted_page(uint32_t reference, int writable) {
    if (!client.memory || reference == 0 || reference >= options.pages) return NULL;
    uint8_t access = __atomic_load_n(&client.memory[reference], __ATOMIC_ACQUIRE);
    if (!(access & 1) || (writable && !(access & 2))) return NULL;
    return client.memory + (size_t)reference * PAGE;
}

static void notify_frontend(void) {
    uint64_t one = 1;
    if (client.to_frontend >= 0 && write(client.to_frontend, &one, 8) != 8) say("notify failed");
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
    if (read_unsigned(frontend_path, "tx-ring-ref", &tx_ref) ||
        read_unsigned(frontend_path, "rx-ring-ref", &rx_ref) ||
        read_unsigned(frontend_path, "event-channel", &port)) {
        fail("reading tx-ring-ref, rx-ring-ref, event-channel");
        return;
    }
    if (read_unsigned(frontend_path, "request-rx-copy", &rx_copy) || rx_copy != 1) {
        fail("the frontend does not request rx-copy");
        return;
    }
    if (read_unsigned(frontend_path, "feature-rx-notify", &rx_notify) || rx_notify != 1) {
        fail("feature-rx-notify is required");
        return;
    }
    void *tx_page = granted_page((uint32_t)tx_ref, 1), *rx_page = granted_page((uint32_t)rx_ref, 1);
    if (!tx_page || !rx_page) {
        fail("mapping the ring grants");
        return;
    }
    if (port == 0 || port != client.port) {
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
static void frontend_changed(void) {
    const char *text = node_read(frontend_path, "state");
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

static int send_line(const char *line, const int *fds, int count) {
    struct iovec vector = {.iov_base = (void *)line, .iov_len = strlen(line)};
    union {
        char buffer[CMSG_SPACE(4 * sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof control);
    struct msghdr message = {.msg_iov = &vector, .msg_iovlen = 1};
    if (count > 0) {
        message.msg_control = control.buffer;
        message.msg_controllen = CMSG_SPACE((size_t)count * sizeof(int));
        struct cmsghdr *header = CMSG_FIRSTHDR(&message);
        header->cmsg_level = SOL_SOCKET;
        header->cmsg_type = SCM_RIGHTS;
        header->cmsg_len = CMSG_LEN((size_t)count * sizeof(int));
        memcpy(CMSG_DATA(header), fds, (size_t)count * sizeof(int));
    }
    return sendmsg(client.control, &message, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

static void end_session(void) {
    say("frontend gone (tx %ld rx %ld rx-drops %ld tx-errors %ld)", backend.tx_packets,
        backend.rx_packets, backend.rx_drops, backend.tx_errors);
    disconnect();
    for (int i = 0; i < MAX_WATCHES; i++) {
        free(watches[i].path);
        free(watches[i].token);
        watches[i].path = watches[i].token = NULL;
    }
    int *fds[] = {&client.control, &client.watch, &client.memory_fd, &client.to_frontend,
                  &client.to_backend};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (*fds[i] >= 0) close(*fds[i]);
        *fds[i] = -1;
    }
    if (client.memory) munmap(client.memory, (size_t)options.pages * PAGE);
    client.memory = NULL;
    client.port = 0;
    client.input_length = 0;
    backend.closed_mid_stream = 0;
    backend.broke_tx_ring = 0;
    toolstack_create_vif();
    if (options.once) stopping = 1;
}

static void begin_session(int fd) {
    client.control = fd;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) die("socketpair");
    client.watch = pair[0];
    fcntl(client.watch, F_SETFL, O_NONBLOCK);
    client.memory_fd = memfd_create("oasis-xen-grants", MFD_CLOEXEC);
    if (client.memory_fd < 0 || ftruncate(client.memory_fd, (off_t)options.pages * PAGE) < 0)
        die("memfd");
    client.memory = mmap(NULL, (size_t)options.pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
                         client.memory_fd, 0);
    if (client.memory == MAP_FAILED) die("mmap");
    char hello[64];
    snprintf(hello, sizeof hello, "hello %u %u\n", options.frontend_domid, options.pages);
    int fds[2] = {client.memory_fd, pair[1]};
    if (send_line(hello, fds, 2) < 0) say("hello: %s", strerror(errno));
    close(pair[1]);
    say("frontend connected");
}

// A relative path is relative to the frontend domain's home.
static void absolute(const char *path, char *out, size_t size) {
    if (path[0] == '/')
        snprintf(out, size, "%s", path);
    else
        snprintf(out, size, "/local/domain/%u/%s", options.frontend_domid, path);
}

static void handle_request(char *line) {
    char *verb = strtok(line, " ");
    char *argument = strtok(NULL, " ");
    char *rest = strtok(NULL, "");
    char path[256], reply[512];
    if (!verb) return;
    if (argument) absolute(argument, path, sizeof path);
    if (!strcmp(verb, "read") && argument) {
        const char *value = store_read(path);
        if (value)
            snprintf(reply, sizeof reply, "ok %s\n", value);
        else
            snprintf(reply, sizeof reply, "enoent\n");
        send_line(reply, NULL, 0);
    } else if (!strcmp(verb, "write") && argument) {
        int failed = store_write(path, rest ? rest : "");
        send_line(failed ? "error store full\n" : "ok\n", NULL, 0);
        char state_path[160];
        snprintf(state_path, sizeof state_path, "%s/state", frontend_path);
        if (!strcmp(path, state_path)) frontend_changed();
    } else if (!strcmp(verb, "rm") && argument) {
        store_remove(path);
        send_line("ok\n", NULL, 0);
    } else if (!strcmp(verb, "watch") && argument && rest) {
        int slot = -1;
        for (int i = 0; i < MAX_WATCHES && slot < 0; i++)
            if (!watches[i].path) slot = i;
        if (slot < 0) {
            send_line("error too many watches\n", NULL, 0);
            return;
        }
        watches[slot].path = strdup(path);
        watches[slot].token = strdup(rest);
        send_line("ok\n", NULL, 0);
        // xenstored fires a new watch once straight away.
        char event[512];
        int n = snprintf(event, sizeof event, "%s %s\n", path, rest);
        if (n > 0 && n < (int)sizeof event) (void)send(client.watch, event, (size_t)n, MSG_NOSIGNAL);
    } else if (!strcmp(verb, "unwatch") && argument && rest) {
        for (int i = 0; i < MAX_WATCHES; i++) {
            if (watches[i].path && !strcmp(watches[i].path, path) &&
                !strcmp(watches[i].token, rest)) {
                free(watches[i].path);
                free(watches[i].token);
                watches[i].path = watches[i].token = NULL;
            }
        }
        send_line("ok\n", NULL, 0);
    } else if (!strcmp(verb, "evtchn-unbound") && argument) {
        if (client.port != 0) {
            send_line("error one event channel per vif in this simulator\n", NULL, 0);
            return;
        }
        client.to_frontend = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        client.to_backend = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (client.to_frontend < 0 || client.to_backend < 0) die("eventfd");
        client.port = 5;
        int fds[2] = {client.to_frontend, client.to_backend};
        snprintf(reply, sizeof reply, "ok %u\n", client.port);
        send_line(reply, fds, 2);
    } else if (!strcmp(verb, "evtchn-close") && argument) {
        if (client.port != 0 && (unsigned)atoi(argument) == client.port) {
            disconnect();
            close(client.to_frontend);
            close(client.to_backend);
            client.to_frontend = client.to_backend = -1;
            client.port = 0;
        }
        send_line("ok\n", NULL, 0);
    } else {
        send_line("error unknown request\n", NULL, 0);
    }
}

static void read_requests(void) {
    ssize_t received = recv(client.control, client.input + client.input_length,
                            sizeof client.input - client.input_length - 1, 0);
    if (received <= 0) {
        end_session();
        return;
    }
    client.input_length += (size_t)received;
    char *newline;
    while ((newline = memchr(client.input, '\n', client.input_length))) {
        *newline = 0;
        handle_request(client.input);
        if (client.control < 0) return;
        size_t used = (size_t)(newline - client.input) + 1;
        memmove(client.input, client.input + used, client.input_length - used);
        client.input_length -= used;
    }
    if (client.input_length >= sizeof client.input - 1) end_session();
}

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

static void on_signal(int signal) {
    (void)signal;
    stopping = 1;
}

static void usage(void) {
    fprintf(stderr,
            "usage: netback-sim --socket PATH (--tap NAME | --reflect) [--domid N] [--vif N]\n"
            "         [--mac MAC] [--pages N] [--once] [--verbose] [--close-after N]\n"
            "         [--misbehave responses-beyond-requests|unknown-id|length-beyond-page]\n");
    exit(2);
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--reflect")) options.reflect = 1;
        else if (!strcmp(a, "--once")) options.once = 1;
        else if (!strcmp(a, "--verbose")) options.verbose = 1;
        else if (!value) usage();
        else if (!strcmp(a, "--socket")) options.socket_path = argv[++i];
        else if (!strcmp(a, "--tap")) options.tap_name = argv[++i];
        else if (!strcmp(a, "--domid")) options.frontend_domid = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--vif")) options.vif = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--mac")) options.mac = argv[++i];
        else if (!strcmp(a, "--pages")) options.pages = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--close-after")) options.close_after = atol(argv[++i]);
        else if (!strcmp(a, "--misbehave")) {
            const char *kind = argv[++i];
            if (!strcmp(kind, "responses-beyond-requests")) options.misbehave = RESPONSES_BEYOND_REQUESTS;
            else if (!strcmp(kind, "unknown-id")) options.misbehave = UNKNOWN_ID;
            else if (!strcmp(kind, "length-beyond-page")) options.misbehave = LENGTH_BEYOND_PAGE;
            else usage();
        } else usage();
    }
    if (!options.socket_path || (!options.tap_name == !options.reflect)) usage();
    if (options.pages < 8 || options.pages > PAGE) usage();

    struct sigaction action = {.sa_handler = on_signal};
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    snprintf(frontend_path, sizeof frontend_path, "/local/domain/%u/device/vif/%u",
             options.frontend_domid, options.vif);
    snprintf(backend_path, sizeof backend_path, "/local/domain/0/backend/vif/%u/%u",
             options.frontend_domid, options.vif);
    if (options.tap_name) tap_fd = open_tap(options.tap_name);

    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(options.socket_path) >= sizeof address.sun_path) usage();
    strcpy(address.sun_path, options.socket_path);
    unlink(options.socket_path);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 ||
        listen(listener, 4) < 0)
        die("listen");
    toolstack_create_vif();
    printf("netback-sim: ready on %s\n", options.socket_path);
    fflush(stdout);

    while (!stopping) {
        struct pollfd fds[4];
        int n = 0, listen_at = -1, control_at = -1, event_at = -1, tap_at = -1;
        if (client.control < 0) {
            listen_at = n;
            fds[n++] = (struct pollfd){.fd = listener, .events = POLLIN};
        } else {
            control_at = n;
            fds[n++] = (struct pollfd){.fd = client.control, .events = POLLIN};
        }
        if (client.to_backend >= 0) {
            event_at = n;
            fds[n++] = (struct pollfd){.fd = client.to_backend, .events = POLLIN};
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
            int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
            if (fd >= 0) begin_session(fd);
        }
        if (control_at >= 0 && fds[control_at].revents) read_requests();
        if (event_at >= 0 && (fds[event_at].revents & POLLIN) && client.to_backend >= 0) {
            uint64_t count;
            if (read(client.to_backend, &count, 8) < 0) say("event read: %s", strerror(errno));
            process_transmit();
        }
        if (tap_at >= 0 && (fds[tap_at].revents & POLLIN)) process_tap();
    }
    fprintf(stderr, "netback-sim: tx %ld rx %ld rx-drops %ld tx-errors %ld\n",
            backend.tx_packets, backend.rx_packets, backend.rx_drops, backend.tx_errors);
    unlink(options.socket_path);
    return 0;
}
