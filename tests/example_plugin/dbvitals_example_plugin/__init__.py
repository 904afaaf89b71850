"""An example plugin check: reports a marker key if one exists in the target's Redis database."""

from __future__ import annotations

from checks.contract import Check, Scope
from checks.model import Finding, Severity

MARKER = "dbvitals-example-plugin:marker"


class MarkerKey(Check):
    id = "redis.example-marker"
    engine = "redis"
    title = "Example plugin: marker key present"
    severity = Severity.INFO
    rationale = "Shows that checks from another package are discovered through entry points."

    async def gather(self, session, scope: Scope) -> bool:
        return bool(await session.client.exists(MARKER))

    def evaluate(self, facts: bool, scope: Scope) -> list[Finding]:
        if not facts:
            return []
        return [self.finding(scope, object=MARKER, title=self.title, message="The example plugin's marker key exists.")]
