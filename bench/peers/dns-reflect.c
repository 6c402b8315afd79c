/* The floor for a DNS server on kernel UDP sockets: every query goes back as its own
 * "answer", the bytes unchanged but for QR and AA set, with no lookup. It reads the way
 * `oasis dns` does (one recvfrom per datagram, up to 32 at a time, then one sendmmsg;
 * it blocks in the first recvfrom where `oasis dns` waits in epoll) with the same 1 MiB
 * receive buffer, so what a server spends beyond this is its own
 * work. Runs until SIGTERM and then prints how many it answered.
 *   dns-reflect ADDRESS PORT */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#define BATCH 32
static volatile sig_atomic_t stopping;
static void stop(int signal) {
    (void)signal;
    stopping = 1;
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: dns-reflect ADDRESS PORT\n");
        return 2;
    }
    int fd = socket(AF_INET, SOCK_DGRAM, 0);
    int size = 1 << 20;
    setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size);
    struct sockaddr_in local = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[2]))};
    if (fd < 0 || inet_pton(AF_INET, argv[1], &local.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&local, sizeof local) != 0) {
        perror("dns-reflect: bind");
        return 1;
    }
    /* No SA_RESTART: a blocked recvfrom returns on SIGTERM. */
    struct sigaction action = {.sa_handler = stop};
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    static char buffers[BATCH][4096];
    static struct sockaddr_in peers[BATCH];
    static struct iovec iov[BATCH];
    static struct mmsghdr messages[BATCH];
    unsigned long answered = 0;
    while (!stopping) {
        int n = 0;
        for (; n < BATCH; n++) {
            socklen_t length = sizeof peers[n];
            ssize_t got = recvfrom(fd, buffers[n], sizeof buffers[n], n == 0 ? 0 : MSG_DONTWAIT,
                                   (struct sockaddr *)&peers[n], &length);
            if (got < 12) break; /* EAGAIN, a signal, or too short for a DNS header */
            buffers[n][2] |= 0x84; /* QR, AA */
            iov[n] = (struct iovec){.iov_base = buffers[n], .iov_len = (size_t)got};
            messages[n].msg_hdr = (struct msghdr){
                .msg_name = &peers[n], .msg_namelen = sizeof peers[n], .msg_iov = &iov[n], .msg_iovlen = 1};
        }
        if (n > 0 && sendmmsg(fd, messages, (unsigned)n, 0) > 0) answered += (unsigned long)n;
    }
    printf("dns-reflect: answered %lu\n", answered);
    return 0;
}
