#!/usr/bin/env bash
# Fetch IoMT-AD's JVM jars from Maven Central into the cache, once per pom version.
#   conf/jars/fetch_jars.sh [CACHE_DIR]
# Result: CACHE/jars/spark/*.jar (Kafka source, Delta, spark-avro, S3A for Spark) and CACHE/jars/broker/*.jar
# (a Kafka broker for tests). A stamp holding the pom's sha256 makes reruns a no-op.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${1:-${IOMT_AD_CACHE:-$HOME/.cache/iomt-ad}}"
pom="$here/pom.xml"
stamp_value="$(sha256sum "$pom" | cut -d' ' -f1)"

for profile in spark broker; do
  out="$cache/jars/$profile"
  if [[ -f "$out/.stamp" && "$(cat "$out/.stamp")" == "$stamp_value" ]]; then
    continue
  fi
  echo "fetching $profile jars into $out" >&2
  rm -rf "$out.tmp"
  mvn -q -B -s "$here/settings.xml" -f "$pom" -P "$profile" \
    dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$out.tmp" >&2
  rm -rf "$out"
  mv "$out.tmp" "$out"
  echo "$stamp_value" > "$out/.stamp"
done
