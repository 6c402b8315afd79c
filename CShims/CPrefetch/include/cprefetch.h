// Cache hints Swift has no spelling for. The DNS engine asks for the parts of its
// store a batch of queries will read before it answers the first of them, so the
// batch's cache misses overlap instead of following one another.

#ifndef OASIS_CPREFETCH_H
#define OASIS_CPREFETCH_H

/// Starts loading the cache line holding `address` for a read, into every cache level.
/// Only a hint: never faults, whatever the address.
static inline void oasis_prefetch(const void *address) {
    __builtin_prefetch(address, 0, 3);
}

#endif
