/* TCP load on the kernel's sockets, and the kernel-side servers to compare against:
 * the one tool bench/tcp.sh measures every TCP pair with (kernel↔kernel over a
 * veth, the kernel against `oasis stack` or lwIP over a TAP).
 *
 *   tcp-stream send HOST PORT SECONDS     connect, write as fast as it can for
 *       SECONDS, then shut down its side and wait for the server to close (a discard
 *       server closes at end of input): the time runs until every byte was taken.
 *   tcp-stream recv HOST PORT SECONDS     connect, read (a chargen server) for SECONDS.
 *       Both print: mode=send bytes=N seconds=S gbps=G
 *   tcp-stream connrate HOST PORT SECONDS CONCURRENCY
 *       CONCURRENCY connections at once (epoll): each connects, writes 64 bytes, reads
 *       the 64 echoed bytes and closes (no SO_LINGER: a normal FIN), and a new one
 *       takes its place. Prints: mode=connrate completed=N failures=F seconds=S
 *       unfinished=U conn_per_s=R concurrency=C (U: still under way at the end, not
 *       counted; the first failure's reason on stderr).
 *   tcp-stream serve PORT [LIFETIME]      discard on PORT and chargen on PORT+10 (9 and
 *       19 for `serve 9`, as `oasis stack`), a thread per connection.
 *   tcp-stream echo PORT [LIFETIME]       echo on PORT, one thread (epoll), as the
 *       Oasis stack serves it.
 *
 * Bounded everywhere: a connect, a read or a write that makes no progress for
 * IDLE_SECONDS fails the run (exit 1, with a message); a client that is still running
 * TCP_STREAM_CC=NAME sets every socket's congestion control (TCP_CONGESTION).
 * SECONDS + 30 s after it started is stopped by an alarm (exit 3); a server exits
 * after LIFETIME seconds (default 900). A connection in connrate that has not
 * finished in 3 s counts as a failure and is closed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define IDLE_SECONDS 5
#define CONNRATE_TIMEOUT_NS 3000000000LL
#define MESSAGE 64
#define CHUNK (256 * 1024)

static uint64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (uint64_t)t.tv_sec * 1000000000ULL + (uint64_t)t.tv_nsec;
}

static void fail(const char *what) {
    fprintf(stderr, "tcp-stream: %s: %s\n", what, strerror(errno));
    exit(1);
}

static void on_alarm(int signal) {
    (void)signal;
    static const char message[] = "tcp-stream: still running past its time limit: stopped\n";
    ssize_t ignored = write(2, message, sizeof message - 1);
    (void)ignored;
    _exit(3);
}

static void watchdog(unsigned seconds) {
    signal(SIGALRM, on_alarm);
    alarm(seconds);
}

static struct sockaddr_in address(const char *host, const char *port) {
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(port))};
    if (inet_pton(AF_INET, host, &to.sin_addr) != 1) {
        fprintf(stderr, "tcp-stream: not an IPv4 address: %s\n", host);
        exit(2);
    }
    return to;
}

/* Waits for `events` on fd for at most `ms` milliseconds; 0 on timeout. */
static int wait_for(int fd, short events, int ms) {
    struct pollfd p = {.fd = fd, .events = events};
    int ready;
    do {
        ready = poll(&p, 1, ms);
    } while (ready < 0 && errno == EINTR);
    if (ready < 0) fail("poll");
    return ready;
}

/* A non-blocking connected socket, or exit with a message after IDLE_SECONDS. */
/* TCP_STREAM_CC=NAME: the congestion control of every socket made here (a listener's
 * connections inherit it), whatever the namespace's default (a namespace may only
 * choose among tcp_allowed_congestion_control; a socket of root may take any). */
static void set_congestion(int fd) {
    const char *name = getenv("TCP_STREAM_CC");
    if (fd < 0 || name == NULL || *name == 0) return;
    if (setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, (socklen_t)strlen(name)) != 0)
        fail("setsockopt TCP_CONGESTION");
}

static int connect_to(struct sockaddr_in to) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    set_congestion(fd);
    if (fd < 0) fail("socket");
    if (connect(fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS)
        fail("connect");
    if (!wait_for(fd, POLLOUT, IDLE_SECONDS * 1000)) {
        fprintf(stderr, "tcp-stream: connect: no answer in %d s\n", IDLE_SECONDS);
        exit(1);
    }
    int error = 0;
    socklen_t length = sizeof error;
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length);
    if (error != 0) {
        errno = error;
        fail("connect");
    }
    return fd;
}

