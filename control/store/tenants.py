"""Projects (tenants) and their AK/SK credentials."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import async_sessionmaker

from control import ids
from control.auth.secrets import SecretBox
from control.store.models import Credential, Project
from control.timefmt import utcnow


@dataclass(frozen=True, slots=True)
class IssuedCredential:
    project_id: str
    access_key: str
    secret_key: str


@dataclass(frozen=True, slots=True)
class CredentialInfo:
    access_key: str
    project_id: str
    description: str
    created_at: datetime
    revoked_at: datetime | None


class TenantStore:
    def __init__(self, sessions: async_sessionmaker, box: SecretBox) -> None:
        self._sessions = sessions
        self._box = box

    async def ensure_project(self, project_id: str | None = None, name: str = "default") -> str:
        project_id = project_id or ids.project_id()
        async with self._sessions.begin() as s:
            if await s.get(Project, project_id) is None:
                s.add(Project(project_id=project_id, name=name, created_at=utcnow()))
        return project_id

    async def project_exists(self, project_id: str) -> bool:
        async with self._sessions() as s:
            return await s.get(Project, project_id) is not None

    async def project_name(self, project_id: str) -> str:
        async with self._sessions() as s:
            p = await s.get(Project, project_id)
            return p.name if p else ""

    async def list_projects(self) -> list[str]:
        async with self._sessions() as s:
            return list((await s.scalars(select(Project.project_id).order_by(Project.created_at))).all())

    async def count_active_credentials(self) -> int:
        async with self._sessions() as s:
            rows = await s.scalars(select(Credential.access_key).where(Credential.revoked_at.is_(None)))
            return len(rows.all())

    async def create_credential(
        self,
        project_id: str,
        *,
        access_key: str | None = None,
        secret_key: str | None = None,
        description: str = "",
    ) -> IssuedCredential:
        ak = access_key or ids.access_key()
        sk = secret_key or ids.secret_key()
        async with self._sessions.begin() as s:
            existing = await s.get(Credential, ak)
            if existing is not None:
                if existing.project_id != project_id:
                    raise ValueError(f"access key {ak} belongs to another project")
                existing.secret_sealed = self._box.seal(sk)
                existing.revoked_at = None
            else:
                s.add(
                    Credential(
                        access_key=ak,
                        project_id=project_id,
                        secret_sealed=self._box.seal(sk),
                        description=description,
                        created_at=utcnow(),
                    )
                )
        return IssuedCredential(project_id, ak, sk)

    async def lookup(self, access_key: str) -> tuple[str, str] | None:
        """(project_id, secret_key) of an active AK, or None."""
        async with self._sessions() as s:
            cred = await s.get(Credential, access_key)
            if cred is None or cred.revoked_at is not None:
                return None
            return cred.project_id, self._box.open(cred.secret_sealed)

    async def list_credentials(self) -> list[CredentialInfo]:
        async with self._sessions() as s:
            rows = await s.scalars(select(Credential).order_by(Credential.created_at))
            return [
                CredentialInfo(c.access_key, c.project_id, c.description, c.created_at, c.revoked_at)
                for c in rows
            ]

    async def revoke(self, access_key: str) -> bool:
        async with self._sessions.begin() as s:
            result = await s.execute(
                update(Credential)
                .where(Credential.access_key == access_key, Credential.revoked_at.is_(None))
                .values(revoked_at=utcnow())
            )
            return result.rowcount > 0
