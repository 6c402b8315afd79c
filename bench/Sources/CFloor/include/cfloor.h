#ifndef OASIS_CFLOOR_H
#define OASIS_CFLOOR_H
#include <stddef.h>

/// The memory-bandwidth floor: copy `count` bytes, `rounds` times.
void oasis_floor_memcpy(void *dst, const void *src, size_t count, size_t rounds);

/// The obvious C Internet checksum (RFC 1071 reference loop, 16 bits per step),
/// as a reference point for ours.
unsigned short oasis_floor_checksum16(const void *data, size_t count);
#endif

#ifndef OASIS_CFLOOR_MALLOC
#define OASIS_CFLOOR_MALLOC
/// malloc and free of one 4 KiB page: what a pool is there to avoid.
void oasis_floor_malloc_page(void);
#endif
