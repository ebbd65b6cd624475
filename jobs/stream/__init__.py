"""The streaming job, on its own: ``score_stream`` (the entry point: ``iomt-ad stream`` and
spark-submit), ``sources`` (Kafka or files), ``parse`` (raw messages to checked, scored records),
``checkpoint_guard`` (the checkpoint must continue the
tables), ``sink`` (foreachBatch), ``table_rows`` (each table's rows of a batch), ``writers`` (the
interface of every destination) with ``delta_writer`` and ``influx_writer`` (its points built by
``influx_points``)."""
