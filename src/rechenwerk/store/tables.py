"""Imports every domain's models so that ``Base.metadata`` is complete (Alembic, tests).

Each domain keeps its tables in its own ``models.py``; add one import line per domain.
"""

from __future__ import annotations

import rechenwerk.access.models
import rechenwerk.access.oidc.models
import rechenwerk.accounting.models
import rechenwerk.jobs.models
import rechenwerk.notifications.models
import rechenwerk.support.models  # noqa: F401
from rechenwerk.store.base import Base

metadata = Base.metadata
