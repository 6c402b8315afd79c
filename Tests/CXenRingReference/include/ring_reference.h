// Xen's own io/ring.h macros, wrapped one call per macro, so that the Swift ring tests
// can drive either end of a netif or blkif ring with the reference implementation on the same
// memory the Swift ring uses. Test-only.
#ifndef OASIS_RING_REFERENCE_H
#define OASIS_RING_REFERENCE_H

#include <cxen.h>
#include <xen/io/blkif.h>

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
OASIS_RING_REFERENCE_DECLARE(blkif)

/// offsetof and sizeof of io/blkif.h's structs, as the C compiler lays them out, for the
/// layout test (the Swift importer cannot name a field of a union member).
struct ref_blkif_layout {
    unsigned request_size, request_operation, request_nr_segments, request_handle, request_id,
        request_sector_number, request_seg;
    unsigned segment_size, segment_gref, segment_first_sect, segment_last_sect;
    unsigned discard_size, discard_flag, discard_handle, discard_id, discard_sector_number,
        discard_nr_sectors;
    unsigned indirect_size, indirect_indirect_op, indirect_nr_segments, indirect_id,
        indirect_sector_number, indirect_handle, indirect_grefs;
    unsigned response_size, response_id, response_operation, response_status;
    unsigned entry_size, ring_size_one_page;
};
struct ref_blkif_layout ref_blkif_layout(void);

#endif
