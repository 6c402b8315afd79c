// sim-common: the part of dom0 every simulated backend plays alike — xenstored (a
// small tree with read/write/watch served on a unix socket), the grant memory (a memfd
// both processes map, page 0 the grant table) and the one event channel (a pair of
// eventfds) — shared by xen/netback-sim and xen/blkback-sim. xen/README.md describes
// the socket protocol.
//
// A simulator links this file and defines the three device hooks below; it keeps its
// own main loop (polling sim_client.control, sim_client.to_backend and its own
// descriptors) and calls sim_accept and sim_read_requests from it.
#ifndef OASIS_SIM_COMMON_H
#define OASIS_SIM_COMMON_H

#include <stddef.h>
#include <stdint.h>

#define PAGE 4096
#define MAX_NODES 256
#define MAX_WATCHES 32

// What the command line set, common to every simulator.
struct sim_options {
    const char *name;  // "netback-sim": the prefix of every message
    const char *socket_path;
    unsigned frontend_domid, pages;
    int once, verbose;
};
extern struct sim_options sim;

// The one client session.
struct sim_client {
    int control, watch;  // our ends of the control and watch sockets; -1 when none
    char input[8192];
    size_t input_length;
    uint8_t *memory;  // page 0: the grant table
    int memory_fd;
    unsigned port;  // the one event channel; 0 when none
    int to_frontend, to_backend;
};
extern struct sim_client sim_client;

// The device's frontend directory (/local/domain/D/device/KIND/N); the store calls
// device_frontend_changed when its state node is written.
extern char sim_frontend_path[128];
// Set by SIGINT/SIGTERM (sim_install_signals) or by the end of a --once session.
extern volatile int sim_stopping;

// The device hooks each simulator defines.
void device_frontend_changed(void);       // the frontend wrote its state
void device_disconnect(void);             // its event channel closed, or it left
void device_session_ended(void);          // the client left: reset, recreate the device

void say(const char *format, ...) __attribute__((format(printf, 1, 2)));
void die(const char *what) __attribute__((noreturn));

// The store.
const char *store_read(const char *path);
int store_write(const char *path, const char *value);
void store_remove(const char *path);
void node_write(const char *directory, const char *name, const char *format, ...)
    __attribute__((format(printf, 3, 4)));
const char *node_read(const char *directory, const char *name);
int read_unsigned(const char *directory, const char *name, unsigned long *value);

// Grants: the page `reference` names, if the frontend granted it (writable when asked).
uint8_t *granted_page(uint32_t reference, int writable);
// Maps `count` granted pages side by side (as xenbus_map_ring_valloc does for a
// multi-page ring); NULL if any is not granted. Undo with unmap_granted_pages.
void *map_granted_pages(const uint32_t *references, unsigned count, int writable);
void unmap_granted_pages(void *address, unsigned count);

void notify_frontend(void);

// The socket: listen at sim.socket_path, accept a client, serve its requests.
int sim_listen(void);
void sim_accept(int listener);
void sim_read_requests(void);
void sim_install_signals(void);

#endif
