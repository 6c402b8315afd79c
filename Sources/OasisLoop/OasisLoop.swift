// OasisLoop: placeholder until the module lands.
