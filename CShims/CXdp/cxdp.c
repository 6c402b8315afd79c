#define _GNU_SOURCE
#include "cxdp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/bpf.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <net/if.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef AF_XDP
#define AF_XDP 44
#endif
#ifndef SOL_XDP
#define SOL_XDP 283
#endif

_Static_assert(sizeof(oasis_xdp_descriptor) == sizeof(struct xdp_desc), "xdp_desc layout");
_Static_assert(sizeof(oasis_xdp_statistics) == sizeof(struct xdp_statistics),
               "xdp_statistics layout");

static int bpf(int command, union bpf_attr *attr) {
    long result = syscall(__NR_bpf, command, attr, sizeof *attr);
    return result < 0 ? -errno : (int)result;
}

static int create_map(uint32_t entries) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_type = BPF_MAP_TYPE_XSKMAP;
    attr.key_size = 4;
    attr.value_size = 4;
    attr.max_entries = entries;
    memcpy(attr.map_name, "oasis_xsks", sizeof "oasis_xsks");
    return bpf(BPF_MAP_CREATE, &attr);
}

// The program, in four instructions and a 64-bit load:
//   r2 = ctx->rx_queue_index
//   r1 = &xsks                       (the map, by descriptor)
//   r3 = XDP_PASS                    (what to return when no socket holds that queue)
//   r0 = bpf_redirect_map(r1, r2, r3)
//   exit
static int load_program(int map_fd) {
    struct bpf_insn program[] = {
        {.code = BPF_LDX | BPF_MEM | BPF_W, .dst_reg = BPF_REG_2, .src_reg = BPF_REG_1,
         .off = offsetof(struct xdp_md, rx_queue_index)},
        {.code = BPF_LD | BPF_DW | BPF_IMM, .dst_reg = BPF_REG_1, .src_reg = BPF_PSEUDO_MAP_FD,
         .imm = map_fd},
        {.code = 0},
        {.code = BPF_ALU64 | BPF_MOV | BPF_K, .dst_reg = BPF_REG_3, .imm = XDP_PASS},
        {.code = BPF_JMP | BPF_CALL, .imm = BPF_FUNC_redirect_map},
        {.code = BPF_JMP | BPF_EXIT},
    };
    static const char license[] = "Dual BSD/GPL";
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.prog_type = BPF_PROG_TYPE_XDP;
    attr.insns = (uint64_t)(uintptr_t)program;
    attr.insn_cnt = sizeof program / sizeof program[0];
    attr.license = (uint64_t)(uintptr_t)license;
    attr.expected_attach_type = BPF_XDP;
    memcpy(attr.prog_name, "oasis_xsk", sizeof "oasis_xsk");
    return bpf(BPF_PROG_LOAD, &attr);
}

static int map_put(int map_fd, uint32_t key, int value) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_fd = map_fd;
    attr.key = (uint64_t)(uintptr_t)&key;
    attr.value = (uint64_t)(uintptr_t)&value;
    attr.flags = BPF_ANY;
    return bpf(BPF_MAP_UPDATE_ELEM, &attr);
}

static int map_delete(int map_fd, uint32_t key) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.map_fd = map_fd;
    attr.key = (uint64_t)(uintptr_t)&key;
    return bpf(BPF_MAP_DELETE_ELEM, &attr);
}

// bind(2), retried while the queue is busy: a socket closed just before releases its
// queue from a kernel work item, a moment later.
static int bind_retrying(int fd, const struct sockaddr_xdp *address) {
    for (int attempt = 0;; attempt++) {
        if (bind(fd, (const struct sockaddr *)address, sizeof *address) == 0) return 0;
        if (errno != EBUSY || attempt == 100) return -errno;
        usleep(10000);
    }
}

static int attach(int program_fd, int ifindex, uint32_t mode) {
    union bpf_attr attr;
    memset(&attr, 0, sizeof attr);
    attr.link_create.prog_fd = program_fd;
    attr.link_create.target_ifindex = ifindex;
    attr.link_create.attach_type = BPF_XDP;
    attr.link_create.flags = mode;
    return bpf(BPF_LINK_CREATE, &attr);
}

