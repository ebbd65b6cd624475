"""The benchmark's stand-in for an InfluxDB server on another host (jobs.bench.influx_stand_in): the real
client writes to it as to InfluxDB, and it counts every point it was sent."""
import urllib.error
import urllib.request

import pytest

from jobs.bench.influx_stand_in import DiscardingInfluxSink, points_in
from tests.services.ports import free_port


def test_points_are_the_non_empty_lines() -> None:
    assert points_in(b"") == 0
    assert points_in(b"m,t=a f=1 1\n") == 1
    assert points_in(b"m f=1 1\n\nm f=2 2\nm f=3 3") == 3


def test_the_influxdb_client_writes_to_it_and_every_point_is_counted() -> None:
    from influxdb_client import InfluxDBClient
    from influxdb_client.client.write_api import SYNCHRONOUS

    with DiscardingInfluxSink(free_port()) as sink:
        with InfluxDBClient(url=sink.url, token="unused", org="iomt") as client:
            write = client.write_api(write_options=SYNCHRONOUS)
            write.write(bucket="iomt", record=b"flow_scores,protocol=TCP ensemble_score=0.5 1\n"
                                              b"flow_scores,protocol=UDP ensemble_score=2 2\n", write_precision="ns")
            write.write(bucket="iomt", record="flow_scores ensemble_score=1 3", write_precision="ns")
        assert sink.counts() == {"points": 3, "requests": 2, "measurements": {"flow_scores": 3}}
        with pytest.raises(urllib.error.HTTPError) as error:
            urllib.request.urlopen(urllib.request.Request(sink.url + "/api/v2/query", data=b"x", method="POST"))
        assert error.value.code == 404
        process = sink.process
    assert process.poll() is not None  # stopped on leaving the block
