"""Every table of the service, for Alembic and the model-vs-migration test."""

from __future__ import annotations

from sqlalchemy import MetaData

from exchange import versions as _versions  # noqa: F401
from exchange.advice_requests import models as _advice_request_models  # noqa: F401
from exchange.agreements import models as _agreement_models  # noqa: F401
from exchange.audit import models as _audit_models  # noqa: F401  (registers the tables)
from exchange.auth import models as _auth_models  # noqa: F401
from exchange.consent import models as _consent_models  # noqa: F401
from exchange.db import Base
from exchange.documents import models as _document_models  # noqa: F401
from exchange.patients import models as _patient_models  # noqa: F401
from exchange.reviews import models as _review_models  # noqa: F401
from exchange.users import models as _user_models  # noqa: F401

metadata: MetaData = Base.metadata
