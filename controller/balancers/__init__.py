"""Load balancers the drain's out-of-rotation step can observe (`core.ports.Balancer`)."""
