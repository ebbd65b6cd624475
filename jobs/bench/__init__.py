"""The benchmark (``iomt-ad bench``): ``command`` (the run and its reports), ``scoring`` (the pure
scoring core, pinned to a number of cores), ``e2e`` (throughput, latency and memory through a real
broker) and ``influx_stand_in`` (InfluxDB on another host, stood in for on loopback)."""
