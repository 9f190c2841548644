"""What is recorded and reported: the audit chain's check, transition reports, their renderings."""
