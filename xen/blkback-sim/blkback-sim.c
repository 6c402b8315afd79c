// blkback-sim: plays dom0 for one Xen virtual block device, without Xen.
//
// It is xenstored, the toolstack (it writes the vbd's frontend and backend nodes) and
// blkback (the backend side of the handshake, then the request ring served from a
// file with pread/pwrite). Grants, event channels and the store are ../sim-common,
// shared with netback-sim. The ring is driven only through Xen's own io/ring.h and
// io/blkif.h macros and structs, so the Swift blkfront is tested against code that is
// not ours. xen/README.md describes it.

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

// io/ring.h is written against barriers its includer defines.
#define mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#include <xen/io/blkif.h>
#include <xen/io/protocols.h>
#include <xen/io/ring.h>
#include <xen/io/xenbus.h>

#include "../sim-common/sim-common.h"

#define MAX_RING_ORDER 4  // XENBUS_MAX_RING_GRANT_ORDER, as Linux's blkback
#define SEGMENTS_PER_INDIRECT_PAGE (PAGE / sizeof(struct blkif_request_segment))

enum misbehaviour {
    BEHAVE,
    BAD_ID,                     // responses carry an id never used
    BAD_STATUS,                 // responses carry status 7
    BAD_OPERATION,              // responses echo another operation
    RESPONSES_BEYOND_REQUESTS,  // rsp_prod pushed five past the responses
    CLOSE_MID_STREAM,           // the backend goes Closing after --close-after requests
    BAD_SEGMENT,                // request slots overwritten after they are read
};

static struct {
    const char *disk;
    unsigned vbd;
    int indirect, flush, barrier, discard, persistent, read_only;
    unsigned ring_order, max_indirect, sector_size, queues;
    enum misbehaviour misbehave;
    long misbehave_after;  // requests answered well before misbehaving
    long close_after;      // requests before the backend closes mid-stream; -1: never
} options = {.vbd = 51712, .indirect = 1, .flush = 1, .discard = 1, .ring_order = MAX_RING_ORDER,
             .max_indirect = 256, .sector_size = 512, .queues = 2, .close_after = -1};

static struct {
    int connected, broke_ring, persistent;
    unsigned ring_pages;
    void *ring_area;
    blkif_back_ring_t ring;
    long requests, sectors_read, sectors_written, flushes, discards, errors, answered;
} backend;

static char backend_path[128];
static int disk_fd = -1;
static uint64_t disk_bytes;

static void set_backend_state(int state) {
    say("backend state %d", state);
    node_write(backend_path, "state", "%d", state);
}

// blkback's probe: the transport parameters and features it offers, then InitWait.
static void advertise_and_wait(void) {
    node_write(backend_path, "feature-persistent", "%d", options.persistent);
    node_write(backend_path, "max-ring-page-order", "%u", options.ring_order);
    if (options.queues > 0) node_write(backend_path, "multi-queue-max-queues", "%u", options.queues);
    if (options.indirect)
        node_write(backend_path, "feature-max-indirect-segments", "%u", options.max_indirect);
    set_backend_state(XenbusStateInitWait);
}

// What the toolstack writes before the frontend starts.
static void toolstack_create_vbd(void) {
    store_remove(sim_frontend_path);
    store_remove(backend_path);
    node_write(sim_frontend_path, "backend", "%s", backend_path);
    node_write(sim_frontend_path, "backend-id", "0");
    node_write(sim_frontend_path, "virtual-device", "%u", options.vbd);
    node_write(sim_frontend_path, "device-type", "disk");
    node_write(sim_frontend_path, "state", "1");
    node_write(backend_path, "frontend", "%s", sim_frontend_path);
    node_write(backend_path, "frontend-id", "%u", sim.frontend_domid);
    node_write(backend_path, "online", "1");
    node_write(backend_path, "params", "%s", options.disk);
    node_write(backend_path, "type", "file");
    node_write(backend_path, "mode", "%s", options.read_only ? "r" : "w");
    node_write(backend_path, "dev", "xvda");
    node_write(backend_path, "state", "1");
    advertise_and_wait();
}

