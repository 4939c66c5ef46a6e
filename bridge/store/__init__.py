"""Storage: the only package that knows table names or SQL.

One module per aggregate, each a repository on the shared SQLite connection (`db`):
`conversations` (with the cache of recent ones), `timeline` (lines, outbox, commands run),
`agents`, `tickets`, `reports`, `events`, `kv`, `files`, `retention` (purges); `schema` holds
the migrations and `contracts`
the protocols another engine would implement. `Store` puts them together.
"""

from bridge.store.facade import Store
from bridge.store.kv import StoreBackendState
from bridge.store.schema import StoreError, StoreUnavailable

__all__ = ["Store", "StoreBackendState", "StoreError", "StoreUnavailable"]