static void report(const char *mode, uint64_t bytes, uint64_t elapsed) {
    double seconds = (double)elapsed / 1e9;
    printf("mode=%s bytes=%llu seconds=%.3f gbps=%.3f\n", mode, (unsigned long long)bytes,
           seconds, seconds > 0 ? (double)bytes * 8 / seconds / 1e9 : 0.0);
}

static int run_send(struct sockaddr_in to, double duration) {
    static char buffer[CHUNK];
    memset(buffer, 'x', sizeof buffer);
    int fd = connect_to(to);
    uint64_t start = now_ns(), deadline = start + (uint64_t)(duration * 1e9);
    uint64_t bytes = 0;
    while (now_ns() < deadline) {
        ssize_t n = write(fd, buffer, sizeof buffer);
        if (n > 0) {
            bytes += (uint64_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_for(fd, POLLOUT, IDLE_SECONDS * 1000)) {
                fprintf(stderr, "tcp-stream: send: no progress in %d s\n", IDLE_SECONDS);
                return 1;
            }
        } else {
            fail("write");
        }
    }
    /* The time runs until the server has taken every byte and closed. */
    if (shutdown(fd, SHUT_WR) != 0) fail("shutdown");
    for (;;) {
        if (!wait_for(fd, POLLIN, 10000)) {
            fprintf(stderr, "tcp-stream: send: the server did not close within 10 s\n");
            return 1;
        }
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n == 0) break;
        if (n < 0 && errno != EAGAIN && errno != EINTR) fail("read after shutdown");
    }
    report("send", bytes, now_ns() - start);
    close(fd);
    return 0;
}

static int run_recv(struct sockaddr_in to, double duration) {
    static char buffer[CHUNK];
    int fd = connect_to(to);
    uint64_t start = now_ns(), deadline = start + (uint64_t)(duration * 1e9);
    uint64_t bytes = 0, now;
    while ((now = now_ns()) < deadline) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n > 0) {
            bytes += (uint64_t)n;
        } else if (n == 0) {
            fprintf(stderr, "tcp-stream: recv: the server closed early\n");
            return 1;
        } else if (errno == EAGAIN || errno == EINTR) {
            int ms = (int)((deadline - now) / 1000000) + 1;
            if (!wait_for(fd, POLLIN, ms < IDLE_SECONDS * 1000 ? ms : IDLE_SECONDS * 1000) &&
                now_ns() < deadline) {
                fprintf(stderr, "tcp-stream: recv: nothing for %d s\n", IDLE_SECONDS);
                return 1;
            }
        } else {
            fail("read");
        }
    }
    report("recv", bytes, now_ns() - start);
    close(fd);
    return bytes > 0 ? 0 : 1;
}

/* connrate: one slot per concurrent connection. */
struct slot {
    int fd;
    int writing; /* connecting: waiting to write the message */
    int got;
    uint64_t started;
};

static int first_failure_reported = 0;
static void connrate_failure(const char *what, int error) {
    if (!first_failure_reported) {
        first_failure_reported = 1;
        fprintf(stderr, "tcp-stream: connrate: first failure: %s: %s\n", what,
                error ? strerror(error) : "timed out or closed early");
    }
}

static int run_connrate(struct sockaddr_in to, double duration, int concurrency) {
    int ep = epoll_create1(0);
    if (ep < 0) fail("epoll_create1");
    struct slot *slots = calloc((size_t)concurrency, sizeof *slots);
    char message[MESSAGE], reply[MESSAGE * 4];
    memset(message, 'c', sizeof message);
    uint64_t completed = 0, failures = 0;
    uint64_t start = now_ns(), deadline = start + (uint64_t)(duration * 1e9);

    /* (Re)starts slot i with a new connection; false if the socket could not be made. */
#define OPEN(i)                                                                            \
    do {                                                                                   \
        struct slot *s = &slots[i];                                                        \
        s->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);                           \
        s->writing = 1;                                                                    \
        s->got = 0;                                                                        \
        s->started = now_ns();                                                             \
        if (s->fd < 0) fail("socket");                                                     \
        int one = 1;                                                                       \
        setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);                     \
        if (connect(s->fd, (struct sockaddr *)&to, sizeof to) != 0 && errno != EINPROGRESS) { \
            connrate_failure("connect", errno);                                            \
            failures++;                                                                    \
            close(s->fd);                                                                  \
            s->fd = -1;                                                                    \
        } else {                                                                           \
            struct epoll_event e = {.events = EPOLLOUT, .data.u32 = (uint32_t)(i)};        \
            if (epoll_ctl(ep, EPOLL_CTL_ADD, s->fd, &e) != 0) fail("epoll_ctl");           \
        }                                                                                  \
    } while (0)
