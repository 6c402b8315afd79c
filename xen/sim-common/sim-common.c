// sim-common: xenstored, grants, the event channel and the client socket of a
// simulated dom0 (see sim-common.h).

#define _GNU_SOURCE
#include "sim-common.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

struct sim_options sim = {.name = "sim", .frontend_domid = 1, .pages = 2048};
struct sim_client sim_client = {
    .control = -1, .watch = -1, .memory_fd = -1, .to_frontend = -1, .to_backend = -1};
char sim_frontend_path[128];
volatile int sim_stopping;

static struct node {
    char *path, *value;
} nodes[MAX_NODES];
static struct watch {
    char *path, *token;
} watches[MAX_WATCHES];

void say(const char *format, ...) {
    if (!sim.verbose) return;
    va_list arguments;
    va_start(arguments, format);
    fprintf(stderr, "%s: ", sim.name);
    vfprintf(stderr, format, arguments);
    fputc('\n', stderr);
    va_end(arguments);
}

void die(const char *what) {
    fprintf(stderr, "%s: %s: %s\n", sim.name, what, strerror(errno));
    exit(1);
}

// ---------------------------------------------------------------------------------
// The store.

static void fire_watches(const char *path) {
    for (int i = 0; i < MAX_WATCHES; i++) {
        struct watch *w = &watches[i];
        if (!w->path || sim_client.watch < 0) continue;
        size_t length = strlen(w->path);
        if (strncmp(path, w->path, length) != 0 || (path[length] != 0 && path[length] != '/'))
            continue;
        char line[512];
        int n = snprintf(line, sizeof line, "%s %s\n", path, w->token);
        if (n > 0 && n < (int)sizeof line)
            (void)send(sim_client.watch, line, (size_t)n, MSG_NOSIGNAL);
    }
}

const char *store_read(const char *path) {
    for (int i = 0; i < MAX_NODES; i++)
        if (nodes[i].path && strcmp(nodes[i].path, path) == 0) return nodes[i].value;
    return NULL;
}

