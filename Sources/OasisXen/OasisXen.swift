// OasisXen: placeholder until the module lands.
