// CTap: the parts of the Linux TUN/TAP and interface ioctls that Swift cannot call
// directly — variadic ioctl(2), the unions inside struct ifreq, errno, and the
// _GNU_SOURCE-only setns(2). Nothing here is reimplemented: each function is one or
// two system calls. Every function returns 0 (or a descriptor) on success and
// -errno on failure, so the Swift side never has to race to read errno.
#ifndef OASIS_CTAP_H
#define OASIS_CTAP_H

#include <stdint.h>

/// Interface names are at most this long, including the terminating NUL (IFNAMSIZ).
#define OASIS_IFNAMSIZ 16

/// Flags for oasis_tap_attach.
enum {
    /// IFF_VNET_HDR: every frame is preceded by a struct virtio_net_hdr.
    OASIS_TAP_VNET_HDR = 1 << 0,
    /// IFF_MULTI_QUEUE: several descriptors may attach to the same interface.
    OASIS_TAP_MULTI_QUEUE = 1 << 1,
};

/// Offload bits for oasis_tap_set_offload (the TUN_F_* values of <linux/if_tun.h>).
enum {
    OASIS_TUN_F_CSUM = 0x01,
    OASIS_TUN_F_TSO4 = 0x02,
    OASIS_TUN_F_TSO6 = 0x04,
    OASIS_TUN_F_TSO_ECN = 0x08,
    OASIS_TUN_F_UFO = 0x10,
};

/// TUNSETIFF on a descriptor of /dev/net/tun: attaches it to a TAP interface
/// (IFF_TAP | IFF_NO_PI plus the requested flags), creating the interface if it does
/// not exist. `name` may be NULL or empty to let the kernel pick (tap%d). The name
/// actually assigned is written to `assigned_name` (OASIS_IFNAMSIZ bytes,
/// NUL-terminated). Returns 0 or -errno (-ENAMETOOLONG for a name that does not fit).
int oasis_tap_attach(int tun_fd, const char *name, int flags,
                     char assigned_name[OASIS_IFNAMSIZ]);

/// TUNSETOFFLOAD with a mask of OASIS_TUN_F_* bits. Returns 0 or -errno.
int oasis_tap_set_offload(int tap_fd, unsigned int offload_flags);

/// TUNSETVNETHDRSZ. Returns 0 or -errno.
int oasis_tap_set_vnet_header_size(int tap_fd, int size);

/// socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0): the descriptor the SIOC* interface
/// ioctls below go through. Its network namespace is fixed when it is created.
/// Returns the descriptor or -errno.
int oasis_if_control_socket(void);

/// SIOCGIFHWADDR / SIOCSIFHWADDR (ARPHRD_ETHER). Return 0 or -errno.
int oasis_if_get_mac(int control_fd, const char *name, uint8_t mac[6]);
int oasis_if_set_mac(int control_fd, const char *name, const uint8_t mac[6]);

/// SIOCGIFMTU / SIOCSIFMTU. Return 0 or -errno.
int oasis_if_get_mtu(int control_fd, const char *name, int *mtu);
int oasis_if_set_mtu(int control_fd, const char *name, int mtu);

/// SIOCGIFFLAGS: writes 1 to *up when IFF_UP is set, else 0. Returns 0 or -errno.
int oasis_if_get_up(int control_fd, const char *name, int *up);
/// SIOCGIFFLAGS then SIOCSIFFLAGS with IFF_UP set or cleared. Returns 0 or -errno.
int oasis_if_set_up(int control_fd, const char *name, int up);

/// SIOCGIFINDEX. Returns 0 or -errno.
int oasis_if_get_index(int control_fd, const char *name, int *index);

/// setns(ns_fd, CLONE_NEWNET) for the calling thread only. Returns 0 or -errno.
int oasis_netns_enter(int ns_fd);

/// The calling thread's errno.
int oasis_tap_errno(void);

#endif
