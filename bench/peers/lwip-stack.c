/* lwIP beside the Oasis stack: Debian's liblwip (2.1, its Unix port with a tcpip
 * thread for the timers) serving TCP echo (7), discard (9) and chargen (19) on an
 * existing TAP through the raw API, as `oasis stack` does, for bench/tcp.sh (LWIP=1).
 *
 * The TAP driver is this file's: one thread reads a frame straight into a pbuf and
 * hands it to lwIP's Ethernet input under the core lock (no hand-over to the tcpip
 * thread per frame); lwIP's output copies the frame out with one write(2). The
 * library's own tapif is not used: in Debian's 2.1.3 build it overruns the pool pbuf
 * it receives a full-sized frame into (valgrind: pbuf_take writes past a 616-byte
 * block, then glibc aborts with "malloc(): corrupted top size").
 *
 *   lwip-stack TAP ADDRESS PREFIX [LIFETIME]
 *
 * LWIP_STACK_LOSS=PERCENT drops that share of the frames read from the TAP, at random,
 * before lwIP sees them: loss on the way in, as `oasis stack --impair in:loss=1%`.
 *
 * The TAP's frames reach lwIP at 02:00:00:00:00:02 (the MAC bench/tcp.sh gives the
 * kernel's neighbour entry). Exits on SIGTERM or SIGINT, or after LIFETIME seconds
 * (default 900). The library's build options are Debian's (lwipopts.h: a 64 KiB
 * window with scale 1, 64 KiB send buffer, MSS 1460).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/if_tun.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lwip/etharp.h"
#include "lwip/init.h"
#include "lwip/ip4_addr.h"
#include "lwip/netif.h"
#include "lwip/tcp.h"
#include "lwip/tcpip.h"
#include "netif/ethernet.h"

static struct netif tap;
static int tap_fd = -1;
#define FRAME 1514

/* lwIP's link output: the frame copied out of its pbuf chain, one write. */
static err_t tap_output(struct netif *netif, struct pbuf *p) {
    (void)netif;
    char frame[FRAME];
    if (p->tot_len > sizeof frame) return ERR_IF;
    u16_t length = pbuf_copy_partial(p, frame, p->tot_len, 0);
    return write(tap_fd, frame, length) == length ? ERR_OK : ERR_IF;
}

static err_t tap_init(struct netif *netif) {
    static const u8_t mac[6] = {0x02, 0, 0, 0, 0, 0x02};
    netif->name[0] = 't';
    netif->name[1] = 'p';
    netif->output = etharp_output;
    netif->linkoutput = tap_output;
    netif->mtu = FRAME - 14;
    netif->hwaddr_len = 6;
    memcpy(netif->hwaddr, mac, sizeof mac);
    netif->flags = NETIF_FLAG_BROADCAST | NETIF_FLAG_ETHARP | NETIF_FLAG_ETHERNET;
    return ERR_OK;
}

/* The receive thread: a frame read into a pbuf, handed to lwIP under the core lock. */
static double loss_percent;
static unsigned long frames_lost;

static void *tap_reader(void *argument) {
    (void)argument;
    unsigned int seed = 7;
    for (;;) {
        struct pbuf *p = pbuf_alloc(PBUF_RAW, FRAME, PBUF_RAM);
        if (p == NULL) {
            usleep(1000);
            continue;
        }
        ssize_t n = read(tap_fd, p->payload, FRAME);
        if (n <= 0) {
            pbuf_free(p);
            if (n < 0 && errno == EINTR) continue;
            fprintf(stderr, "lwip-stack: read from the TAP: %s\n", strerror(errno));
            exit(1);
        }
        if (loss_percent > 0 && (double)rand_r(&seed) / RAND_MAX * 100.0 < loss_percent) {
            pbuf_free(p);
            frames_lost++;
            continue;
        }
        pbuf_realloc(p, (u16_t)n);
        LOCK_TCPIP_CORE();
        if (ethernet_input(p, &tap) != ERR_OK) pbuf_free(p);
        UNLOCK_TCPIP_CORE();
    }
    return NULL;
}

static int open_tap(const char *name) {
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    struct ifreq request;
    memset(&request, 0, sizeof request);
    request.ifr_flags = IFF_TAP | IFF_NO_PI;
    strncpy(request.ifr_name, name, IFNAMSIZ - 1);
    if (fd < 0 || ioctl(fd, TUNSETIFF, &request) != 0) {
        fprintf(stderr, "lwip-stack: cannot attach to %s: %s\n", name, strerror(errno));
        exit(1);
    }
    return fd;
}

/* 95 lines of the RFC 864 pattern, as tcp-stream's and oasis's chargen, twice over so
 * that a write can start at any line. */
#define PERIOD (95 * 74)
static char chargen_block[2 * PERIOD];

/* Closes at the end of input; a close that cannot be queued aborts (and a callback
 * that aborted says so). */
static err_t close_or_abort(struct tcp_pcb *pcb) {
    if (tcp_close(pcb) == ERR_OK) return ERR_OK;
    tcp_abort(pcb);
    return ERR_ABRT;
}

/* Discard: acknowledge and drop; close at the end of input. */
static err_t discard_received(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err) {
    (void)arg;
    (void)err;
    if (p == NULL) {
        tcp_recv(pcb, NULL);
        return close_or_abort(pcb);
    }
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
    return ERR_OK;
}

/* Chargen: the pattern for as long as the send buffer takes it. The offset into the
 * period lives in the pcb's argument. */