// ---------------------------------------------------------------------------------
// Connect and disconnect.

static void disconnect(void) {
    backend.connected = 0;
    unmap_granted_pages(backend.ring_area, backend.ring_pages);
    backend.ring_area = NULL;
    backend.ring_pages = 0;
}

static void fail(const char *message) {
    fprintf(stderr, "blkback-sim: frontend error: %s\n", message);
    node_write(backend_path, "error", "%s", message);
    disconnect();
    set_backend_state(XenbusStateClosing);
}

// blkback's connect_ring, then connect: map the ring, bind the channel, publish the
// device's properties, Connected.
static void connect_ring(void) {
    unsigned long order = 0, port, queues = 1, persistent = 0;
    if (node_read(sim_frontend_path, "ring-page-order") &&
        read_unsigned(sim_frontend_path, "ring-page-order", &order)) {
        fail("reading ring-page-order");
        return;
    }
    if (order > options.ring_order) {
        fail("ring-page-order beyond max-ring-page-order");
        return;
    }
    if (node_read(sim_frontend_path, "multi-queue-num-queues") &&
        (read_unsigned(sim_frontend_path, "multi-queue-num-queues", &queues) || queues != 1)) {
        fail("this simulator serves one queue");
        return;
    }
    const char *protocol = node_read(sim_frontend_path, "protocol");
    if (protocol && strcmp(protocol, XEN_IO_PROTO_ABI_X86_64) != 0) {
        fail("unsupported protocol");
        return;
    }
    if (node_read(sim_frontend_path, "feature-persistent"))
        read_unsigned(sim_frontend_path, "feature-persistent", &persistent);
    unsigned pages = 1u << order;
    uint32_t references[1u << MAX_RING_ORDER];
    for (unsigned i = 0; i < pages; i++) {
        unsigned long reference;
        char name[32];
        if (order == 0)
            snprintf(name, sizeof name, "ring-ref");
        else
            snprintf(name, sizeof name, "ring-ref%u", i);
        if (read_unsigned(sim_frontend_path, name, &reference)) {
            fail("reading ring-ref");
            return;
        }
        references[i] = (uint32_t)reference;
    }
    if (read_unsigned(sim_frontend_path, "event-channel", &port)) {
        fail("reading event-channel");
        return;
    }
    if (port == 0 || port != sim_client.port) {
        fail("binding the event channel");
        return;
    }
    void *area = map_granted_pages(references, pages, 1);
    if (!area) {
        fail("mapping the ring grants");
        return;
    }
    backend.ring_area = area;
    backend.ring_pages = pages;
    BACK_RING_INIT(&backend.ring, (blkif_sring_t *)area, (size_t)PAGE * pages);
    backend.persistent = options.persistent && persistent;
    backend.connected = 1;
    say("connected: %u ring page(s), %u slots, port %lu, persistent %d", pages,
        RING_SIZE(&backend.ring), port, backend.persistent);
    // blkback's connect(): the properties the frontend reads after Connected. "sectors"
    // is in 512-byte units whatever "sector-size" is, as Linux's blkback writes it.
    node_write(backend_path, "sectors", "%llu", (unsigned long long)(disk_bytes / 512));
    node_write(backend_path, "info", "%u", options.read_only ? VDISK_READONLY : 0);
    node_write(backend_path, "sector-size", "%u", options.sector_size);
    node_write(backend_path, "physical-sector-size", "%u", options.sector_size);
    node_write(backend_path, "feature-flush-cache", "%d", options.flush);
    node_write(backend_path, "feature-barrier", "%d", options.barrier);
    if (options.discard) {
        node_write(backend_path, "feature-discard", "1");
        node_write(backend_path, "discard-granularity", "%u", options.sector_size);
        node_write(backend_path, "discard-alignment", "0");
        node_write(backend_path, "discard-secure", "0");
    }
    set_backend_state(XenbusStateConnected);
}

