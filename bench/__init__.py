"""`make bench`: latency, throughput and memory of the system, measured on real parts (see __main__)."""
