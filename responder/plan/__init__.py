"""The failover plan: what a move to each region would meet, evaluated ahead of the outage."""
