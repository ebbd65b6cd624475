"""Jobs over the stored tables: ``rescore`` (re-scoring with a chosen model version; spark-submit
entry point), ``maintain`` (OPTIMIZE and VACUUM) and ``sql`` (analyst queries)."""