int store_write(const char *path, const char *value) {
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

void store_remove(const char *path) {
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

void node_write(const char *directory, const char *name, const char *format, ...) {
    char path[256], value[256];
    va_list arguments;
    va_start(arguments, format);
    vsnprintf(value, sizeof value, format, arguments);
    va_end(arguments);
    snprintf(path, sizeof path, "%s/%s", directory, name);
    store_write(path, value);
}

const char *node_read(const char *directory, const char *name) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", directory, name);
    return store_read(path);
}

int read_unsigned(const char *directory, const char *name, unsigned long *value) {
    const char *text = node_read(directory, name);
    if (!text || !*text) return -1;
    char *end;
    errno = 0;
    *value = strtoul(text, &end, 10);
    return (*end || errno) ? -1 : 0;
}

// ---------------------------------------------------------------------------------
// Grants and event channels.

uint8_t *granted_page(uint32_t reference, int writable) {
    if (!sim_client.memory || reference == 0 || reference >= sim.pages) return NULL;
    uint8_t access = __atomic_load_n(&sim_client.memory[reference], __ATOMIC_ACQUIRE);
    if (!(access & 1) || (writable && !(access & 2))) return NULL;
    return sim_client.memory + (size_t)reference * PAGE;
}

void *map_granted_pages(const uint32_t *references, unsigned count, int writable) {
    if (count == 0 || sim_client.memory_fd < 0) return NULL;
    for (unsigned i = 0; i < count; i++)
        if (!granted_page(references[i], writable)) return NULL;
    size_t bytes = (size_t)count * PAGE;
    uint8_t *area = mmap(NULL, bytes, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (area == MAP_FAILED) return NULL;
    int protection = PROT_READ | (writable ? PROT_WRITE : 0);
    for (unsigned i = 0; i < count; i++) {
        void *page = mmap(area + (size_t)i * PAGE, PAGE, protection, MAP_SHARED | MAP_FIXED,
                          sim_client.memory_fd, (off_t)references[i] * PAGE);
        if (page == MAP_FAILED) {
            munmap(area, bytes);
            return NULL;
        }
    }
    return area;
}

void unmap_granted_pages(void *address, unsigned count) {
    if (address) munmap(address, (size_t)count * PAGE);
}

void notify_frontend(void) {
    uint64_t one = 1;
    if (sim_client.to_frontend >= 0 && write(sim_client.to_frontend, &one, 8) != 8)
        say("notify failed");
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
    return sendmsg(sim_client.control, &message, MSG_NOSIGNAL) < 0 ? -1 : 0;
}

static void end_session(void) {
    device_disconnect();
    for (int i = 0; i < MAX_WATCHES; i++) {
        free(watches[i].path);
        free(watches[i].token);
        watches[i].path = watches[i].token = NULL;
    }
    int *fds[] = {&sim_client.control, &sim_client.watch, &sim_client.memory_fd,
                  &sim_client.to_frontend, &sim_client.to_backend};
    for (size_t i = 0; i < sizeof fds / sizeof fds[0]; i++) {
        if (*fds[i] >= 0) close(*fds[i]);
        *fds[i] = -1;
    }
    if (sim_client.memory) munmap(sim_client.memory, (size_t)sim.pages * PAGE);
    sim_client.memory = NULL;
    sim_client.port = 0;
    sim_client.input_length = 0;
    device_session_ended();
    if (sim.once) sim_stopping = 1;
}

static void begin_session(int fd) {
    sim_client.control = fd;
    int pair[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair) < 0) die("socketpair");
    sim_client.watch = pair[0];
    fcntl(sim_client.watch, F_SETFL, O_NONBLOCK);
    sim_client.memory_fd = memfd_create("oasis-xen-grants", MFD_CLOEXEC);
    if (sim_client.memory_fd < 0 || ftruncate(sim_client.memory_fd, (off_t)sim.pages * PAGE) < 0)
        die("memfd");
    sim_client.memory = mmap(NULL, (size_t)sim.pages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED,
                             sim_client.memory_fd, 0);
    if (sim_client.memory == MAP_FAILED) die("mmap");
    char hello[64];
    snprintf(hello, sizeof hello, "hello %u %u\n", sim.frontend_domid, sim.pages);
    int fds[2] = {sim_client.memory_fd, pair[1]};
    if (send_line(hello, fds, 2) < 0) say("hello: %s", strerror(errno));
    close(pair[1]);
    say("frontend connected");
}

// A relative path is relative to the frontend domain's home.
static void absolute(const char *path, char *out, size_t size) {
    if (path[0] == '/')
        snprintf(out, size, "%s", path);
    else
        snprintf(out, size, "/local/domain/%u/%s", sim.frontend_domid, path);
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
        snprintf(state_path, sizeof state_path, "%s/state", sim_frontend_path);
        if (!strcmp(path, state_path)) device_frontend_changed();
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
        if (n > 0 && n < (int)sizeof event)
            (void)send(sim_client.watch, event, (size_t)n, MSG_NOSIGNAL);
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
        if (sim_client.port != 0) {
            send_line("error one event channel per device in this simulator\n", NULL, 0);
            return;
        }
        sim_client.to_frontend = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        sim_client.to_backend = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (sim_client.to_frontend < 0 || sim_client.to_backend < 0) die("eventfd");
        sim_client.port = 5;
        int fds[2] = {sim_client.to_frontend, sim_client.to_backend};
        snprintf(reply, sizeof reply, "ok %u\n", sim_client.port);
        send_line(reply, fds, 2);
    } else if (!strcmp(verb, "evtchn-close") && argument) {
        if (sim_client.port != 0 && (unsigned)atoi(argument) == sim_client.port) {
            device_disconnect();
            close(sim_client.to_frontend);
            close(sim_client.to_backend);
            sim_client.to_frontend = sim_client.to_backend = -1;
            sim_client.port = 0;
        }
        send_line("ok\n", NULL, 0);
    } else {
        send_line("error unknown request\n", NULL, 0);
    }
}

void sim_read_requests(void) {
    ssize_t received = recv(sim_client.control, sim_client.input + sim_client.input_length,
                            sizeof sim_client.input - sim_client.input_length - 1, 0);
    if (received <= 0) {
        end_session();
        return;
    }
    sim_client.input_length += (size_t)received;
    char *newline;
    while ((newline = memchr(sim_client.input, '\n', sim_client.input_length))) {
        *newline = 0;
        handle_request(sim_client.input);
        if (sim_client.control < 0) return;
        size_t used = (size_t)(newline - sim_client.input) + 1;
        memmove(sim_client.input, sim_client.input + used, sim_client.input_length - used);
        sim_client.input_length -= used;
    }
    if (sim_client.input_length >= sizeof sim_client.input - 1) end_session();
}

int sim_listen(void) {
    int listener = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_un address = {.sun_family = AF_UNIX};
    if (strlen(sim.socket_path) >= sizeof address.sun_path) {
        errno = ENAMETOOLONG;
        die("socket path");
    }
    strcpy(address.sun_path, sim.socket_path);
    unlink(sim.socket_path);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 ||
        listen(listener, 4) < 0)
        die("listen");
    return listener;
}

void sim_accept(int listener) {
    int fd = accept4(listener, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0) begin_session(fd);
}

static void on_signal(int signal) {
    (void)signal;
    sim_stopping = 1;
}

void sim_install_signals(void) {
    struct sigaction action = {.sa_handler = on_signal};
    sigaction(SIGINT, &action, NULL);
    sigaction(SIGTERM, &action, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* A simulator started by a test runner inherits its signal mask, which may block
       SIGINT and SIGTERM; unblock them, or a stop request would never arrive. */
    sigset_t stops;
    sigemptyset(&stops);
    sigaddset(&stops, SIGINT);
    sigaddset(&stops, SIGTERM);
    sigprocmask(SIG_UNBLOCK, &stops, NULL);
}
