// OasisNet: placeholder until the module lands.
