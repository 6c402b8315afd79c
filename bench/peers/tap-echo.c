/* The TAP floor: the least a program can do to echo UDP on a TAP — read a frame,
 * swap its addresses, write it back — with no parsing beyond that and no stack.
 *   tap-echo IFNAME            (attaches to an existing TAP; runs until killed) */
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "swap.h"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    int fd = open("/dev/net/tun", O_RDWR);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
    strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
    if (fd < 0 || ioctl(fd, TUNSETIFF, &ifr) != 0) {
        perror("tun");
        return 1;
    }
    printf("tap-echo: ready\n");
    fflush(stdout);
    /* Same strategy as the Oasis TAP device: wait for readiness, then drain. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    uint8_t frame[65536];
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        poll(&p, 1, -1);
        for (;;) {
            ssize_t n = read(fd, frame, sizeof frame);
            if (n <= 0) break;
            if (swap_echo(frame, (size_t)n)) (void)!write(fd, frame, (size_t)n);
        }
    }
}
