"""Schemas of IoMT-AD: the flow record, class names, Delta tables and InfluxDB points."""
