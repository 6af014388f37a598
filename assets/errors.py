"""The one base of every error a user can fix (a bad file, a selection, a credential, a busy target): a command
says it in one line and exits 2, a flow run fails with it as its message; anything else is an internal error shown
with a traceback under ``--debug``.

It lives here, at the bottom of the import order (assets <- quality, ingestion <- orchestration), so that each
package's errors subclass it without importing upward; ``orchestration.core.errors`` re-exports it.
"""

from __future__ import annotations


class UserError(Exception):
    """An error whose message names the file, the node or the setting, and the fix."""
