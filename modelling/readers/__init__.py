"""The reader study: blinded packets, the reading page, unblinding, and simulated readers."""
