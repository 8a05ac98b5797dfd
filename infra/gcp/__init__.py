"""GCP: a global VPC, a regional API fleet per region, one global external Application Load Balancer."""
