"""The test services remove the temporary directories they made (a full CI run left gigabytes of
Kafka logs and InfluxDB data in /tmp before), and keep a directory they were given."""
import pytest

from tests.services.influxdb_server import InfluxServer
from tests.services.kafka_broker import KafkaBroker
from tests.services.object_store import ObjectStore

pytestmark = [pytest.mark.kafka, pytest.mark.influxdb, pytest.mark.objectstore, pytest.mark.slow]


@pytest.mark.parametrize("service", [InfluxServer, KafkaBroker, ObjectStore], ids=["influxdb", "kafka", "objectstore"])
def test_a_service_removes_its_own_temporary_directory_and_keeps_a_given_one(service, tmp_path) -> None:
    own = service()
    own.start()
    assert any(own.work_dir.iterdir())  # it wrote its data there
    own.stop()
    assert not own.work_dir.exists()

    given = service(tmp_path / "data")
    given.start()
    given.stop()
    assert given.work_dir.is_dir() and any(given.work_dir.iterdir())
