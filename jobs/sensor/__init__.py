"""The sensor (``iomt-ad sensor``): packets -> per-device windows -> the 39 features -> flow records.
``capture`` (libpcap: files and live), ``decode`` (header fields, vectorised), ``devices`` (who a
packet belongs to), ``features`` (the dataset's features of a window), ``windows`` (per-device
windows across batches), ``records`` (the wire format), ``report`` (offline analysis), ``command``."""
