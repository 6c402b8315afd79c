// OasisOpenFlow: placeholder until the module lands.
