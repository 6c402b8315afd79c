#include "ring_reference.h"

#define OASIS_RING_REFERENCE_DEFINE(name)                                                   \
    void ref_##name##_front_init(name##_front_ring_t *ring, void *page, unsigned bytes) {   \
        name##_sring_t *shared = page;                                                      \
        SHARED_RING_INIT(shared);                                                           \
        FRONT_RING_INIT(ring, shared, bytes);                                               \
    }                                                                                       \
    void ref_##name##_front_attach(name##_front_ring_t *ring, void *page, unsigned bytes) { \
        name##_sring_t *shared = page;                                                      \
        FRONT_RING_ATTACH(ring, shared, 0, bytes);                                          \
    }                                                                                       \
    void ref_##name##_back_attach(name##_back_ring_t *ring, void *page, unsigned bytes) {   \
        name##_sring_t *shared = page;                                                      \
        BACK_RING_ATTACH(ring, shared, 0, bytes);                                           \
    }                                                                                       \
    int ref_##name##_put_request(name##_front_ring_t *ring, const name##_request_t *request) { \
        if (RING_FULL(ring)) return 0;                                                      \
        *RING_GET_REQUEST(ring, ring->req_prod_pvt) = *request;                             \
        ring->req_prod_pvt++;                                                               \
        return 1;                                                                           \
    }                                                                                       \
    int ref_##name##_push_requests(name##_front_ring_t *ring) {                             \
        int notify;                                                                         \
        RING_PUSH_REQUESTS_AND_CHECK_NOTIFY(ring, notify);                                  \
        return notify;                                                                      \
    }                                                                                       \
    unsigned ref_##name##_unconsumed_responses(name##_front_ring_t *ring) {                 \
        return RING_HAS_UNCONSUMED_RESPONSES(ring);                                         \
    }                                                                                       \
    void ref_##name##_take_response(name##_front_ring_t *ring, name##_response_t *response) { \
        RING_COPY_RESPONSE(ring, ring->rsp_cons, response);                                 \
        ring->rsp_cons++;                                                                   \
    }                                                                                       \
    int ref_##name##_final_check_responses(name##_front_ring_t *ring) {                     \
        int work;                                                                           \
        RING_FINAL_CHECK_FOR_RESPONSES(ring, work);                                         \
        return work;                                                                        \
    }                                                                                       \
    unsigned ref_##name##_unconsumed_requests(name##_back_ring_t *ring) {                   \
        return RING_HAS_UNCONSUMED_REQUESTS(ring);                                          \
    }                                                                                       \
    void ref_##name##_take_request(name##_back_ring_t *ring, name##_request_t *request) {   \
        RING_COPY_REQUEST(ring, ring->req_cons, request);                                   \
        ring->req_cons++;                                                                   \
    }                                                                                       \
    void ref_##name##_put_response(name##_back_ring_t *ring, const name##_response_t *response) { \
        *RING_GET_RESPONSE(ring, ring->rsp_prod_pvt) = *response;                           \
        ring->rsp_prod_pvt++;                                                               \
    }                                                                                       \
    int ref_##name##_push_responses(name##_back_ring_t *ring) {                             \
        int notify;                                                                         \
        RING_PUSH_RESPONSES_AND_CHECK_NOTIFY(ring, notify);                                 \
        return notify;                                                                      \
    }                                                                                       \
    int ref_##name##_final_check_requests(name##_back_ring_t *ring) {                       \
        int work;                                                                           \
        RING_FINAL_CHECK_FOR_REQUESTS(ring, work);                                          \
        return work;                                                                        \
    }

OASIS_RING_REFERENCE_DEFINE(netif_tx)
OASIS_RING_REFERENCE_DEFINE(netif_rx)