#define FINISH(i, ok)                                                                      \
    do {                                                                                   \
        close(slots[i].fd);                                                                \
        slots[i].fd = -1;                                                                  \
        if (ok) completed++; else failures++;                                              \
    } while (0)

    for (int i = 0; i < concurrency; i++) OPEN(i);
    struct epoll_event events[256];
    uint64_t now = now_ns();
    while (now < deadline) {
        int n = epoll_wait(ep, events, 256, 50);
        if (n < 0 && errno != EINTR) fail("epoll_wait");
        for (int k = 0; k < n; k++) {
            int i = (int)events[k].data.u32;
            struct slot *s = &slots[i];
            if (s->fd < 0) continue;
            if (s->writing) {
                int error = 0;
                socklen_t length = sizeof error;
                getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &error, &length);
                if (error != 0 || (events[k].events & (EPOLLERR | EPOLLHUP))) {
                    connrate_failure("connect", error);
                    FINISH(i, 0);
                    continue;
                }
                if (write(s->fd, message, sizeof message) != (ssize_t)sizeof message) {
                    connrate_failure("write", errno);
                    FINISH(i, 0);
                    continue;
                }
                s->writing = 0;
                struct epoll_event e = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
                if (epoll_ctl(ep, EPOLL_CTL_MOD, s->fd, &e) != 0) fail("epoll_ctl");
            } else {
                ssize_t got = read(s->fd, reply, sizeof reply);
                if (got > 0) {
                    s->got += (int)got;
                    if (s->got >= MESSAGE) FINISH(i, s->got == MESSAGE);
                } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                    connrate_failure("read", got == 0 ? 0 : errno);
                    FINISH(i, 0);
                }
            }
        }
        now = now_ns();
        for (int i = 0; i < concurrency; i++) {
            if (slots[i].fd >= 0 && now - slots[i].started > CONNRATE_TIMEOUT_NS) {
                connrate_failure("connection", 0);
                FINISH(i, 0);
            }
            if (slots[i].fd < 0 && now < deadline) OPEN(i);
        }
    }
    double seconds = (double)(now_ns() - start) / 1e9;
    int unfinished = 0;
    for (int i = 0; i < concurrency; i++)
        if (slots[i].fd >= 0) {
            close(slots[i].fd);
            unfinished++;
        }
    printf("mode=connrate completed=%llu failures=%llu unfinished=%d seconds=%.3f "
           "conn_per_s=%.0f concurrency=%d\n",
           (unsigned long long)completed, (unsigned long long)failures, unfinished, seconds,
           (double)completed / seconds, concurrency);
    if (completed == 0) fprintf(stderr, "tcp-stream: connrate: no connection completed\n");
    return completed > 0 ? 0 : 1;
}

/* Servers. */
static int listen_on(int port) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    set_congestion(fd);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&local, sizeof local) != 0 || listen(fd, 1024) != 0)
        fail("listen");
    return fd;
}

/* 95 lines of the RFC 864 pattern (72 characters and CR LF each), as `oasis stack`'s
 * chargen sends it; the buffer holds whole periods so writes continue the pattern. */
#define PERIOD (95 * 74)
static char chargen_block[PERIOD * 37];

static void *discard_connection(void *argument) {
    int fd = (int)(intptr_t)argument;
    static __thread char buffer[CHUNK];
    while (read(fd, buffer, sizeof buffer) > 0) {
    }
    close(fd);
    return NULL;
}

static void *chargen_connection(void *argument) {
    int fd = (int)(intptr_t)argument;
    size_t offset = 0;
    for (;;) {
        ssize_t n = write(fd, chargen_block + offset, sizeof chargen_block - offset);
        if (n <= 0) break;
        offset = (offset + (size_t)n) % PERIOD;
    }
    close(fd);
    return NULL;
}

