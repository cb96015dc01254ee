"""View as a user: the data as row-level security shows it to one user, read through the
application role (the role the web back end connects as) in that user's context, in a read-only
transaction that is rolled back. The owner's session, which sees everything, only lists users."""

from __future__ import annotations

from dataclasses import dataclass

import anyio.to_thread
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette_admin.routing import route
from starlette_admin.views import CustomView

from afilo_db.errors import ValidationError
from afilo_db.models import UserProfile
from afilo_db.security import APP_ROLE, as_user
from afilo_db.services.cart import Cart, cart_contents
from afilo_db.studio import records

USERS_LISTED = 500


@dataclass(frozen=True)
class UserView:
    clerk_user_id: str
    cart: Cart | None
    tables: list[records.VisibleRows]


def seen_by(engine: Engine, clerk_user_id: str) -> UserView:
    with Session(engine) as session:
        # First statement of the transaction: nothing done here can write.
        session.execute(text("SET TRANSACTION READ ONLY"))
        as_user(session, clerk_user_id)
        own_id = session.execute(select(UserProfile.id)).scalar_one_or_none()
        cart = None if own_id is None else cart_contents(session, own_id)
        tables = records.visible_rows(session, records.user_data_tables(session))
        session.rollback()
    return UserView(clerk_user_id, cart, tables)


class ViewAsUser(CustomView):
    def __init__(self, app_engine: Engine | None) -> None:
        # A route name of its own: unnamed, its page would be called "index" like the dashboard's
        # and, registered later, take that name over (a login without ?next= landed here).
        super().__init__(
            menu_label="View as a user",
            icon="fa fa-user-secret",
            path="/view-as",
            route_name="view_as",
        )
        self.app_engine = app_engine

    @route("")
    async def index(self, request: Request) -> Response:
        assert self._admin is not None, "the view is mounted by the studio"
        owner: Session = request.state.session
        users = await anyio.to_thread.run_sync(
            lambda: owner.execute(
                select(UserProfile.clerk_user_id, UserProfile.email)
                .order_by(UserProfile.email)
                .limit(USERS_LISTED)
            ).all()
        )
        chosen = request.query_params.get("user")
        seen: UserView | None = None
        problem: str | None = None
        if chosen and self.app_engine is not None:
            engine = self.app_engine
            try:
                seen = await anyio.to_thread.run_sync(seen_by, engine, chosen)
            except ValidationError as error:
                problem = "; ".join(error.problems.values())
        return self._admin._template_response(
            request=request,
            name="studio/view_as.html",
            context={
                "title": "View as a user",
                "users": users,
                "chosen": chosen,
                "seen": seen,
                "problem": problem,
                "available": self.app_engine is not None,
                "app_role": APP_ROLE,
                "email_of": {clerk_user_id: email for clerk_user_id, email in users},
            },
        )
