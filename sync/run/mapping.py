"""The mapping a run uses: the chosen document, adopted once as a stored revision, bound for ingest and remap."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine

from mappings.schema import MappingDocument
from sync.admin.revisions import ActiveMapping, adopt, choose_mapping, revision_document
from sync.delivery.desired import Catalogs
from sync.run.context import RunContext
from sync.settings import Settings
from sync.store import revisions
from sync.store.mapped import BoundMatcher


def load_mapping(settings: Settings, engine: Engine) -> ActiveMapping:
    """The document this run maps with; any problem stops the run before anything is written.

    The file HOURBRIDGE_MAPPINGS_FILE names when it exists, else the database's current revision
    (the precedence is documented in the README section "The mapping document").
    """
    return choose_mapping(settings, engine)


@dataclass(frozen=True, slots=True)
class RunMapping:
    """The chosen document after adoption: the matcher bound to its revision, and the document itself."""

    active: ActiveMapping
    bound: BoundMatcher

    @property
    def document(self) -> MappingDocument:
        return self.active.document

    @property
    def revision(self) -> int:
        return self.bound.revision

    def catalogs(self, engine: Engine) -> Catalogs:
        """Codes and people by the revision that mapped an entry, for planning and reconciling."""

        def load(revision_id: int) -> MappingDocument:
            with engine.connect() as conn:
                stored = revisions.get(conn, revision_id)
            if stored is None:
                return self.document
            return revision_document(stored).document

        return Catalogs(self.document, self.revision, load)


def adopt_mapping(context: RunContext, active: ActiveMapping) -> RunMapping:
    """Store the settings' file as a revision when its content changed (once per run, before ingest)."""
    revision = adopt(context.engine, active, now=context.clock())
    return RunMapping(active, BoundMatcher(active.matcher, revision))
