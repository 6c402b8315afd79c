#include "cxen.h"

#include <errno.h>
#include <stdarg.h>
#include <unistd.h>
#include <sys/socket.h>

static void quiet_vmessage(struct xentoollog_logger *logger, xentoollog_level level,
                           int errnoval, const char *context, const char *format,
                           va_list arguments) {
    (void)logger;
    (void)level;
    (void)errnoval;
    (void)context;
    (void)format;
    (void)arguments;
}

static void quiet_progress(struct xentoollog_logger *logger, const char *context,
                           const char *doing_what, int percent, unsigned long done,
                           unsigned long total) {
    (void)logger;
    (void)context;
    (void)doing_what;
    (void)percent;
    (void)done;
    (void)total;
}

static void quiet_destroy(struct xentoollog_logger *logger) { (void)logger; }

static xentoollog_logger quiet_logger = {
    .vmessage = quiet_vmessage,
    .progress = quiet_progress,
    .destroy = quiet_destroy,
};

xentoollog_logger *oasis_xen_quiet_logger(void) { return &quiet_logger; }

int oasis_xen_errno(void) { return errno; }

unsigned int oasis_xen_ring_selftest(void *page, unsigned int *ring_size, int *notify) {
    netif_tx_sring_t *shared = page;
    netif_tx_front_ring_t front;

    SHARED_RING_INIT(shared);
    FRONT_RING_INIT(&front, shared, XC_PAGE_SIZE);

    netif_tx_request_t *request = RING_GET_REQUEST(&front, front.req_prod_pvt);
    request->gref = 8;
    request->offset = 0;
    request->flags = 0;
    request->id = 0;
    request->size = 60;
    front.req_prod_pvt++;

    int should_notify = 0;
    RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(&front, should_notify);
    *ring_size = RING_SIZE(&front);
    *notify = should_notify;
    return shared->req_prod;
}

long oasis_xen_send_with_fds(int socket, const void *bytes, size_t length, const int *fds,
                             int count) {
    if (count < 0 || count > 8) {
        errno = EINVAL;
        return -1;
    }
    struct iovec vector = {.iov_base = (void *)bytes, .iov_len = length};
    union {
        char buffer[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } control;
    memset(&control, 0, sizeof(control));
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
    return (long)sendmsg(socket, &message, MSG_NOSIGNAL);
}

long oasis_xen_receive_with_fds(int socket, void *bytes, size_t length, int *fds,
                                int capacity, int *count) {
    struct iovec vector = {.iov_base = bytes, .iov_len = length};
    union {
        char buffer[CMSG_SPACE(8 * sizeof(int))];
        struct cmsghdr align;
    } control;
    struct msghdr message = {.msg_iov = &vector,
                             .msg_iovlen = 1,
                             .msg_control = control.buffer,
                             .msg_controllen = sizeof(control.buffer)};
    *count = 0;
    long received = (long)recvmsg(socket, &message, MSG_CMSG_CLOEXEC);
    if (received < 0) return received;
    for (struct cmsghdr *header = CMSG_FIRSTHDR(&message); header != NULL;
         header = CMSG_NXTHDR(&message, header)) {
        if (header->cmsg_level != SOL_SOCKET || header->cmsg_type != SCM_RIGHTS) continue;
        int carried = (int)((header->cmsg_len - CMSG_LEN(0)) / sizeof(int));
        int *passed = (int *)(void *)CMSG_DATA(header);
        for (int index = 0; index < carried; index++) {
            if (*count < capacity) {
                fds[(*count)++] = passed[index];
            } else {
                close(passed[index]);  // more than asked for: never leak them
            }
        }
    }
    return received;
}