struct server {
    int fd;
    void *(*serve)(void *);
};

static void *accept_loop(void *argument) {
    struct server *server = argument;
    for (;;) {
        int fd = accept(server->fd, NULL, NULL);
        if (fd < 0) continue;
        /* A peer that stops reading or writing is dropped after 30 s. */
        struct timeval timeout = {.tv_sec = 30};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, sizeof timeout);
        pthread_t thread;
        if (pthread_create(&thread, NULL, server->serve, (void *)(intptr_t)fd) != 0) {
            close(fd);
            continue;
        }
        pthread_detach(thread);
    }
    return NULL;
}

static int run_serve(int port) {
    for (int line = 0; line < 95; line++)
        for (int column = 0; column < 74; column++)
            chargen_block[line * 74 + column] =
                column < 72 ? (char)(32 + (line + column) % 95) : (column == 72 ? '\r' : '\n');
    for (size_t i = PERIOD; i < sizeof chargen_block; i++) chargen_block[i] = chargen_block[i % PERIOD];
    static struct server discard, chargen;
    discard = (struct server){listen_on(port), discard_connection};
    chargen = (struct server){listen_on(port + 10), chargen_connection};
    printf("tcp-stream: discard on %d, chargen on %d\n", port, port + 10);
    fflush(stdout);
    pthread_t thread;
    if (pthread_create(&thread, NULL, accept_loop, &chargen) != 0) fail("pthread_create");
    accept_loop(&discard);
    return 0;
}

static void run_echo(int port) {
    int listener = listen_on(port);
    fcntl(listener, F_SETFL, O_NONBLOCK);
    int ep = epoll_create1(0);
    struct epoll_event e = {.events = EPOLLIN, .data.fd = listener};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, listener, &e) != 0) fail("epoll");
    printf("tcp-stream: echo on %d\n", port);
    fflush(stdout);
    static char buffer[CHUNK];
    struct epoll_event events[256];
    for (;;) {
        int n = epoll_wait(ep, events, 256, -1);
        for (int k = 0; k < n; k++) {
            int fd = events[k].data.fd;
            if (fd == listener) {
                int connection;
                while ((connection = accept4(listener, NULL, NULL, SOCK_NONBLOCK)) >= 0) {
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = connection};
                    if (epoll_ctl(ep, EPOLL_CTL_ADD, connection, &ce) != 0) close(connection);
                }
                continue;
            }
            ssize_t got = read(fd, buffer, sizeof buffer);
            if (got > 0) {
                /* What the socket cannot take at once is dropped with the connection:
                 * connrate's 64-byte messages always fit. */
                if (write(fd, buffer, (size_t)got) != got) close(fd);
            } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                close(fd);
            }
        }
    }
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    const char *mode = argc > 1 ? argv[1] : "";
    if ((!strcmp(mode, "send") || !strcmp(mode, "recv")) && argc == 5) {
        double seconds = atof(argv[4]);
        watchdog((unsigned)seconds + 30);
        struct sockaddr_in to = address(argv[2], argv[3]);
        return !strcmp(mode, "send") ? run_send(to, seconds) : run_recv(to, seconds);
    }
    if (!strcmp(mode, "connrate") && argc == 6) {
        double seconds = atof(argv[4]);
        int concurrency = atoi(argv[5]);
        if (concurrency < 1 || concurrency > 4096) {
            fprintf(stderr, "tcp-stream: concurrency 1 to 4096\n");
            return 2;
        }
        watchdog((unsigned)seconds + 30);
        return run_connrate(address(argv[2], argv[3]), seconds, concurrency);
    }
    if ((!strcmp(mode, "serve") || !strcmp(mode, "echo")) && (argc == 3 || argc == 4)) {
        watchdog(argc == 4 ? (unsigned)atoi(argv[3]) : 900);
        if (!strcmp(mode, "serve")) return run_serve(atoi(argv[2]));
        run_echo(atoi(argv[2]));
    }
    fprintf(stderr,
            "usage: tcp-stream send|recv HOST PORT SECONDS\n"
            "       tcp-stream connrate HOST PORT SECONDS CONCURRENCY\n"
            "       tcp-stream serve|echo PORT [LIFETIME]\n");
    return 2;
}
