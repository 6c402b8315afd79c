// OasisBits: placeholder until the module lands.
