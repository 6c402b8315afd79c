#ifndef OASIS_CPCAP_H
#define OASIS_CPCAP_H
#include <pcap/pcap.h>
#endif
