"""Grafana as code (``iomt-ad grafana``): ``dashboards`` and ``alerts`` are generated from
``flux`` (the queries) and ``sdk`` (the datasource and query target they share); ``command``
writes them under docker/grafana."""
