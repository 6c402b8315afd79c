#include "ctap.h"
