// Xen's own io/ring.h macros, wrapped one call per macro, so that the Swift ring tests
// can drive either end of a netif ring with the reference implementation on the same
// memory the Swift ring uses. Test-only.
#ifndef OASIS_RING_REFERENCE_H
#define OASIS_RING_REFERENCE_H

#include <cxen.h>

#define OASIS_RING_REFERENCE_DECLARE(name)                                                  \
    /* SHARED_RING_INIT + FRONT_RING_INIT over `bytes` at `page`. */                        \
    void ref_##name##_front_init(name##_front_ring_t *ring, void *page, unsigned bytes);    \
    /* FRONT_RING_ATTACH at index 0 (the shared page is left as it is). */                  \
    void ref_##name##_front_attach(name##_front_ring_t *ring, void *page, unsigned bytes);  \
    /* BACK_RING_ATTACH at index 0. */                                                      \
    void ref_##name##_back_attach(name##_back_ring_t *ring, void *page, unsigned bytes);    \
    /* *RING_GET_REQUEST(req_prod_pvt++) = *request; returns 0 when RING_FULL. */           \
    int ref_##name##_put_request(name##_front_ring_t *ring, const name##_request_t *request); \
    /* RING_PUSH_REQUESTS_AND_CHECK_NOTIFY: the notify decision. */                         \
    int ref_##name##_push_requests(name##_front_ring_t *ring);                              \
    /* RING_HAS_UNCONSUMED_RESPONSES. */                                                    \
    unsigned ref_##name##_unconsumed_responses(name##_front_ring_t *ring);                  \
    /* RING_COPY_RESPONSE(rsp_cons++). */                                                   \
    void ref_##name##_take_response(name##_front_ring_t *ring, name##_response_t *response); \
    /* RING_FINAL_CHECK_FOR_RESPONSES. */                                                   \
    int ref_##name##_final_check_responses(name##_front_ring_t *ring);                      \
    /* RING_HAS_UNCONSUMED_REQUESTS. */                                                     \
    unsigned ref_##name##_unconsumed_requests(name##_back_ring_t *ring);                    \
    /* RING_COPY_REQUEST(req_cons++). */                                                    \
    void ref_##name##_take_request(name##_back_ring_t *ring, name##_request_t *request);    \
    /* *RING_GET_RESPONSE(rsp_prod_pvt++) = *response. */                                   \
    void ref_##name##_put_response(name##_back_ring_t *ring, const name##_response_t *response); \
    /* RING_PUSH_RESPONSES_AND_CHECK_NOTIFY: the notify decision. */                        \
    int ref_##name##_push_responses(name##_back_ring_t *ring);                              \
    /* RING_FINAL_CHECK_FOR_REQUESTS. */                                                    \
    int ref_##name##_final_check_requests(name##_back_ring_t *ring);

OASIS_RING_REFERENCE_DECLARE(netif_tx)
OASIS_RING_REFERENCE_DECLARE(netif_rx)

#endif