// The frontend's state node changed (blkback's frontend_changed).
void device_frontend_changed(void) {
    const char *text = node_read(sim_frontend_path, "state");
    const char *mine = node_read(backend_path, "state");
    int state = text ? atoi(text) : XenbusStateUnknown;
    int backend_state = mine ? atoi(mine) : XenbusStateUnknown;
    say("frontend state %d", state);
    switch (state) {
    case XenbusStateInitialised:
    case XenbusStateConnected:
        if (backend_state == XenbusStateInitWait && !backend.connected) connect_ring();
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
        if (backend_state == XenbusStateClosed) advertise_and_wait();
        break;
    default:
        break;
    }
}

void device_disconnect(void) { disconnect(); }

void device_session_ended(void) {
    say("frontend gone (requests %ld read %ld written %ld sectors, flushes %ld discards %ld "
        "errors %ld)",
        backend.requests, backend.sectors_read, backend.sectors_written, backend.flushes,
        backend.discards, backend.errors);
    backend.broke_ring = 0;
    backend.answered = 0;
    toolstack_create_vbd();
}

// ---------------------------------------------------------------------------------
// Requests.

// One segment's transfer between a granted page and the disk at byte `offset`.
// Returns the bytes moved, or -1.
static long transfer(int operation, const struct blkif_request_segment *segment,
                     uint64_t offset) {
    if (segment->first_sect > segment->last_sect || segment->last_sect >= PAGE / 512) return -1;
    size_t length = (size_t)(segment->last_sect - segment->first_sect + 1) * 512;
    // 4096-byte sectors: every segment must move whole logical sectors (blkback's
    // "misaligned I/O request" check).
    if (length % options.sector_size != 0) return -1;
    if (offset > disk_bytes || length > disk_bytes - offset) return -1;
    uint8_t *page = granted_page(segment->gref, operation == BLKIF_OP_READ);
    if (!page) return -1;
    uint8_t *data = page + (size_t)segment->first_sect * 512;
    ssize_t moved = operation == BLKIF_OP_READ ? pread(disk_fd, data, length, (off_t)offset)
                                               : pwrite(disk_fd, data, length, (off_t)offset);
    return moved == (ssize_t)length ? (long)length : -1;
}

// Reads and writes, with the segments in the slot or in indirect pages.
static int16_t read_write(int operation, uint64_t sector, const struct blkif_request_segment *segments,
                          unsigned count) {
    if (operation == BLKIF_OP_WRITE && options.read_only) return BLKIF_RSP_ERROR;
    if ((sector * 512) % options.sector_size != 0) return BLKIF_RSP_ERROR;
    uint64_t offset = sector * 512;
    for (unsigned i = 0; i < count; i++) {
        long moved = transfer(operation, &segments[i], offset);
        if (moved < 0) return BLKIF_RSP_ERROR;
        offset += (uint64_t)moved;
        if (operation == BLKIF_OP_READ)
            backend.sectors_read += moved / 512;
        else
            backend.sectors_written += moved / 512;
    }
    return BLKIF_RSP_OKAY;
}

