#include "cpcap.h"

#include <errno.h>
#include <sys/time.h>

void oasis_pcap_dump_frame(pcap_dumper_t *dumper, int64_t seconds, int64_t microseconds,
                           uint32_t captured_length, uint32_t original_length,
                           const uint8_t *bytes) {
    struct pcap_pkthdr header;
    header.ts.tv_sec = (time_t)seconds;
    header.ts.tv_usec = (suseconds_t)microseconds;
    header.caplen = captured_length;
    header.len = original_length;
    pcap_dump((u_char *)dumper, &header, bytes);
}

int oasis_pcap_errno(void) { return errno; }
