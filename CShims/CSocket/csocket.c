#define _GNU_SOURCE
#include <errno.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "csocket.h"

_Static_assert(sizeof(struct oasis_mmsghdr) == sizeof(struct mmsghdr), "mmsghdr layout");
_Static_assert(offsetof(struct oasis_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len),
               "mmsghdr layout");

int oasis_recvmmsg(int fd, struct oasis_mmsghdr *messages, unsigned int count) {
    return recvmmsg(fd, (struct mmsghdr *)messages, count, MSG_DONTWAIT, NULL);
}

int oasis_sendmmsg(int fd, struct oasis_mmsghdr *messages, unsigned int count) {
    return (int)syscall(SYS_sendmmsg, fd, messages, count, MSG_DONTWAIT);
}

long oasis_recvfrom(int fd, void *buffer, size_t length, struct sockaddr *from,
                    socklen_t *fromLength) {
    return syscall(SYS_recvfrom, fd, buffer, length, MSG_DONTWAIT | MSG_TRUNC, from, fromLength);
}

int oasis_accept4(int fd, struct sockaddr *from, socklen_t *fromLength) {
    return accept4(fd, from, fromLength, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

int oasis_socket_errno(void) { return errno; }
