#include "cxen.h"

#include <errno.h>
#include <stdarg.h>

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
