/* The pcap floor: the least a libpcap program can do to echo UDP on an interface —
 * take a frame, swap its addresses, inject it — with no stack.
 *   pcap-echo IFNAME */
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>
#include "swap.h"

int main(int argc, char **argv) {
    if (argc != 2) return 2;
    char error[PCAP_ERRBUF_SIZE];
    pcap_t *p = pcap_create(argv[1], error);
    if (!p) { fprintf(stderr, "%s\n", error); return 1; }
    pcap_set_snaplen(p, 65535);
    pcap_set_promisc(p, 1);
    pcap_set_immediate_mode(p, 1);
    if (pcap_activate(p) < 0) { pcap_perror(p, "activate"); return 1; }
    pcap_setdirection(p, PCAP_D_IN);
    printf("pcap-echo: ready\n");
    fflush(stdout);
    uint8_t frame[65536];
    for (;;) {
        struct pcap_pkthdr *h;
        const u_char *data;
        int r = pcap_next_ex(p, &h, &data);
        if (r != 1 || h->caplen != h->len) continue;
        memcpy(frame, data, h->caplen);
        if (swap_echo(frame, h->caplen)) pcap_inject(p, frame, h->caplen);
    }
}
