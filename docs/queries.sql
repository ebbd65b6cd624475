-- Example analyst queries for IoMT-AD's Delta tables (docs/tables.md describes every column).
-- Run one with `iomt-ad sql --example NAME`, list them with `iomt-ad sql --list-examples`,
-- or paste the SQL into `iomt-ad sql "..."`. Each table is a view named like the table.
-- CI runs every query below over tables written by the streaming and re-scoring jobs
-- (tests/batch/test_analyst_sql.py), so they stay in step with the schemas.

-- name: top_anomalous_sources_per_hour
-- The ten sources with the most alerts in each hour, with their worst score and the attack
-- class the classifier names most often.
SELECT hour, source_id, alerts, max_score, top_class
FROM (
  SELECT hour, source_id, alerts, max_score, top_class,
         row_number() OVER (PARTITION BY hour ORDER BY alerts DESC, max_score DESC, source_id) AS rank
  FROM (
    SELECT date_trunc('HOUR', event_time) AS hour, source_id, count(*) AS alerts,
           round(max(ensemble_score), 3) AS max_score, mode(predicted_class) AS top_class
    FROM alerts
    GROUP BY date_trunc('HOUR', event_time), source_id
  )
)
WHERE rank <= 10
ORDER BY hour DESC, alerts DESC, max_score DESC;

-- name: detection_per_class_by_model_version
-- Share of records flagged per true class (label) and model version: the stream's own scores
-- and every re-scored version side by side (needs flows_rescored: run `iomt-ad rescore` first).
SELECT model_version, scored_by, label, count(*) AS records,
       sum(CAST(is_anomaly AS INT)) AS flagged,
       round(avg(CAST(is_anomaly AS DOUBLE)), 4) AS detection_rate
FROM (
  SELECT model_version, 'stream' AS scored_by, label, is_anomaly FROM flows_scored
  UNION ALL
  SELECT model_version, 'rescore' AS scored_by, label, is_anomaly FROM flows_rescored
)
WHERE label IS NOT NULL
GROUP BY model_version, scored_by, label
ORDER BY model_version, scored_by, label;

-- name: false_positives_per_hour
-- Benign records (true label) flagged as anomalous, per hour and model version: the alert
-- noise security teams see. The bundle's threshold targets 1% on benign validation data.
SELECT date_trunc('HOUR', event_time) AS hour, model_version,
       count(*) AS benign_records,
       sum(CAST(is_anomaly AS INT)) AS false_positives,
       round(avg(CAST(is_anomaly AS DOUBLE)), 4) AS false_positive_rate
FROM flows_scored
WHERE label = 'Benign'
GROUP BY date_trunc('HOUR', event_time), model_version
ORDER BY hour DESC, model_version;

-- name: quarantine_reasons
-- Why records were quarantined, how often, where they came from and when (first/last seen).
SELECT reason, origin, count(*) AS records,
       min(ingest_time) AS first_seen, max(ingest_time) AS last_seen
FROM quarantine
GROUP BY reason, origin
ORDER BY records DESC, reason;

-- name: traffic_per_protocol_per_minute
-- Records and anomalies per minute and protocol (traffic_1m holds one row per micro-batch and
-- group, so totals are sums).
SELECT minute, protocol, sum(records) AS records,
       sum(CASE WHEN is_anomaly THEN records ELSE 0 END) AS anomalies,
       round(sum(mean_ensemble_score * records) / sum(records), 4) AS mean_ensemble_score
FROM traffic_1m
GROUP BY minute, protocol
ORDER BY minute DESC, records DESC;

-- name: alerts_by_category_and_severity
-- Alerts per predicted attack category and severity, with the features the autoencoder blames
-- most often.
SELECT predicted_category, severity, count(*) AS alerts,
       mode(top_features[0]) AS most_blamed_feature
FROM alerts
GROUP BY predicted_category, severity
ORDER BY alerts DESC;

-- name: rescore_decision_changes
-- Where a re-scored model version decides differently from the stream, per true class.
SELECT model_version, stream_model_version, label,
       sum(CASE WHEN is_anomaly AND NOT stream_is_anomaly THEN 1 ELSE 0 END) AS newly_flagged,
       sum(CASE WHEN stream_is_anomaly AND NOT is_anomaly THEN 1 ELSE 0 END) AS no_longer_flagged,
       count(*) AS records
FROM flows_rescored
GROUP BY model_version, stream_model_version, label
ORDER BY model_version, label;

-- name: stream_health_per_hour
-- Micro-batches per hour: records, quarantine, mean batch duration and InfluxDB failures.
SELECT date_trunc('HOUR', logged_at) AS hour, count(*) AS batches, sum(records) AS records,
       sum(quarantined) AS quarantined, round(avg(seconds), 2) AS mean_batch_seconds,
       sum(influx_failed) AS influx_failed_points
FROM batch_log
GROUP BY date_trunc('HOUR', logged_at)
ORDER BY hour DESC;

-- name: scoring_runs_latest
-- The latest batch re-scoring runs: model version, range, counts, duration and outcome.
SELECT run_id, status, model_version, range_from, range_to, rows_read, rows_written, anomalies,
       seconds, started_at
FROM scoring_runs
ORDER BY started_at DESC
LIMIT 20;

-- name: alerts_per_incident
-- Each incident beside the alerts it grouped, found again by its rule (jobs/stream/incidents.py):
-- same subject (the alert's device_id, else its source_id up to the first ':'), same attack
-- category, event time within the incident's first and last alert. alerts_found equals the
-- incident's own count.
SELECT i.incident_id, i.subject, i.category, i.state, i.max_severity, i.alerts AS incident_alerts,
       count(a.record_id) AS alerts_found, round(max(a.ensemble_score), 3) AS max_score,
       min(a.event_time) AS first_alert, max(a.event_time) AS last_alert
FROM incidents i
JOIN alerts a
  ON coalesce(nullif(a.device_id, ''), split(coalesce(a.source_id, ''), ':')[0]) = i.subject
 AND coalesce(a.predicted_category, 'unknown') = i.category
 AND a.event_time BETWEEN i.first_seen AND i.last_seen
GROUP BY i.incident_id, i.subject, i.category, i.state, i.max_severity, i.alerts
ORDER BY incident_alerts DESC;

-- name: drift_per_hour
-- How far each hour's traffic lies from the model's reference, per device group (the drift table,
-- jobs/drift): records, the score distribution's PSI, the feature furthest from its own, and how
-- many measures the job called drifted (drift.threshold, drift.min_records). PSI below 0.1: no
-- shift; 0.1-0.2: moderate; above 0.2: significant.
SELECT hour, device_group, model_version,
       max(CASE WHEN measure = 'ensemble_score' THEN records END) AS records,
       round(max(CASE WHEN measure = 'ensemble_score' THEN psi END), 3) AS score_psi,
       max_by(measure, CASE WHEN measure <> 'ensemble_score' THEN psi END) AS top_feature,
       round(max(CASE WHEN measure <> 'ensemble_score' THEN psi END), 3) AS top_feature_psi,
       sum(CASE WHEN drifted THEN 1 ELSE 0 END) AS drifted_measures
FROM drift
GROUP BY hour, device_group, model_version
ORDER BY hour DESC, drifted_measures DESC, records DESC;
