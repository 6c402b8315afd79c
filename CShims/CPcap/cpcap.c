#include "cpcap.h"
