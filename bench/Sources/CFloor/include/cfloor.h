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

#ifndef OASIS_CFLOOR_OPAQUE
#define OASIS_CFLOOR_OPAQUE
/// Returns `pointer`, after telling the compiler that memory may have changed: keeps
/// a measured loop from being folded into one computation.
const void *oasis_floor_opaque(const void *pointer);
#endif

#ifndef OASIS_CFLOOR_SINK
#define OASIS_CFLOOR_SINK
#include <stdint.h>
/// Consumes a value the compiler must compute: the end of a measured computation.
void oasis_floor_sink(uint64_t value);
#endif

#ifndef OASIS_CFLOOR_HEAP
#define OASIS_CFLOOR_HEAP
#include <stddef.h>
/// Bytes of the heap in use (glibc's mallinfo2 uordblks): what a figure of memory per
/// connection reads before and after.
size_t oasis_heap_in_use(void);
/// The usable size of the allocation at `pointer` (malloc_usable_size).
size_t oasis_allocation_size(const void *pointer);
#endif
