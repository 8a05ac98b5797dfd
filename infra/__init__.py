"""Pulumi programs: multi-region API fleets, read replicas and short-idle load balancers."""
