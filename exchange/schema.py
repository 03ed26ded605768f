"""Every table of the service, for Alembic and the model-vs-migration test."""

from __future__ import annotations

from sqlalchemy import MetaData

from exchange.audit import models as _audit_models  # noqa: F401  (registers the tables)
from exchange.auth import models as _auth_models  # noqa: F401
from exchange.consent import models as _consent_models  # noqa: F401
from exchange.db import Base
from exchange.documents import models as _document_models  # noqa: F401
from exchange.patients import models as _patient_models  # noqa: F401
from exchange.registry import models as _registry_models  # noqa: F401
from exchange.requests import models as _request_models  # noqa: F401
from exchange.resources import models as _resource_models  # noqa: F401

metadata: MetaData = Base.metadata