static int16_t indirect(const struct blkif_request_indirect *request) {
    unsigned count = request->nr_segments;
    int operation = request->indirect_op;
    if ((operation != BLKIF_OP_READ && operation != BLKIF_OP_WRITE) || count == 0 ||
        count > options.max_indirect || !options.indirect)
        return BLKIF_RSP_ERROR;
    unsigned pages = (count + SEGMENTS_PER_INDIRECT_PAGE - 1) / SEGMENTS_PER_INDIRECT_PAGE;
    if (pages > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST) return BLKIF_RSP_ERROR;
    static struct blkif_request_segment segments[BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST *
                                                 SEGMENTS_PER_INDIRECT_PAGE];
    for (unsigned page = 0; page < pages; page++) {
        const uint8_t *descriptors = granted_page(request->indirect_grefs[page], 0);
        if (!descriptors) return BLKIF_RSP_ERROR;
        unsigned here = count - page * SEGMENTS_PER_INDIRECT_PAGE;
        if (here > SEGMENTS_PER_INDIRECT_PAGE) here = SEGMENTS_PER_INDIRECT_PAGE;
        // Copied once out of the shared page, as blkback does, then checked.
        memcpy(&segments[page * SEGMENTS_PER_INDIRECT_PAGE], descriptors,
               here * sizeof(struct blkif_request_segment));
    }
    return read_write(operation, request->sector_number, segments, count);
}

static int16_t discard(const struct blkif_request_discard *request) {
    if (!options.discard || options.read_only) return BLKIF_RSP_EOPNOTSUPP;
    uint64_t offset = request->sector_number * 512, length = request->nr_sectors * 512;
    if (request->nr_sectors > disk_bytes / 512 || offset > disk_bytes ||
        length > disk_bytes - offset)
        return BLKIF_RSP_ERROR;
    if (fallocate(disk_fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)offset,
                  (off_t)length) < 0) {
        // No hole punching here: a discard may leave the data; zero it to be visible.
        static uint8_t zeros[65536];
        for (uint64_t done = 0; done < length;) {
            size_t chunk = length - done < sizeof zeros ? (size_t)(length - done) : sizeof zeros;
            if (pwrite(disk_fd, zeros, chunk, (off_t)(offset + done)) != (ssize_t)chunk)
                return BLKIF_RSP_ERROR;
            done += chunk;
        }
    }
    backend.discards++;
    return BLKIF_RSP_OKAY;
}

// One request, copied out of the ring; the response's status, and the operation it
// echoes through *echo.
static int16_t serve(const blkif_request_t *request, uint8_t *echo) {
    *echo = request->operation;
    switch (request->operation) {
    case BLKIF_OP_READ:
    case BLKIF_OP_WRITE:
        if (request->nr_segments == 0 || request->nr_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST)
            return BLKIF_RSP_ERROR;
        return read_write(request->operation, request->sector_number, request->seg,
                          request->nr_segments);
    case BLKIF_OP_FLUSH_DISKCACHE:
    case BLKIF_OP_WRITE_BARRIER: {
        int offered = request->operation == BLKIF_OP_FLUSH_DISKCACHE ? options.flush
                                                                     : options.barrier;
        if (!offered) return BLKIF_RSP_EOPNOTSUPP;
        if (request->nr_segments > BLKIF_MAX_SEGMENTS_PER_REQUEST) return BLKIF_RSP_ERROR;
        if (request->nr_segments > 0) {
            int16_t status = read_write(BLKIF_OP_WRITE, request->sector_number, request->seg,
                                        request->nr_segments);
            if (status != BLKIF_RSP_OKAY) return status;
        }
        if (fdatasync(disk_fd) < 0) return BLKIF_RSP_ERROR;
        backend.flushes++;
        return BLKIF_RSP_OKAY;
    }
    case BLKIF_OP_DISCARD:
        return discard((const struct blkif_request_discard *)request);
    case BLKIF_OP_INDIRECT: {
        const struct blkif_request_indirect *inner = (const struct blkif_request_indirect *)request;
        *echo = inner->indirect_op;
        return indirect(inner);
    }
    default:
        return BLKIF_RSP_EOPNOTSUPP;
    }
}

static void close_mid_stream(void) {
    say("closing mid-stream after %ld requests", backend.requests);
    disconnect();
    set_backend_state(XenbusStateClosing);
}

