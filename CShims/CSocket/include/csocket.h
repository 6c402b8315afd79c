#ifndef OASIS_CSOCKET_H
#define OASIS_CSOCKET_H
#include <sys/socket.h>

/* `struct mmsghdr`, `recvmmsg` and `sendmmsg` are GNU extensions that Swift's Glibc
 * module does not export. This is the same layout under our own name (checked in
 * csocket.c), and thin calls to the real functions. */
struct oasis_mmsghdr {
    struct msghdr msg_hdr;
    unsigned int msg_len;
};

/* recvmmsg(fd, messages, count, MSG_DONTWAIT, NULL): -1 with errno on failure. */
int oasis_recvmmsg(int fd, struct oasis_mmsghdr *messages, unsigned int count);
/* sendmmsg(fd, messages, count, MSG_DONTWAIT): -1 with errno on failure. Made as a plain
 * system call, as is oasis_recvfrom: glibc's wrappers are thread cancellation points and
 * bracket every call with two updates of the thread's cancellation state, which an event
 * loop that never cancels threads pays for nothing (about 5 % of a DNS server's user
 * time per query, measured with perf). */
int oasis_sendmmsg(int fd, struct oasis_mmsghdr *messages, unsigned int count);
/* recvfrom(fd, buffer, length, MSG_DONTWAIT | MSG_TRUNC, from, fromLength): -1 with errno
 * on failure. The result is the datagram's whole length, also when only `length` bytes
 * of it fitted in `buffer`. */
long oasis_recvfrom(int fd, void *buffer, size_t length, struct sockaddr *from,
                    socklen_t *fromLength);
/* accept4(fd, from, fromLength, SOCK_NONBLOCK | SOCK_CLOEXEC): a GNU extension Glibc does
 * not export. The accepted socket is non-blocking and close-on-exec from the start. */
int oasis_accept4(int fd, struct sockaddr *from, socklen_t *fromLength);
/* errno, for Swift. */
int oasis_socket_errno(void);
#endif
