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
OASIS_RING_REFERENCE_DEFINE(blkif)

#include <stddef.h>

struct ref_blkif_layout ref_blkif_layout(void) {
    struct ref_blkif_layout l = {
        .request_size = sizeof(struct blkif_request),
        .request_operation = offsetof(struct blkif_request, operation),
        .request_nr_segments = offsetof(struct blkif_request, nr_segments),
        .request_handle = offsetof(struct blkif_request, handle),
        .request_id = offsetof(struct blkif_request, id),
        .request_sector_number = offsetof(struct blkif_request, sector_number),
        .request_seg = offsetof(struct blkif_request, seg),
        .segment_size = sizeof(struct blkif_request_segment),
        .segment_gref = offsetof(struct blkif_request_segment, gref),
        .segment_first_sect = offsetof(struct blkif_request_segment, first_sect),
        .segment_last_sect = offsetof(struct blkif_request_segment, last_sect),
        .discard_size = sizeof(struct blkif_request_discard),
        .discard_flag = offsetof(struct blkif_request_discard, flag),
        .discard_handle = offsetof(struct blkif_request_discard, handle),
        .discard_id = offsetof(struct blkif_request_discard, id),
        .discard_sector_number = offsetof(struct blkif_request_discard, sector_number),
        .discard_nr_sectors = offsetof(struct blkif_request_discard, nr_sectors),
        .indirect_size = sizeof(struct blkif_request_indirect),
        .indirect_indirect_op = offsetof(struct blkif_request_indirect, indirect_op),
        .indirect_nr_segments = offsetof(struct blkif_request_indirect, nr_segments),
        .indirect_id = offsetof(struct blkif_request_indirect, id),
        .indirect_sector_number = offsetof(struct blkif_request_indirect, sector_number),
        .indirect_handle = offsetof(struct blkif_request_indirect, handle),
        .indirect_grefs = offsetof(struct blkif_request_indirect, indirect_grefs),
        .response_size = sizeof(struct blkif_response),
        .response_id = offsetof(struct blkif_response, id),
        .response_operation = offsetof(struct blkif_response, operation),
        .response_status = offsetof(struct blkif_response, status),
        .entry_size = sizeof(union blkif_sring_entry),
        .ring_size_one_page = __CONST_RING_SIZE(blkif, 4096),
    };
    return l;
}
