"""Which bundles score a micro-batch. Without ``stream.model_role`` it is ``stream.model_dir``, as it
always was. With ``stream.model_role: champion`` the driver reads the model registry
(:mod:`jobs.model_registry`) when each batch begins: the champion scores the batch (its
verdicts make alerts and incidents), and the challenger, when one is set, scores the same records
in shadow (``flows_shadow``, never alerts). The versions chosen travel with the batch's tasks, so
every task of a batch scores with the same versions: ``promote`` and ``rollback`` take effect at the
next batch, without a restart and without a batch scored by two champions.

Each version is checked on the driver before its first batch (the files its manifest pins, the
manifest's sha256 recorded at registration), and every worker checks the same pin when it loads it.
A registry the driver cannot read, or a champion that fails its check, fails the batch: the
checkpoint keeps it, and it is retried when the job restarts.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from jobs.errors import UserError

if TYPE_CHECKING:
    from jobs.config import AppConfig
    from jobs.model_registry import RegisteredModel
    from models.bundle import BundleTrust

log = logging.getLogger(__name__)


class NoChampionError(UserError):
    """``stream.model_role`` is set but the registry names no champion."""


@dataclass(frozen=True)
class BatchModel:
    """A bundle as a batch's tasks load it: where it is and the manifest sha256 it must have."""

    bundle_dir: str
    manifest_sha256: str | None
    version: str | None = None  # known when it came from the registry


@dataclass(frozen=True)
class BatchModels:
    champion: BatchModel
    challenger: BatchModel | None = None


def trust_for(model: BatchModel, config: "AppConfig") -> "BundleTrust":
    """The check a worker applies before it loads ``model``: its pin, and unpickling as configured."""
    from models.bundle import BundleTrust

    trust = config.stream.model_trust
    pin = model.manifest_sha256 or trust.manifest_sha256
    where = "the model registry" if model.version is not None else "stream.model_trust"
    return BundleTrust(manifest_sha256=pin, allow_unpickle=trust.allow_unpickle, where=where)


class ModelRoles:
    """The driver's view of the registry: the batch's models, checked once per version."""

    def __init__(self, config: "AppConfig") -> None:
        self.config = config
        self.role = config.stream.model_role
        self._checked: set[tuple[str, str]] = set()
        self._last: BatchModels | None = None
        self._registry = None
        if self.role is not None:
            from jobs.model_registry import ModelRegistry

            self._registry = ModelRegistry(config.stream.tables)

    def for_batch(self, batch_id: int) -> BatchModels:
        """The models that score batch ``batch_id`` (read from the registry now)."""
        if self._registry is None:
            return BatchModels(BatchModel(str(self.config.stream.model_dir), self.config.stream.model_trust.manifest_sha256))
        from jobs.model_registry import CHALLENGER, CHAMPION

        aliases = self._registry.aliases()
        versions = self._registry.versions()
        if CHAMPION not in aliases:
            raise NoChampionError("stream.model_role is champion but the model registry names none: "
                                  "`iomt-ad models register BUNDLE_DIR --as champion` (or `iomt-ad models promote VERSION`)")
        champion = self._checked_model(versions[aliases[CHAMPION]])
        challenger = None
        if CHALLENGER in aliases and aliases[CHALLENGER] != aliases[CHAMPION]:
            challenger = self._checked_model(versions[aliases[CHALLENGER]])
        models = BatchModels(champion, challenger)
        if models != self._last:
            log.info("batch %d: champion %s%s", batch_id, champion.version,
                     f", challenger {challenger.version} in shadow" if challenger else ", no challenger")
            self._last = models
        return models

    def _checked_model(self, registered: "RegisteredModel") -> BatchModel:
        from models.bundle import BundleTrust, check_bundle
        from udfs.model_cache import driver_bundle_dir

        model = BatchModel(registered.bundle, registered.manifest_sha256, registered.version)
        key = (model.bundle_dir, registered.manifest_sha256)
        if key not in self._checked:
            check_bundle(driver_bundle_dir(model.bundle_dir),
                         BundleTrust(manifest_sha256=registered.manifest_sha256,
                                     allow_unpickle=self.config.stream.model_trust.allow_unpickle,
                                     where="the model registry"))
            self._checked.add(key)
        return model