static int map_ring(int fd, oasis_xdp_ring *ring, const struct xdp_ring_offset *offsets,
                    uint32_t size, size_t entry_size, off_t page_offset) {
    size_t length = offsets->desc + size * entry_size;
    void *map = mmap(NULL, length, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd,
                     page_offset);
    if (map == MAP_FAILED) return -errno;
    ring->map = map;
    ring->map_size = length;
    ring->producer = (uint32_t *)((char *)map + offsets->producer);
    ring->consumer = (uint32_t *)((char *)map + offsets->consumer);
    ring->flags = (uint32_t *)((char *)map + offsets->flags);
    ring->entries = (char *)map + offsets->desc;
    ring->size = size;
    ring->mask = size - 1;
    return 0;
}

static void unmap_ring(oasis_xdp_ring *ring) {
    if (ring->map) munmap(ring->map, ring->map_size);
    ring->map = NULL;
}

static int set_option(int fd, int name, const void *value, socklen_t length) {
    return setsockopt(fd, SOL_XDP, name, value, length) < 0 ? -errno : 0;
}

// The socket, its UMEM and rings, bound to `queue` of interface `ifindex`: everything
// but the map and the program. On failure the caller closes `s`.
static int open_socket(oasis_xdp_socket *s, int ifindex, uint32_t queue,
                       uint32_t frame_count, uint32_t ring_size, int flags) {
    int status;
    s->ifindex = ifindex;
    s->queue = queue;
    s->frame_count = frame_count;
    s->control_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (s->control_fd < 0) return -errno;

    s->umem_size = (size_t)frame_count * OASIS_XDP_FRAME_SIZE;
    s->umem = mmap(NULL, s->umem_size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (s->umem == MAP_FAILED) {
        s->umem = NULL;
        status = -errno;
        goto fail;
    }
    s->fd = socket(AF_XDP, SOCK_RAW | SOCK_CLOEXEC, 0);
    if (s->fd < 0) {
        status = -errno;
        goto fail;
    }
    struct xdp_umem_reg registration = {
        .addr = (uint64_t)(uintptr_t)s->umem,
        .len = s->umem_size,
        .chunk_size = OASIS_XDP_FRAME_SIZE,
        .headroom = 0,
    };
    if ((status = set_option(s->fd, XDP_UMEM_REG, &registration, sizeof registration)) < 0 ||
        (status = set_option(s->fd, XDP_UMEM_FILL_RING, &ring_size, sizeof ring_size)) < 0 ||
        (status = set_option(s->fd, XDP_UMEM_COMPLETION_RING, &ring_size, sizeof ring_size)) <
            0 ||
        (status = set_option(s->fd, XDP_RX_RING, &ring_size, sizeof ring_size)) < 0 ||
        (status = set_option(s->fd, XDP_TX_RING, &ring_size, sizeof ring_size)) < 0)
        goto fail;
    struct xdp_mmap_offsets offsets;
    socklen_t length = sizeof offsets;
    if (getsockopt(s->fd, SOL_XDP, XDP_MMAP_OFFSETS, &offsets, &length) < 0) {
        status = -errno;
        goto fail;
    }
    if ((status = map_ring(s->fd, &s->fill, &offsets.fr, ring_size, sizeof(uint64_t),
                           XDP_UMEM_PGOFF_FILL_RING)) < 0 ||
        (status = map_ring(s->fd, &s->completion, &offsets.cr, ring_size, sizeof(uint64_t),
                           XDP_UMEM_PGOFF_COMPLETION_RING)) < 0 ||
        (status = map_ring(s->fd, &s->rx, &offsets.rx, ring_size, sizeof(struct xdp_desc),
                           XDP_PGOFF_RX_RING)) < 0 ||
        (status = map_ring(s->fd, &s->tx, &offsets.tx, ring_size, sizeof(struct xdp_desc),
                           XDP_PGOFF_TX_RING)) < 0)
        goto fail;
    // Producer rings start with every entry free: the consumer we saw is the producer.
    s->fill.cached_producer = *s->fill.producer;
    s->fill.cached_consumer = *s->fill.consumer;
    s->tx.cached_producer = *s->tx.producer;
    s->tx.cached_consumer = *s->tx.consumer;
    s->rx.cached_producer = *s->rx.producer;
    s->rx.cached_consumer = *s->rx.consumer;
    s->completion.cached_producer = *s->completion.producer;
    s->completion.cached_consumer = *s->completion.consumer;

    struct sockaddr_xdp address = {
        .sxdp_family = AF_XDP,
        .sxdp_ifindex = (uint32_t)s->ifindex,
        .sxdp_queue_id = queue,
        .sxdp_flags = XDP_USE_NEED_WAKEUP | XDP_ZEROCOPY,
    };
    s->copy = 0;
    if ((status = bind_retrying(s->fd, &address)) < 0) {
        if (status == -EBUSY || (flags & OASIS_XDP_ZEROCOPY_ONLY)) goto fail;
        address.sxdp_flags = XDP_USE_NEED_WAKEUP | XDP_COPY;
        s->copy = 1;
        if ((status = bind_retrying(s->fd, &address)) < 0) goto fail;
    }
    return 0;
fail:
    return status;
}

static int check_sizes(uint32_t queue, uint32_t frame_count, uint32_t ring_size) {
    if (ring_size == 0 || (ring_size & (ring_size - 1)) != 0 || frame_count == 0 ||
        frame_count > (1u << 20) || queue > 1023)
        return -EINVAL;
    return 0;
}

int oasis_xdp_open(oasis_xdp_socket *s, const char *ifname, uint32_t queue,
                   uint32_t frame_count, uint32_t ring_size, int flags) {
    return oasis_xdp_open_queues(s, ifname, queue, queue + 1, frame_count, ring_size, flags);
}

int oasis_xdp_open_queues(oasis_xdp_socket *s, const char *ifname, uint32_t queue,
                          uint32_t queue_count, uint32_t frame_count, uint32_t ring_size,
                          int flags) {
    memset(s, 0, sizeof *s);
    s->fd = s->map_fd = s->program_fd = s->link_fd = s->control_fd = -1;
    int status = check_sizes(queue, frame_count, ring_size);
    if (status < 0) return status;
    if (queue_count <= queue || queue_count > 1024) return -EINVAL;
    int ifindex = (int)if_nametoindex(ifname);
    if (ifindex == 0) return -errno;
    if ((status = open_socket(s, ifindex, queue, frame_count, ring_size, flags)) < 0) goto fail;
    if ((s->map_fd = create_map(queue_count)) < 0) {
        status = s->map_fd;
        goto fail;
    }
    if ((status = map_put(s->map_fd, queue, s->fd)) < 0) goto fail;
    if ((s->program_fd = load_program(s->map_fd)) < 0) {
        status = s->program_fd;
        goto fail;
    }
    s->native = 0;
    if (!(flags & OASIS_XDP_GENERIC)) {
        s->link_fd = attach(s->program_fd, s->ifindex, XDP_FLAGS_DRV_MODE);
        if (s->link_fd >= 0) s->native = 1;
        else if (s->link_fd == -EBUSY || s->link_fd == -EEXIST) {
            status = -EBUSY;
            goto fail;
        }
    }
    if (s->link_fd < 0) {
        s->link_fd = attach(s->program_fd, s->ifindex, XDP_FLAGS_SKB_MODE);
        if (s->link_fd < 0) {
            status = s->link_fd == -EEXIST ? -EBUSY : s->link_fd;
            goto fail;
        }
    }
    return 0;
fail:
    oasis_xdp_close(s, 1);
    return status;
}

int oasis_xdp_open_joining(oasis_xdp_socket *s, const oasis_xdp_socket *owner, uint32_t queue,
                           uint32_t frame_count, uint32_t ring_size, int flags) {
    memset(s, 0, sizeof *s);
    s->fd = s->map_fd = s->program_fd = s->link_fd = s->control_fd = -1;
    int status = check_sizes(queue, frame_count, ring_size);
    if (status < 0) return status;
    if (owner->map_fd < 0 || owner->ifindex <= 0) return -EBADF;
    if ((status = open_socket(s, owner->ifindex, queue, frame_count, ring_size, flags)) < 0)
        goto fail;
    // A map of its own reference: the owner may close first (its program detached,
    // this queue's frames then pass to the kernel), and this socket still leaves the
    // map cleanly.
    if ((s->map_fd = fcntl(owner->map_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
        status = -errno;
        goto fail;
    }
    // E2BIG when the owner's map has no room for this queue.
    if ((status = map_put(s->map_fd, queue, s->fd)) < 0) goto fail;
    s->native = owner->native;
    return 0;
fail:
    oasis_xdp_close(s, 1);
    return status;
}

void oasis_xdp_close(oasis_xdp_socket *s, int unmap_umem) {
    // The map holds a reference to the socket: take it out first, so that closing the
    // socket releases it now rather than when the map itself goes.
    if (s->map_fd >= 0 && s->fd >= 0) map_delete(s->map_fd, s->queue);
    if (s->link_fd >= 0) close(s->link_fd);
    if (s->program_fd >= 0) close(s->program_fd);
    if (s->map_fd >= 0) close(s->map_fd);
    s->link_fd = s->program_fd = s->map_fd = -1;
    unmap_ring(&s->fill);
    unmap_ring(&s->completion);
    unmap_ring(&s->rx);
    unmap_ring(&s->tx);
    if (s->fd >= 0) close(s->fd);
    if (s->control_fd >= 0) close(s->control_fd);
    s->fd = s->control_fd = -1;
    if (unmap_umem && s->umem) {
        munmap(s->umem, s->umem_size);
        s->umem = NULL;
    }
}

void oasis_xdp_unmap_umem(oasis_xdp_socket *s) {
    if (s->umem) munmap(s->umem, s->umem_size);
    s->umem = NULL;
}

int oasis_xdp_kick(oasis_xdp_socket *s) {
    if (sendto(s->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0) return 0;
    if (errno == EAGAIN || errno == EBUSY || errno == ENOBUFS || errno == ENETDOWN) return 0;
    return -errno;
}

int oasis_xdp_wake_fill(oasis_xdp_socket *s) {
    if (recvfrom(s->fd, NULL, 0, MSG_DONTWAIT, NULL, NULL) >= 0) return 0;
    if (errno == EAGAIN || errno == EBUSY || errno == ENOBUFS || errno == ENETDOWN) return 0;
    return -errno;
}

int oasis_xdp_get_statistics(oasis_xdp_socket *s, oasis_xdp_statistics *statistics) {
    socklen_t length = sizeof *statistics;
    memset(statistics, 0, sizeof *statistics);
    return getsockopt(s->fd, SOL_XDP, XDP_STATISTICS, statistics, &length) < 0 ? -errno : 0;
}

int oasis_xdp_link_up(oasis_xdp_socket *s) {
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_ifindex = s->ifindex;
    if (s->control_fd < 0) return -EBADF;
    if (ioctl(s->control_fd, SIOCGIFNAME, &ifr) < 0) return -errno;
    if (ioctl(s->control_fd, SIOCGIFFLAGS, &ifr) < 0) return -errno;
    return (ifr.ifr_flags & IFF_UP) != 0;
}

int oasis_xdp_interface_info(const char *ifname, uint8_t mac[6], int *mtu, int *up) {
    struct ifreq ifr;
    size_t length = strlen(ifname);
    if (length >= IFNAMSIZ) return -ENAMETOOLONG;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    int status = 0;
    memset(&ifr, 0, sizeof ifr);
    memcpy(ifr.ifr_name, ifname, length);
    if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
        status = -errno;
        goto done;
    }
    memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
    if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) {
        status = -errno;
        goto done;
    }
    *mtu = ifr.ifr_mtu;
    if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
        status = -errno;
        goto done;
    }
    *up = (ifr.ifr_flags & IFF_UP) != 0;
done:
    close(fd);
    return status;
}

int oasis_xdp_queue_count(const char *ifname) {
    struct ifreq ifr;
    struct ethtool_channels channels;
    size_t length = strlen(ifname);
    if (length >= IFNAMSIZ) return -ENAMETOOLONG;
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -errno;
    memset(&ifr, 0, sizeof ifr);
    memset(&channels, 0, sizeof channels);
    memcpy(ifr.ifr_name, ifname, length);
    channels.cmd = ETHTOOL_GCHANNELS;
    ifr.ifr_data = (void *)&channels;
    int status = ioctl(fd, SIOCETHTOOL, &ifr) < 0 ? -errno : 0;
    close(fd);
    if (status < 0) return status;
    // Receive queues are the receive-only channels and the combined ones (a NIC counts
    // its queue pairs as combined, a veth its receive queues as rx).
    uint32_t count = channels.rx_count + channels.combined_count;
    return count == 0 ? 1 : (int)count;
}
