"""Applications: the repository behind /v2/apps and the join path."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import async_sessionmaker

from control import ids
from control.auth.secrets import SecretBox
from control.errors import RestErrors, RestException
from control.store.models import App
from control.timefmt import rfc3339, utcnow

ACTIVATION = "ACTIVATION"
DEACTIVATION = "DEACTIVATION"
ARREARS = "ARREARS"
DELETED = "DELETED"
LISTABLE_STATES = (ACTIVATION, DEACTIVATION, ARREARS)


@dataclass(frozen=True, slots=True)
class JoinableApp:
    """What the join path needs to know about an app (any project)."""

    app_id: str
    project_id: str
    state: str
    auth_enable: bool
    auth_expire: int
    app_key: str


class AppStore:
    def __init__(self, sessions: async_sessionmaker, box: SecretBox, *, max_apps: int, domain: str) -> None:
        self._sessions = sessions
        self._box = box
        self._max_apps = max_apps
        self._domain = domain

    # ------------------------------------------------------------------ serialisation

    def to_json(self, app: App, tenant_name: str) -> dict:
        return {
            "app_name": app.app_name,
            "app_id": app.app_id,
            "state": {"state": app.state, "update_time": rfc3339(app.state_updated_at)},
            "scope": app.scope,
            "tenant_name": tenant_name,
            "domain": app.domain,
            "create_time": rfc3339(app.created_at),
            "authentication": {
                "enable": app.auth_enable,
                "expire": app.auth_expire,
                "app_key": self._box.open(app.app_key_sealed),
                "update_time": rfc3339(app.auth_updated_at),
            },
            "callbacks": {
                "push_callback": {"url": "", "auth_key": "", "update_time": ""},
                "record_callback": {
                    "url": app.record_callback_url,
                    "auth_key": self._box.open(app.record_callback_key_sealed),
                    "notify_event_subscription": app.record_callback_events or [],
                    "update_time": rfc3339(app.record_callback_updated_at)
                    if app.record_callback_updated_at
                    else "",
                },
            },
            "auto_record_mode": {
                "mode": app.auto_record_mode,
                "record_rule_id": app.auto_record_rule_id,
                "update_time": rfc3339(app.auto_record_updated_at),
            },
        }

    @staticmethod
    def state_json(app: App) -> dict:
        return {"app_id": app.app_id, "state": {"state": app.state, "update_time": rfc3339(app.state_updated_at)}}

    # ------------------------------------------------------------------ operations

    async def create(self, project_id: str, app_name: str) -> str:
        now = utcnow()
        app_id = ids.app_id()
        try:
            async with self._sessions.begin() as s:
                # Serialise creations per project so the count limit and the name check hold.
                await s.execute(text("SELECT pg_advisory_xact_lock(hashtext(:p))"), {"p": project_id})
                live = (App.project_id == project_id) & (App.state != DELETED)
                if await s.scalar(select(App.app_id).where(live, App.app_name == app_name)):
                    raise RestException(RestErrors.APP_EXIST)
                count = await s.scalar(select(func.count()).select_from(App).where(live))
                if count >= self._max_apps:
                    raise RestException(RestErrors.APPS_EXCEED)
                s.add(
                    App(
                        app_id=app_id,
                        project_id=project_id,
                        app_name=app_name,
                        state=ACTIVATION,
                        state_updated_at=now,
                        scope="GLOBAL",
                        domain=f"{app_id}.{self._domain}",
                        created_at=now,
                        auth_enable=True,
                        auth_expire=300,
                        app_key_sealed=self._box.seal(ids.app_key()),
                        auth_updated_at=now,
                        record_callback_url="",
                        record_callback_key_sealed="",
                        record_callback_events=None,
                        auto_record_mode="AUTO_RECORD_OFF",
                        auto_record_rule_id="",
                        auto_record_updated_at=now,
                    )
                )
        except IntegrityError:
            raise RestException(RestErrors.APP_EXIST) from None
        return app_id

    async def list(self, project_id: str, state: str | None, page: int, limit: int) -> tuple[int, list[App]]:
        where = [App.project_id == project_id, App.state != DELETED]
        if state:
            where.append(App.state == state)
        async with self._sessions() as s:
            count = await s.scalar(select(func.count()).select_from(App).where(*where))
            rows = await s.scalars(
                select(App).where(*where).order_by(App.created_at, App.app_id).offset(page * limit).limit(limit)
            )
            return int(count or 0), list(rows.all())

    async def get(self, project_id: str, app_id: str) -> App:
        async with self._sessions() as s:
            app = await s.get(App, app_id)
        if app is None or app.project_id != project_id or app.state == DELETED:
            raise RestException(RestErrors.APP_NOT_EXIST)
        return app

    async def set_state(self, project_id: str, app_id: str, state: str) -> App:
        async with self._sessions.begin() as s:
            app = await s.get(App, app_id, with_for_update=True)
            if app is None or app.project_id != project_id or app.state == DELETED:
                raise RestException(RestErrors.APP_NOT_EXIST)
            if app.state != state:
                app.state = state
                app.state_updated_at = utcnow()
            return app

    async def delete(self, project_id: str, app_id: str) -> None:
        async with self._sessions.begin() as s:
            app = await s.get(App, app_id, with_for_update=True)
            if app is None or app.project_id != project_id or app.state == DELETED:
                raise RestException(RestErrors.APP_NOT_EXIST)
            now = utcnow()
            app.state = DELETED
            app.state_updated_at = now
            app.deleted_at = now

    async def for_join(self, app_id: str) -> JoinableApp | None:
        async with self._sessions() as s:
            app = await s.get(App, app_id)
        if app is None:
            return None
        return JoinableApp(
            app.app_id, app.project_id, app.state, app.auth_enable, app.auth_expire,
            self._box.open(app.app_key_sealed),
        )
