"""The knowledge base's search box: the chat bot's hybrid search (`services.knowledge.search`)
as an operator sees it, unpublished passages included and marked."""

from __future__ import annotations

import anyio.to_thread
from sqlalchemy.orm import Session
from starlette.requests import Request
from starlette.responses import Response
from starlette_admin.routing import route
from starlette_admin.views import CustomView

from afilo_db.errors import ValidationError
from afilo_db.rules import KNOWLEDGE_CONTENT_TYPES
from afilo_db.services import knowledge

SEARCH_PATH = "/knowledge-search"
RESULTS = 10


class KnowledgeSearch(CustomView):
    def __init__(self) -> None:
        super().__init__(
            menu_label="Knowledge search",
            icon="fa fa-search",
            path=SEARCH_PATH,
            route_name="knowledge_search",
        )

    @route("")
    async def search(self, request: Request) -> Response:
        assert self._admin is not None, "the view is mounted by the studio"
        session: Session = request.state.session
        question = request.query_params.get("q", "")
        chosen = request.query_params.get("type") or None
        passages: list[knowledge.Passage] = []
        problem: str | None = None
        if question.strip():
            try:
                passages = await anyio.to_thread.run_sync(
                    lambda: knowledge.search(
                        session,
                        question,
                        types=[chosen] if chosen else None,
                        limit=RESULTS,
                        include_unpublished=True,
                        # The operator sees every candidate, each with its relevance, to judge
                        # the passages the bot would refuse as well.
                        min_relevance=0,
                    )
                )
            except ValidationError as error:
                problem = "; ".join(f"{field}: {rule}" for field, rule in error.problems.items())
        return self._admin._template_response(
            request=request,
            name="studio/knowledge_search.html",
            context={
                "title": "Knowledge search",
                "question": question,
                "chosen": chosen,
                "types": KNOWLEDGE_CONTENT_TYPES,
                "passages": passages,
                "problem": problem,
                "searched": bool(question.strip()),
            },
        )
