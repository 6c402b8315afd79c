// SwiftPM needs a source file in every C target; the shim is all in the header.
#include "cprefetch.h"
