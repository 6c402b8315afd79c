// CXen: Xen's user-space libraries as Debian ships them (libxenctrl, libxengnttab with
// gntshr, libxenevtchn, libxenstore) and the shared-ring headers io/ring.h and
// io/netif.h. Swift calls the libraries directly; this header adds only what Swift
// cannot reach: the memory barriers ring.h is written against (they are macros), a
// logger that keeps the libraries off stderr, errno, and a self-test that runs
// ring.h's own macros.
#ifndef OASIS_CXEN_H
#define OASIS_CXEN_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

// xenctrl.h defines __XEN_TOOLS__, which selects the latest Xen interface version, and
// with it xen_mb()/xen_rmb()/xen_wmb() for this architecture; ring.h uses those. Xen's
// headers leave mb()/rmb()/wmb() to the includer for older interface versions: define
// them too (full fences from the compiler) so the include order below cannot matter.
#include <xenctrl.h>
#include <xenevtchn.h>
#include <xengnttab.h>
#include <xenstore.h>

#ifndef mb
#define mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
#endif
#ifndef rmb
#define rmb() __atomic_thread_fence(__ATOMIC_ACQUIRE)
#endif
#ifndef wmb
#define wmb() __atomic_thread_fence(__ATOMIC_RELEASE)
#endif

#include <xen/grant_table.h>
#include <xen/io/netif.h>
#include <xen/io/ring.h>

/// Full barrier, as ring.h's xen_mb(): no load or store moves across it.
static inline void oasis_xen_mb(void) { xen_mb(); }
/// Read barrier, as ring.h's xen_rmb(): loads before it complete before loads after it.
static inline void oasis_xen_rmb(void) { xen_rmb(); }
/// Write barrier, as ring.h's xen_wmb(): stores before it are visible before stores
/// after it.
static inline void oasis_xen_wmb(void) { xen_wmb(); }

/// Loads a 32-bit ring index from shared memory exactly once (READ_ONCE): the compiler
/// may neither cache it nor split it, because the other domain writes it concurrently.
static inline uint32_t oasis_xen_load_index(const void *address) {
    return __atomic_load_n((const uint32_t *)address, __ATOMIC_RELAXED);
}
/// Stores a 32-bit ring index to shared memory exactly once (WRITE_ONCE).
static inline void oasis_xen_store_index(void *address, uint32_t value) {
    __atomic_store_n((uint32_t *)address, value, __ATOMIC_RELAXED);
}

/// Sends `length` bytes and up to `count` descriptors (SCM_RIGHTS) in one message on a
/// unix stream socket. Returns the bytes sent or -1 with errno set. The simulated
/// hypervisor passes its shared memory and event channels this way.
long oasis_xen_send_with_fds(int socket, const void *bytes, size_t length, const int *fds,
                             int count);
/// Receives up to `length` bytes and up to `capacity` descriptors (SCM_RIGHTS, made
/// close-on-exec). Returns the bytes received (0 at end of stream) or -1 with errno set;
/// the number of descriptors through *count.
long oasis_xen_receive_with_fds(int socket, void *bytes, size_t length, int *fds,
                                int capacity, int *count);

/// A xentoollog logger that discards everything. libxenctrl and friends log to stderr
/// when given NULL; with this one a failed open on a machine without Xen is silent and
/// the caller reports the error itself. The object is static and never destroyed.
xentoollog_logger *oasis_xen_quiet_logger(void);

/// The calling thread's errno.
int oasis_xen_errno(void);

/// Runs ring.h's macros on a netif TX ring laid over `page` (4096 bytes):
/// SHARED_RING_INIT, FRONT_RING_INIT, one request (gref, offset, flags, id, size
/// given), RING_PUSH_REQUESTS_AND_CHECK_NOTIFY. Returns the shared req_prod (1), the
/// ring size through *ring_size and the notify decision through *notify.
unsigned int oasis_xen_ring_selftest(void *page, unsigned int *ring_size, int *notify);

#endif
