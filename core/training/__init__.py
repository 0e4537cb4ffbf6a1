"""One fold trained: the network, its weights, features, the fit loop, the device, and the fold job."""
