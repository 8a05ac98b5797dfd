"""The client swarm: many Phoenix clients in one process, recording every disconnect and offline time."""
