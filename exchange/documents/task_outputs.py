"""The documents a Task's outputs point at, as the advice-request workflow sees them
(`advice_requests.workflow.DocumentLookup`): completion needs the owner's advice document
related to the Task, and written reasons for not complying may be a document.

It lives beside the documents it reads, and the front door hands it to
`advice_requests.service.change_task`: the documents package already depends on advice
requests (a Task's parties decide who reads its documents), so advice requests must not
import documents back.
"""

from __future__ import annotations

import uuid

from sqlalchemy.orm import Session

from exchange.advice_requests.workflow import Document, DocumentLookup
from exchange.agreements.models import Organisation
from exchange.documents.models import DocumentRow


def output_documents(session: Session) -> DocumentLookup:
    """Look up `DocumentReference/<id>` in `session`: a current document's type, custodian
    and related Task, or None (no such document, or superseded)."""

    def lookup(reference: str) -> Document | None:
        if not reference.startswith("DocumentReference/"):
            return None
        try:
            document_id = uuid.UUID(reference.removeprefix("DocumentReference/"))
        except ValueError:
            return None
        document = session.get(DocumentRow, document_id)
        if document is None or document.status != "current":
            return None
        custodian = session.get(Organisation, document.custodian_id)
        return Document(
            document.doc_type,
            custodian.ods if custodian else "",
            frozenset({str(document.task_id)}),
        )

    return lookup
