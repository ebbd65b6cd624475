"""Operations commands: ``demo`` (the embedded default end to end), ``replay`` (dataset rows to
Kafka or files) and ``dist`` (what spark-submit needs on a cluster)."""
