#ifndef OASIS_CXEN_H
#define OASIS_CXEN_H
#include <xenctrl.h>
#include <xengnttab.h>
#include <xenevtchn.h>
#include <xenstore.h>
#endif
