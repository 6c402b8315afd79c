// OasisDNS: placeholder until the module lands.
