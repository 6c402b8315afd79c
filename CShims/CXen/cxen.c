#include "cxen.h"
