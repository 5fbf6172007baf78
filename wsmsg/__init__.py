"""One message value for all of wscheck: `Msg(key, params)`, rendered late, in the language a front chooses.

A neutral package: `checks/` and `bot/` both import it and it imports neither (import-linter contract). The
templates are data (`wsmsg/locales/<lang>/<domain>.toml`), loaded once with tomllib; see wsmsg/catalog.py.
"""

from wsmsg.catalog import CATALOG, LANGS, Catalog, placeholders
from wsmsg.duration import duration, timing
from wsmsg.msg import Msg, joined, msg, verbatim

__all__ = ["CATALOG", "LANGS", "Catalog", "Msg", "duration", "joined", "msg", "placeholders", "timing", "verbatim"]
