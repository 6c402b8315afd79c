// OasisDevices: placeholder until the module lands.
