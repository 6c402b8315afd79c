#define _GNU_SOURCE
#include "ctap.h"

#include <errno.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <net/if_arp.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

_Static_assert(OASIS_IFNAMSIZ == IFNAMSIZ, "OASIS_IFNAMSIZ must match IFNAMSIZ");
_Static_assert(OASIS_TUN_F_CSUM == TUN_F_CSUM && OASIS_TUN_F_TSO4 == TUN_F_TSO4 &&
                   OASIS_TUN_F_TSO6 == TUN_F_TSO6 && OASIS_TUN_F_TSO_ECN == TUN_F_TSO_ECN &&
                   OASIS_TUN_F_UFO == TUN_F_UFO,
               "offload bits must match <linux/if_tun.h>");

// Fills ifr_name; rejects names that do not fit rather than truncating them.
static int fill_name(struct ifreq *ifr, const char *name) {
    memset(ifr, 0, sizeof *ifr);
    if (name == NULL) return 0;
    size_t length = strlen(name);
    if (length >= IFNAMSIZ) return -ENAMETOOLONG;
    memcpy(ifr->ifr_name, name, length);
    return 0;
}

int oasis_tap_attach(int tun_fd, const char *name, int flags,
                     char assigned_name[OASIS_IFNAMSIZ]) {
    struct ifreq ifr;
    int status = fill_name(&ifr, name);
    if (status < 0) return status;
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    if (flags & OASIS_TAP_VNET_HDR) ifr.ifr_flags |= IFF_VNET_HDR;
    if (flags & OASIS_TAP_MULTI_QUEUE) ifr.ifr_flags |= IFF_MULTI_QUEUE;
    if (ioctl(tun_fd, TUNSETIFF, &ifr) < 0) return -errno;
    memcpy(assigned_name, ifr.ifr_name, IFNAMSIZ);
    assigned_name[IFNAMSIZ - 1] = '\0';
    return 0;
}

int oasis_tap_set_offload(int tap_fd, unsigned int offload_flags) {
    return ioctl(tap_fd, TUNSETOFFLOAD, (unsigned long)offload_flags) < 0 ? -errno : 0;
}

int oasis_tap_set_vnet_header_size(int tap_fd, int size) {
    return ioctl(tap_fd, TUNSETVNETHDRSZ, &size) < 0 ? -errno : 0;
}

int oasis_if_control_socket(void) {
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    return fd < 0 ? -errno : fd;
}

int oasis_if_get_mac(int control_fd, const char *name, uint8_t mac[6]) {
    struct ifreq ifr;
    int status = fill_name(&ifr, name);
    if (status < 0) return status;
    if (ioctl(control_fd, SIOCGIFHWADDR, &ifr) < 0) return -errno;
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    return 0;
}

int oasis_if_set_mac(int control_fd, const char *name, const uint8_t mac[6]) {
    struct ifreq ifr;
    int status = fill_name(&ifr, name);
    if (status < 0) return status;
    ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
    memcpy(ifr.ifr_hwaddr.sa_data, mac, 6);
    return ioctl(control_fd, SIOCSIFHWADDR, &ifr) < 0 ? -errno : 0;
}

int oasis_if_get_mtu(int control_fd, const char *name, int *mtu) {
    struct ifreq ifr;
    int status = fill_name(&ifr, name);
    if (status < 0) return status;
    if (ioctl(control_fd, SIOCGIFMTU, &ifr) < 0) return -errno;
    *mtu = ifr.ifr_mtu;
    return 0;
}

int oasis_if_set_mtu(int control_fd, const char *name, int mtu) {
    struct ifreq ifr;
    int status = fill_name(&ifr, name);
    if (status < 0) return status;
    ifr.ifr_mtu = mtu;
    return ioctl(control_fd, SIOCSIFMTU, &ifr) < 0 ? -errno : 0;
}

int oasis_if_get_up(int control_fd, const char *name, int *up) {
    struct ifreq ifr;
    int status = fill_name(&ifr, name);
    if (status < 0) return status;
    if (ioctl(control_fd, SIOCGIFFLAGS, &ifr) < 0) return -errno;
    *up = (ifr.ifr_flags & IFF_UP) ? 1 : 0;
    return 0;
}

int oasis_if_set_up(int control_fd, const char *name, int up) {
    struct ifreq ifr;
    int status = fill_name(&ifr, name);
    if (status < 0) return status;
    if (ioctl(control_fd, SIOCGIFFLAGS, &ifr) < 0) return -errno;
    if (up)
        ifr.ifr_flags |= IFF_UP;
    else
        ifr.ifr_flags &= ~IFF_UP;
    return ioctl(control_fd, SIOCSIFFLAGS, &ifr) < 0 ? -errno : 0;
}

int oasis_if_get_index(int control_fd, const char *name, int *index) {
    struct ifreq ifr;
    int status = fill_name(&ifr, name);
    if (status < 0) return status;
    if (ioctl(control_fd, SIOCGIFINDEX, &ifr) < 0) return -errno;
    *index = ifr.ifr_ifindex;
    return 0;
}

int oasis_netns_enter(int ns_fd) {
    return setns(ns_fd, CLONE_NEWNET) < 0 ? -errno : 0;
}

int oasis_tap_errno(void) { return errno; }
