#include "cfloor.h"
#include <string.h>
#include <stdint.h>

void oasis_floor_memcpy(void *dst, const void *src, size_t count, size_t rounds) {
    for (size_t i = 0; i < rounds; i++) {
        memcpy(dst, src, count);
        /* Keep the compiler from eliding repeated copies of the same bytes. */
        __asm__ volatile("" : : "r"(dst) : "memory");
    }
}

unsigned short oasis_floor_checksum16(const void *data, size_t count) {
    const uint8_t *p = data;
    uint32_t sum = 0;
    while (count > 1) {
        sum += (uint32_t)((p[0] << 8) | p[1]);
        p += 2;
        count -= 2;
    }
    if (count) sum += (uint32_t)(p[0] << 8);
    while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
    return (unsigned short)~sum;
}

#include <stdlib.h>

void oasis_floor_malloc_page(void) {
    void *volatile page = malloc(4096);
    free(page);
}

const void *oasis_floor_opaque(const void *pointer) {
    __asm__ volatile("" : : "r"(pointer) : "memory");
    return pointer;
}

volatile uint64_t oasis_floor_sunk;

void oasis_floor_sink(uint64_t value) {
    oasis_floor_sunk = value;
}

#include <malloc.h>

size_t oasis_heap_in_use(void) { return mallinfo2().uordblks; }

size_t oasis_allocation_size(const void *pointer) { return malloc_usable_size((void *)pointer); }
