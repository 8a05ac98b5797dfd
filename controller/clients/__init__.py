"""Clients of the services the controller talks to; each converts its transport's errors to ours."""
