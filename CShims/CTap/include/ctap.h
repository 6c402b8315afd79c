#ifndef OASIS_CTAP_H
#define OASIS_CTAP_H
#endif