static void chargen_fill(struct tcp_pcb *pcb) {
    uintptr_t offset = (uintptr_t)pcb->callback_arg;
    for (;;) {
        u16_t room = tcp_sndbuf(pcb);
        if (room == 0 || tcp_sndqueuelen(pcb) >= TCP_SND_QUEUELEN) break;
        u16_t length = room < PERIOD ? room : PERIOD;
        if (tcp_write(pcb, chargen_block + offset, length, 0) != ERR_OK) break;
        offset = (offset + length) % PERIOD;
    }
    tcp_arg(pcb, (void *)offset);
    tcp_output(pcb);
}

static err_t chargen_sent(void *arg, struct tcp_pcb *pcb, u16_t length) {
    (void)arg;
    (void)length;
    chargen_fill(pcb);
    return ERR_OK;
}

static err_t chargen_received(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err) {
    (void)arg;
    (void)err;
    if (p == NULL) {
        tcp_sent(pcb, NULL);
        tcp_recv(pcb, NULL);
        return close_or_abort(pcb);
    }
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
    return ERR_OK;
}

/* Echo: what arrives goes back (copied into the send queue); what the send buffer
 * cannot take now is refused, and lwIP hands it over again later. */
static err_t echo_received(void *arg, struct tcp_pcb *pcb, struct pbuf *p, err_t err) {
    (void)arg;
    (void)err;
    if (p == NULL) {
        tcp_recv(pcb, NULL);
        return close_or_abort(pcb);
    }
    if (tcp_sndbuf(pcb) < p->tot_len) return ERR_MEM;
    for (struct pbuf *q = p; q != NULL; q = q->next) {
        if (tcp_write(pcb, q->payload, q->len, TCP_WRITE_FLAG_COPY) != ERR_OK) return ERR_MEM;
    }
    tcp_recved(pcb, p->tot_len);
    pbuf_free(p);
    tcp_output(pcb);
    return ERR_OK;
}

static err_t accepted(void *arg, struct tcp_pcb *pcb, err_t err) {
    if (err != ERR_OK || pcb == NULL) return ERR_VAL;
    int port = (int)(intptr_t)arg;
    tcp_nagle_disable(pcb);
    if (port == 9) {
        tcp_recv(pcb, discard_received);
    } else if (port == 19) {
        tcp_arg(pcb, (void *)0);
        tcp_recv(pcb, chargen_received);
        tcp_sent(pcb, chargen_sent);
        chargen_fill(pcb);
    } else {
        tcp_recv(pcb, echo_received);
    }
    return ERR_OK;
}

static void listen_on(int port) {
    struct tcp_pcb *pcb = tcp_new_ip_type(IPADDR_TYPE_V4);
    if (pcb == NULL || tcp_bind(pcb, IP4_ADDR_ANY, (u16_t)port) != ERR_OK) {
        fprintf(stderr, "lwip-stack: cannot bind port %d\n", port);
        exit(1);
    }
    pcb = tcp_listen_with_backlog(pcb, 255);
    tcp_arg(pcb, (void *)(intptr_t)port);
    tcp_accept(pcb, accepted);
}

static const char *address_text;
static int prefix;
static sys_sem_t ready;

/* Runs in the tcpip thread: the interface and the three listeners. */
static void set_up(void *arg) {
    (void)arg;
    ip4_addr_t address, mask, gateway;
    if (!ip4addr_aton(address_text, &address) || prefix < 1 || prefix > 30) {
        fprintf(stderr, "lwip-stack: bad address %s/%d\n", address_text, prefix);
        exit(2);
    }
    ip4_addr_set_u32(&mask, lwip_htonl(0xffffffffu << (32 - prefix)));
    ip4_addr_set_zero(&gateway);
    if (netif_add(&tap, &address, &mask, &gateway, NULL, tap_init, ethernet_input) == NULL) {
        fprintf(stderr, "lwip-stack: netif_add failed\n");
        exit(1);
    }
    netif_set_default(&tap);
    netif_set_up(&tap);
    netif_set_link_up(&tap);
    listen_on(7);
    listen_on(9);
    listen_on(19);
    sys_sem_signal(&ready);
}

int main(int argc, char **argv) {
    if (argc < 4 || argc > 5) {
        fprintf(stderr, "usage: lwip-stack TAP ADDRESS PREFIX [LIFETIME]\n");
        return 2;
    }
    tap_fd = open_tap(argv[1]);
    address_text = argv[2];
    prefix = atoi(argv[3]);
    unsigned lifetime = argc == 5 ? (unsigned)atoi(argv[4]) : 900;
    const char *loss = getenv("LWIP_STACK_LOSS");
    if (loss != NULL) loss_percent = atof(loss);
    for (int i = 0; i < PERIOD; i++) {
        int line = i / 74, column = i % 74;
        chargen_block[i] =
            column < 72 ? (char)(32 + (line + column) % 95) : (column == 72 ? '\r' : '\n');
    }
    memcpy(chargen_block + PERIOD, chargen_block, PERIOD);

    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGALRM);
    pthread_sigmask(SIG_BLOCK, &stop, NULL);  /* lwIP's threads inherit the mask */
    if (sys_sem_new(&ready, 0) != ERR_OK) return 1;
    tcpip_init(set_up, NULL);
    sys_sem_wait(&ready);
    pthread_t reader;
    if (pthread_create(&reader, NULL, tap_reader, NULL) != 0) return 1;
    printf("lwip-stack: %s/%d on %s, echo 7, discard 9, chargen 19\n", address_text, prefix,
           argv[1]);
    fflush(stdout);
    alarm(lifetime);
    int signal_number;
    sigwait(&stop, &signal_number);
    printf("lwip-stack: stopped (signal %d); frames lost on the way in: %lu\n", signal_number,
           frames_lost);
    return 0;
}
