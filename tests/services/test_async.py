"""The services from async code, through AsyncSession.run_sync."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine

from afilo_db.db.urls import sqlalchemy_url
from afilo_db.models import UserProfile
from afilo_db.services import cart, catalog
from tests.services.test_catalog import product_data


def test_services_run_inside_an_async_session(database_url: str) -> None:
    async def scenario() -> tuple[catalog.ProductPage | None, dict[str, Decimal]]:
        engine = create_async_engine(sqlalchemy_url(database_url))
        async with AsyncSession(engine, expire_on_commit=False) as session:
            product = await session.run_sync(catalog.create_product, product_data())
            user = UserProfile(clerk_user_id="user_asyncbuyer", email="async@example.com")
            session.add(user)
            await session.flush()
            await session.run_sync(cart.add_to_cart, user.id, product.variants[2].id, 10)
            await session.commit()
        async with AsyncSession(engine) as session:
            found = await session.run_sync(catalog.product_by_handle, "nova-kit")
            contents = await session.run_sync(cart.cart_contents, user.id)
        await engine.dispose()
        return found, contents.totals

    # A thread of its own: another test in this process may have left an event loop running.
    with ThreadPoolExecutor(max_workers=1) as pool:
        found, total = pool.submit(asyncio.run, scenario()).result()
    assert found is not None and found["handle"] == "nova-kit"
    assert total == {"USD": Decimal("90.00")}