// Every request on the ring, answered in order (blkback's do_block_io_op).
static void process_requests(void) {
    blkif_back_ring_t *ring = &backend.ring;
    int work = !backend.broke_ring;
    while (backend.connected && work) {
        if (RING_REQUEST_PROD_OVERFLOW(ring, ring->sring->req_prod)) {
            fail("req_prod overflow");
            return;
        }
        if (!RING_HAS_UNCONSUMED_REQUESTS(ring)) {
            RING_FINAL_CHECK_FOR_REQUESTS(ring, work);
            continue;
        }
        blkif_request_t request;
        RING_COPY_REQUEST(ring, ring->req_cons, &request);
        if (options.misbehave == BAD_SEGMENT && backend.answered >= options.misbehave_after) {
            // The slot is the frontend's memory too: a lying backend rewrites it after
            // reading, claiming 255 segments of pages nobody granted.
            blkif_request_t *slot = RING_GET_REQUEST(ring, ring->req_cons);
            memset(slot, 0xee, sizeof *slot);
            slot->nr_segments = 255;
        }
        ring->req_cons++;
        backend.requests++;
        uint8_t echo;
        int16_t status = serve(&request, &echo);
        if (status != BLKIF_RSP_OKAY) backend.errors++;
        blkif_response_t *response = RING_GET_RESPONSE(ring, ring->rsp_prod_pvt);
        response->id = request.id;
        response->operation = echo;
        response->status = status;
        if (backend.answered >= options.misbehave_after) {
            if (options.misbehave == BAD_ID) response->id = request.id ^ 0x4000000000000000ull;
            if (options.misbehave == BAD_STATUS) response->status = 7;
            if (options.misbehave == BAD_OPERATION) response->operation = echo ^ 0x40;
        }
        ring->rsp_prod_pvt++;
        backend.answered++;
        int broke = options.misbehave == RESPONSES_BEYOND_REQUESTS &&
                    backend.answered > options.misbehave_after;
        if (broke) ring->rsp_prod_pvt += 5;
        int notify;
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(ring, notify);
        if (notify) notify_frontend();
        if (broke) {
            // The ring is broken on purpose; the frontend must be the one to notice.
            backend.broke_ring = 1;
            return;
        }
        if (options.close_after >= 0 && backend.requests >= options.close_after) {
            close_mid_stream();
            return;
        }
    }
}

// ---------------------------------------------------------------------------------

static void usage(void) {
    fprintf(stderr,
            "usage: blkback-sim --socket PATH --disk FILE [--domid N] [--vbd N] [--pages N]\n"
            "         [--once] [--verbose] [--read-only] [--sector-size 512|4096]\n"
            "         [--no-indirect] [--max-indirect N] [--no-flush] [--barrier] [--no-discard]\n"
            "         [--persistent] [--ring-order 0-4] [--queues N] [--close-after N]\n"
            "         [--misbehave bad-id|bad-status|bad-operation|responses-beyond-requests|\n"
            "                      close-mid-stream|bad-segment] [--misbehave-after N]\n");
    exit(2);
}

