"""Testbed scenarios: the fleets and fault sequences the demo runs and the end-to-end tests assert."""
