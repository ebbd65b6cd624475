"""``iomt-ad replay``: stream CICIoMT2024 CSV rows as flow records (JSON, or Avro with
``--wire-format avro``), at a chosen rate.

Each row becomes one JSON message with the schema's field names (the 39 features as the dataset
names them, plus ``record_id`` (unique), ``source_id`` (file and row number: the message key),
``event_time`` (stamped at send time, UTC ISO-8601) and ``label`` (the class from the file name)).
Destinations: a Kafka topic (``--bootstrap`` + ``--topic``) or a directory of JSON-lines files
(``--to-dir``) for Spark's file source in the embedded default. Ctrl-C flushes what was sent.
"""
from __future__ import annotations

import argparse
import logging
import math
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pandas as pd

from jobs.publish import (DirectorySink, Sink, add_kafka_security_argument, add_wire_format_arguments, kafka_sink,
                          message_encoder_for)
from jobs.wire import Encoder, json_encoder
from models.training.datasets import LABEL_COLUMN, ROW_NUMBER_COLUMN, SOURCE_FILE_COLUMN, load_flows_pandas
from schemas.flow_record import EVENT_TIME, FEATURES, LABEL, RECORD_ID, SOURCE_ID

log = logging.getLogger(__name__)

DEFAULT_TOPIC = "iomt_traffic_stream"


@dataclass(frozen=True)
class ReplayOptions:
    rate: float                 # messages per second; 0 = as fast as possible
    limit: int | None = None    # stop after this many messages
    loop: bool = False          # start again from the first row when the data ends
    shuffle: bool = False       # shuffle row order (seeded) instead of file order
    seed: int = 0


def _number(value: float) -> float | str | None:
    if math.isnan(value):
        return None  # an empty cell: a missing measurement, imputed downstream
    return value  # json.dumps writes inf as Infinity, which Spark's JSON reader accepts


def iter_messages(flows: pd.DataFrame, options: ReplayOptions) -> Iterator[tuple[str, dict[str, object]]]:
    """(key, message) pairs in replay order; ``event_time`` and ``record_id`` are set at send time."""
    features = flows[list(FEATURES)].to_numpy(dtype=np.float64)
    keys = (flows[SOURCE_FILE_COLUMN] + ":" + flows[ROW_NUMBER_COLUMN].astype(str)).to_numpy()
    labels = flows[LABEL_COLUMN].to_numpy()
    rng = np.random.default_rng(options.seed)
    sent = 0
    while True:
        order = rng.permutation(len(flows)) if options.shuffle else np.arange(len(flows))
        for index in order:
            if options.limit is not None and sent >= options.limit:
                return
            message: dict[str, object] = {
                RECORD_ID: uuid.uuid4().hex,
                SOURCE_ID: str(keys[index]),
                EVENT_TIME: datetime.now(timezone.utc).isoformat(timespec="microseconds"),
                LABEL: str(labels[index]),
            }
            message.update({name: _number(v) for name, v in zip(FEATURES, features[index])})
            yield str(keys[index]), message
            sent += 1
        if not options.loop:
            return


def replay(flows: pd.DataFrame, sink: Sink, options: ReplayOptions, progress: bool = True,
           encode: Encoder | None = None) -> int:
    """Send ``flows`` to ``sink`` at ``options.rate`` messages/s, each message as ``encode``
    writes it (default JSON); returns the number sent."""
    from tqdm import tqdm

    total = None if options.loop else min(len(flows), options.limit or len(flows))
    sent = 0
    started = time.monotonic()
    encode = encode or json_encoder()
    bar = tqdm(total=total, unit="msg", disable=not progress, smoothing=0.1)
    try:
        for key, message in iter_messages(flows, options):
            if options.rate > 0:
                due = started + sent / options.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            sink.send(key, encode(message))
            sent += 1
            bar.update(1)
            if sent % 1000 == 0:
                bar.set_postfix(rate=f"{sent / max(time.monotonic() - started, 1e-9):,.0f}/s")
    except KeyboardInterrupt:
        log.warning("interrupted: flushing %d sent messages", sent)
    finally:
        bar.close()
        sink.close()
    elapsed = max(time.monotonic() - started, 1e-9)
    log.info("sent %d messages in %.1f s (%.0f msg/s)", sent, elapsed, sent / elapsed)
    return sent


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", nargs="+", required=True, metavar="FILE_OR_DIR",
                        help="official CICIoMT2024 *.pcap.csv files or directories of them")
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--bootstrap", metavar="HOST:PORT", help="Kafka bootstrap servers")
    target.add_argument("--to-dir", metavar="DIR", help="write JSON-lines files here instead of Kafka")
    parser.add_argument("--topic", default=DEFAULT_TOPIC, help=f"Kafka topic (default {DEFAULT_TOPIC})")
    add_kafka_security_argument(parser)
    add_wire_format_arguments(parser)
    parser.add_argument("--rate", type=float, default=1000.0, help="messages per second (0 = unthrottled)")
    parser.add_argument("--limit", type=int, default=None, help="stop after N messages")
    parser.add_argument("--loop", action="store_true", help="start over when the data ends")
    parser.add_argument("--shuffle", action="store_true", help="shuffle the rows (seeded by --seed)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    encode = message_encoder_for(args)  # before loading: a wrong flag fails fast
    flows = load_flows_pandas(args.data)
    sink: Sink = kafka_sink(args.bootstrap, args.topic, args.conf) if args.bootstrap else DirectorySink(args.to_dir)
    options = ReplayOptions(rate=args.rate, limit=args.limit, loop=args.loop, shuffle=args.shuffle, seed=args.seed)
    replay(flows, sink, options, progress=not args.no_progress, encode=encode)
    return 0
