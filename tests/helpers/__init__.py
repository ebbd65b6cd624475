"""Helpers shared by every test folder: producing test traffic, reading the tables, InfluxDB
reference encoders and queries, and the fuzzing strategies."""
