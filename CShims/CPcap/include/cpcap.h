// CPcap: libpcap as Debian ships it. Swift calls <pcap/pcap.h> directly; the helpers
// below exist only where the C interface does not translate: pcap_dump's
// `u_char *user` argument (the dumper smuggled through a callback pointer) and errno.
#ifndef OASIS_CPCAP_H
#define OASIS_CPCAP_H

#include <pcap/pcap.h>
#include <stdint.h>

/// pcap_dump for one frame: builds the struct pcap_pkthdr and passes the dumper as
/// pcap_dump's `user` argument, as libpcap expects.
void oasis_pcap_dump_frame(pcap_dumper_t *dumper, int64_t seconds, int64_t microseconds,
                           uint32_t captured_length, uint32_t original_length,
                           const uint8_t *bytes);

/// The calling thread's errno.
int oasis_pcap_errno(void);

#endif
