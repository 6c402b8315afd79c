/* Turns a UDP datagram to port 7 into its echo, in place: Ethernet, IPv4 and UDP
 * source and destination swapped. Both checksums stay valid (a one's complement sum
 * does not depend on the order of its words). Returns 0 if the frame is not one. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

static int swap_echo(uint8_t *f, size_t n) {
    if (n < 42 || f[12] != 0x08 || f[13] != 0x00) return 0;
    size_t ihl = (size_t)(f[14] & 0x0f) * 4;
    if (f[23] != 17 || n < 14 + ihl + 8) return 0;
    uint8_t *udp = f + 14 + ihl;
    if (udp[2] != 0 || udp[3] != 7) return 0;
    uint8_t t[6];
    memcpy(t, f, 6); memcpy(f, f + 6, 6); memcpy(f + 6, t, 6);
    memcpy(t, f + 26, 4); memcpy(f + 26, f + 30, 4); memcpy(f + 30, t, 4);
    memcpy(t, udp, 2); memcpy(udp, udp + 2, 2); memcpy(udp + 2, t, 2);
    return 1;
}