int main(int argc, char **argv) {
    sim.name = "blkback-sim";
    sim.pages = 4096;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--once")) sim.once = 1;
        else if (!strcmp(a, "--verbose")) sim.verbose = 1;
        else if (!strcmp(a, "--read-only")) options.read_only = 1;
        else if (!strcmp(a, "--no-indirect")) options.indirect = 0;
        else if (!strcmp(a, "--no-flush")) options.flush = 0;
        else if (!strcmp(a, "--barrier")) options.barrier = 1;
        else if (!strcmp(a, "--no-discard")) options.discard = 0;
        else if (!strcmp(a, "--persistent")) options.persistent = 1;
        else if (!value) usage();
        else if (!strcmp(a, "--socket")) sim.socket_path = argv[++i];
        else if (!strcmp(a, "--disk")) options.disk = argv[++i];
        else if (!strcmp(a, "--domid")) sim.frontend_domid = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--vbd")) options.vbd = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--pages")) sim.pages = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--sector-size")) options.sector_size = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--max-indirect")) options.max_indirect = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--ring-order")) options.ring_order = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--queues")) options.queues = (unsigned)atoi(argv[++i]);
        else if (!strcmp(a, "--close-after")) options.close_after = atol(argv[++i]);
        else if (!strcmp(a, "--misbehave-after")) options.misbehave_after = atol(argv[++i]);
        else if (!strcmp(a, "--misbehave")) {
            const char *kind = argv[++i];
            if (!strcmp(kind, "bad-id")) options.misbehave = BAD_ID;
            else if (!strcmp(kind, "bad-status")) options.misbehave = BAD_STATUS;
            else if (!strcmp(kind, "bad-operation")) options.misbehave = BAD_OPERATION;
            else if (!strcmp(kind, "responses-beyond-requests"))
                options.misbehave = RESPONSES_BEYOND_REQUESTS;
            else if (!strcmp(kind, "close-mid-stream")) options.misbehave = CLOSE_MID_STREAM;
            else if (!strcmp(kind, "bad-segment")) options.misbehave = BAD_SEGMENT;
            else usage();
        } else usage();
    }
    if (!sim.socket_path || !options.disk) usage();
    if (sim.pages < 8 || sim.pages > PAGE) usage();
    if (options.sector_size != 512 && options.sector_size != 4096) usage();
    if (options.ring_order > MAX_RING_ORDER) usage();
    if (options.max_indirect == 0 ||
        options.max_indirect > BLKIF_MAX_INDIRECT_PAGES_PER_REQUEST * SEGMENTS_PER_INDIRECT_PAGE)
        usage();
    if (options.misbehave == CLOSE_MID_STREAM && options.close_after < 0)
        options.close_after = options.misbehave_after + 1;

    disk_fd = open(options.disk, (options.read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
    struct stat status;
    if (disk_fd < 0 || fstat(disk_fd, &status) < 0) die(options.disk);
    disk_bytes = (uint64_t)status.st_size / options.sector_size * options.sector_size;
    if (disk_bytes == 0) {
        errno = EINVAL;
        die("the disk is smaller than one sector");
    }

    sim_install_signals();
    snprintf(sim_frontend_path, sizeof sim_frontend_path, "/local/domain/%u/device/vbd/%u",
             sim.frontend_domid, options.vbd);
    snprintf(backend_path, sizeof backend_path, "/local/domain/0/backend/vbd/%u/%u",
             sim.frontend_domid, options.vbd);
    int listener = sim_listen();
    toolstack_create_vbd();
    printf("blkback-sim: ready on %s (%llu bytes)\n", sim.socket_path,
           (unsigned long long)disk_bytes);
    fflush(stdout);

    while (!sim_stopping) {
        struct pollfd fds[2];
        int n = 0, listen_at = -1, control_at = -1, event_at = -1;
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
        if (poll(fds, (nfds_t)n, 1000) < 0) {
            if (errno == EINTR) continue;
            die("poll");
        }
        if (listen_at >= 0 && (fds[listen_at].revents & POLLIN)) sim_accept(listener);
        if (control_at >= 0 && fds[control_at].revents) sim_read_requests();
        if (event_at >= 0 && (fds[event_at].revents & POLLIN) && sim_client.to_backend >= 0) {
            uint64_t count;
            if (read(sim_client.to_backend, &count, 8) < 0) say("event read: %s", strerror(errno));
            if (backend.connected) process_requests();
        }
    }
    fprintf(stderr,
            "blkback-sim: requests %ld read %ld written %ld sectors, flushes %ld discards %ld "
            "errors %ld\n",
            backend.requests, backend.sectors_read, backend.sectors_written, backend.flushes,
            backend.discards, backend.errors);
    unlink(sim.socket_path);
    close(disk_fd);
    return 0;
}
