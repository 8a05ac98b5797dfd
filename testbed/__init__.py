"""The local testbed: a reference Phoenix Channels server, a client swarm, HAProxy and Prometheus.

It stands in for the real control plane so the whole of drainctl runs, and is tested, on one machine.
"""
