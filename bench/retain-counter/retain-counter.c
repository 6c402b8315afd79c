// An LD_PRELOAD counter of Swift reference counting, as malloc-interposer counts
// allocations: every swift_retain/swift_release (and their _n, unowned and
// bridge-object forms) called from outside the Swift runtime is counted while
// counting is on. The bench turns it on around a measured body through
// oasis_refcount_enable/oasis_refcount_read, which it finds with dlsym; without the
// preload those symbols are absent and the figure is reported as n/a.
//
// Built by bench/run.sh: gcc -O2 -shared -fPIC -o retain-counter.so retain-counter.c -ldl
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

static atomic_int enabled;
static atomic_uint_least64_t retains, releases;

// With OASIS_REFCOUNT_SITES set, the callers of swift_retain while counting is on are
// tallied and the busiest printed at exit (symbolised with dladdr): where the retains
// of a measured path come from. One thread's worth of bookkeeping, no locks: a
// diagnostic, not a measurement.
#define SITES 4096
static void *site_address[SITES];
static uint64_t site_count[SITES];
static int sites_on = -1;

static void tally(void *caller) {
    if (sites_on < 0) sites_on = getenv("OASIS_REFCOUNT_SITES") != NULL;
    if (!sites_on) return;
    size_t slot = ((uintptr_t)caller >> 2) % SITES;
    for (int probe = 0; probe < SITES; probe++, slot = (slot + 1) % SITES) {
        if (site_address[slot] == caller || site_address[slot] == NULL) {
            site_address[slot] = caller;
            site_count[slot]++;
            return;
        }
    }
}

__attribute__((destructor)) static void print_sites(void) {
    if (sites_on <= 0) return;
    for (int rank = 0; rank < 25; rank++) {
        int best = -1;
        for (int i = 0; i < SITES; i++)
            if (site_address[i] && (best < 0 || site_count[i] > site_count[best])) best = i;
        if (best < 0 || site_count[best] == 0) break;
        // The caller's file and its offset in it: `addr2line -f -C -e FILE OFFSET`
        // names it (bench/README.md).
        Dl_info info;
        const char *file = "?";
        uintptr_t offset = (uintptr_t)site_address[best];
        if (dladdr(site_address[best], &info) && info.dli_fname) {
            file = info.dli_fname;
            offset -= (uintptr_t)info.dli_fbase;
        }
        fprintf(stderr, "retain site %10llu  %s %#lx\n", (unsigned long long)site_count[best],
                file, (unsigned long)offset);
        site_count[best] = 0;
    }
}

#define COUNT(counter, n) \
    do { if (atomic_load_explicit(&enabled, memory_order_relaxed)) { \
        atomic_fetch_add_explicit(&(counter), (n), memory_order_relaxed); \
        if (&(counter) == &retains) tally(__builtin_return_address(0)); } } while (0)

typedef void *(*retain_fn)(void *);
typedef void (*release_fn)(void *);
typedef void *(*retain_n_fn)(void *, uint32_t);
typedef void (*release_n_fn)(void *, uint32_t);

#define NEXT(name, type) \
    static type next_##name; \
    if (!next_##name) next_##name = (type)dlsym(RTLD_NEXT, #name)

void *swift_retain(void *object) {
    NEXT(swift_retain, retain_fn);
    if (object) COUNT(retains, 1);
    return next_swift_retain(object);
}

void swift_release(void *object) {
    NEXT(swift_release, release_fn);
    if (object) COUNT(releases, 1);
    next_swift_release(object);
}

void *swift_retain_n(void *object, uint32_t n) {
    NEXT(swift_retain_n, retain_n_fn);
    if (object) COUNT(retains, n);
    return next_swift_retain_n(object, n);
}

void swift_release_n(void *object, uint32_t n) {
    NEXT(swift_release_n, release_n_fn);
    if (object) COUNT(releases, n);
    next_swift_release_n(object, n);
}

void *swift_nonatomic_retain(void *object) {
    NEXT(swift_nonatomic_retain, retain_fn);
    if (object) COUNT(retains, 1);
    return next_swift_nonatomic_retain(object);
}

void swift_nonatomic_release(void *object) {
    NEXT(swift_nonatomic_release, release_fn);
    if (object) COUNT(releases, 1);
    next_swift_nonatomic_release(object);
}

void *swift_bridgeObjectRetain(void *object) {
    NEXT(swift_bridgeObjectRetain, retain_fn);
    if (object) COUNT(retains, 1);
    return next_swift_bridgeObjectRetain(object);
}

void swift_bridgeObjectRelease(void *object) {
    NEXT(swift_bridgeObjectRelease, release_fn);
    if (object) COUNT(releases, 1);
    next_swift_bridgeObjectRelease(object);
}

// An unowned reference turned strong costs a strong retain (released as usual later).
void *swift_unownedRetainStrong(void *object) {
    NEXT(swift_unownedRetainStrong, retain_fn);
    if (object) COUNT(retains, 1);
    return next_swift_unownedRetainStrong(object);
}

void swift_unownedRetainStrongAndRelease(void *object) {
    NEXT(swift_unownedRetainStrongAndRelease, release_fn);
    if (object) COUNT(retains, 1);
    next_swift_unownedRetainStrongAndRelease(object);
}

// A weak reference loaded strong is a retain too.
void *swift_weakLoadStrong(void *reference) {
    NEXT(swift_weakLoadStrong, retain_fn);
    void *object = next_swift_weakLoadStrong(reference);
    if (object) COUNT(retains, 1);
    return object;
}

// The bench's interface.
void oasis_refcount_enable(int on) {
    atomic_store_explicit(&enabled, on, memory_order_relaxed);
}

void oasis_refcount_read(uint64_t *retained, uint64_t *released) {
    *retained = atomic_load_explicit(&retains, memory_order_relaxed);
    *released = atomic_load_explicit(&releases, memory_order_relaxed);
}
